use std::process::ExitCode;

use clap::Parser;

use skiff::cli::Cli;

fn main() -> ExitCode {
    // The release build unwinds so that the API server can contain a panic
    // in one request; everywhere else (shim, init, CLI, the server's own
    // tasks) a panic is reported and aborts, as before.
    skiff::server::apiserver::recover::install_panic_policy();
    // The container shim must stay single-threaded (libcontainer forks):
    // dispatch it before anything else runs.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Likewise the container init (`--init`): PID 1 must not start threads.
    if skiff::runtime::container::init::wanted(&argv) {
        return skiff::runtime::container::init::main(&argv);
    }
    // The sandbox's PID namespace holder forks: single-threaded too.
    if skiff::runtime::pid_holder::wanted(&argv) {
        return skiff::runtime::pid_holder::main();
    }
    if argv.get(1).is_some_and(|a| a == "shim") {
        return skiff::runtime::container::shim::main(&argv[2..]);
    }
    // At most four malloc arenas instead of one per thread that ever
    // allocated (glibc's default, up to 8 per core): memory a big request
    // freed on one thread is then reused by the next instead of lingering
    // in an arena of its own (bench/list-memory.sh). Two were tried first:
    // the threads then waited on the arena locks, a fifth of the control
    // plane's CPU when binding 10,000 pods (bench/scheduler.sh); four cost
    // ~4 MiB more after big lists. An operator's own
    // `GLIBC_TUNABLES=glibc.malloc.arena_max=N` or `MALLOC_ARENA_MAX` wins.
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"))
        || std::env::var_os("MALLOC_ARENA_MAX").is_some();
    if !tuned {
        // SAFETY: called before any other thread exists.
        unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 4);
        }
    }
    let args = match skiff::cli::config::args_with_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(err) => {
            eprintln!("skiff: error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are answers, not errors; a bad flag exits
            // 125 as docker's do (a script must not take it for the
            // container's own status).
            return if err.use_stderr() {
                ExitCode::from(skiff::cli::ENGINE_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match skiff::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if err.downcast_ref::<skiff::cli::Quiet>().is_none() {
                eprintln!("skiff: error: {}", skiff::cli::error_text(&err));
            }
            ExitCode::from(skiff::cli::exit_status(&err))
        }
    }
}
