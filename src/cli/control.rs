//! Commands that act on existing containers one by one, as docker's do:
//! `wait` (print each exit code), `start` (a created or stopped container
//! gets a new shim: its network, /etc files and bundle are made again, its
//! writable layer kept), `restart`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::runtime::container::client::Waiter;
use crate::runtime::container::create::{self, Launch};
use crate::runtime::container::lifecycle::{self, UNKNOWN_EXIT};
use crate::runtime::container::records::{Record, Status};
use crate::runtime::container::DEFAULT_LOG_MAX_SIZE;
use crate::runtime::engine::Engine;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach to its output (and give its exit code).
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin too.
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (default
    /// ctrl-p,ctrl-q).
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Seconds to wait for SIGTERM before SIGKILL.
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

fn launch_of(rec: &Record, debug: bool, attach: bool) -> Launch {
    Launch {
        log_max_size: rec.config.log_max_size.unwrap_or(DEFAULT_LOG_MAX_SIZE),
        wait_start: attach,
        debug,
        ..Launch::default()
    }
}

/// `skiff start`: start created or stopped containers (a running one is
/// left as it is); with `-a`, in the foreground as `run` does.
pub fn start(engine: &Engine, debug: bool, args: StartArgs) -> anyhow::Result<ExitCode> {
    let (paths, state) = (engine.paths(), engine.records()?);
    if args.attach || args.interactive {
        let [name] = args.containers.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        };
        let detach_keys = super::detach_keys::DetachKeys::parse(args.detach_keys.as_deref())?;
        let rec = state.find(name)?;
        if rec.status.is_running() {
            anyhow::bail!("container {name} is already running; use skiff logs -f or exec");
        }
        let tty = rec.config.options.tty;
        super::attach::check_tty(args.interactive, tty)?;
        let created = create::launch(paths, state, &rec.id, &launch_of(&rec, debug, true))?;
        let ended = super::attach::attach_to(
            &super::attach::Attach {
                paths,
                id: &rec.id,
                stdin: args.interactive && rec.config.options.interactive,
                tty,
                start: true,
                sig_proxy: true,
                detach_keys,
            },
            created.shim_stdout,
        )?;
        return Ok(ended.exit_code());
    }
    super::containers::each(&args.containers, |n| {
        let rec = state.find(n)?;
        if !rec.status.is_running() {
            create::launch(paths, state, &rec.id, &launch_of(&rec, debug, false))?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `skiff restart`: stop (SIGTERM, SIGKILL after -t) and start again.
pub fn restart(engine: &Engine, debug: bool, args: RestartArgs) -> anyhow::Result<()> {
    let (paths, state) = (engine.paths(), engine.records()?);
    super::containers::each(&args.containers, |n| {
        let rec = state.find(n)?;
        lifecycle::stop(paths, state, &rec, Duration::from_secs(args.time))?;
        // The shim records the exit and releases the network before it
        // reports; a --rm container is gone now.
        let rec = state
            .get(&rec.id)?
            .ok_or_else(|| anyhow::anyhow!("container {n} was removed when it stopped (--rm)"))?;
        create::launch(paths, state, &rec.id, &launch_of(&rec, debug, false))?;
        Ok(())
    })
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `skiff wait`: block until each container stops, then print its exit
/// code (at once for one that has already stopped).
pub fn wait(engine: &Engine, args: WaitArgs) -> anyhow::Result<()> {
    let (paths, state) = (engine.paths(), engine.records()?);
    let mut failed = false;
    for name in &args.containers {
        let code = state
            .find(name)
            .map_err(anyhow::Error::from)
            .and_then(|rec| {
                if matches!(rec.status, Status::Exited | Status::Restarting) {
                    return Ok(rec.exit_code.unwrap_or(UNKNOWN_EXIT));
                }
                // The shim sends the exit frame after recording the exit.
                if let Ok(Some(code)) = Waiter::open(paths, &rec.id).and_then(|mut w| w.wait(None))
                {
                    return Ok(code);
                }
                // No shim (it had just finished, or was killed): the record,
                // reconciled, says how it ended.
                lifecycle::reconcile(paths, state)?;
                Ok(state
                    .get(&rec.id)?
                    .and_then(|r| r.exit_code)
                    .unwrap_or(UNKNOWN_EXIT))
            });
        match code {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("skiff: error: {}", super::error_text(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Err(super::Quiet(1).into());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    /// Only this container port: PORT[/PROTO].
    pub port: Option<String>,
}

/// `skiff port`: the container's published ports, as docker prints them.
pub fn port(engine: &Engine, args: PortArgs) -> anyhow::Result<()> {
    let rec = engine.records()?.find(&args.container)?;
    let ports = super::network::attachment(engine, &rec.id)
        .map(|a| a.ports)
        .unwrap_or_default();
    let want = args.port.as_deref().map(|p| match p.split_once('/') {
        Some((n, proto)) => (n.to_string(), proto.to_string()),
        None => (p.to_string(), "tcp".to_string()),
    });
    let mut found = false;
    for p in &ports {
        let host = format!(
            "{}:{}",
            p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            p.host_port
        );
        match &want {
            Some((n, proto)) => {
                if *n == p.container_port.to_string() && *proto == p.proto.to_string() {
                    println!("{host}");
                    found = true;
                }
            }
            None => println!("{}/{} -> {host}", p.container_port, p.proto),
        }
    }
    if let (Some(p), false) = (&args.port, found) {
        anyhow::bail!("no public port '{p}' published for {}", args.container);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

/// `skiff rename`: another name for a container (running or not).
pub fn rename(engine: &Engine, args: RenameArgs) -> anyhow::Result<()> {
    crate::runtime::container::options::check_name(&args.new_name)?;
    let state = engine.records()?;
    let rec = state.find(&args.container)?;
    state.rename(&rec.id, &args.new_name)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
}

/// A process of a container, read from /proc.
struct Proc {
    uid: u32,
    pid: i32,
    ppid: i32,
    start_ticks: u64,
    cpu_ticks: u64,
    tty: i32,
    cmd: String,
}

fn read_proc(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map(|(_, c)| c)?.to_string();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Proc {
        uid,
        pid,
        // After ')': state ppid pgrp session tty_nr … utime(11) stime(12) … starttime(19).
        ppid: f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        tty: f.get(4).and_then(|v| v.parse().ok()).unwrap_or(0),
        cpu_ticks: num(11) + num(12),
        start_ticks: num(19),
        cmd: if args.is_empty() {
            format!("[{comm}]")
        } else {
            args.join(" ")
        },
    })
}

/// `skiff top`: the container's processes (every process in its PID
/// namespace), in `ps -ef`'s columns as docker shows them.
pub fn top(engine: &Engine, args: TopArgs) -> anyhow::Result<()> {
    let rec = engine.records()?.find(&args.container)?;
    let (true, Some(init)) = (rec.status.is_running(), rec.pid) else {
        anyhow::bail!("container {} is not running", rec.name);
    };
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let want = ns(init).ok_or_else(|| anyhow::anyhow!("container {} is not running", rec.name))?;
    let mut procs: Vec<Proc> = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| ns(pid).as_ref() == Some(&want))
        .filter_map(read_proc)
        .collect();
    procs.sort_by_key(|p| p.pid);
    // SAFETY: sysconf only reads a constant.
    let hz = u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
        .unwrap_or(0);
    let mut table =
        super::util::listing(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    for p in &procs {
        let started = chrono::DateTime::from_timestamp(boot + (p.start_ticks / hz) as i64, 0)
            .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
            .unwrap_or_default();
        let secs = p.cpu_ticks / hz;
        let tty = if p.tty == 0 {
            "?".to_string()
        } else {
            // Major 136-143: /dev/pts/N.
            let (major, minor) = (
                (p.tty >> 8) & 0xfff,
                (p.tty & 0xff) | ((p.tty >> 12) & 0xfff00),
            );
            if (136..=143).contains(&major) {
                format!("pts/{}", (major - 136) * 256 + minor)
            } else {
                "?".to_string()
            }
        };
        table.add_row([
            if p.uid == 0 {
                "root".to_string()
            } else {
                p.uid.to_string()
            },
            p.pid.to_string(),
            p.ppid.to_string(),
            "0".into(),
            started,
            tty,
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
            p.cmd.clone(),
        ]);
    }
    print!("{}", super::util::listing_text(&table));
    Ok(())
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `skiff pause` (`pause`) and `skiff unpause`.
pub fn pause(engine: &Engine, args: PauseArgs, pause: bool) -> anyhow::Result<()> {
    let state = engine.records()?;
    super::containers::each(&args.containers, |n| {
        let rec = state.find(n)?;
        if pause {
            lifecycle::pause(state, &rec)?;
        } else {
            lifecycle::unpause(state, &rec)?;
        }
        Ok(())
    })
}
