//! The workload executor handed to libcontainer: execvp as the default one
//! does, but a missing or non-executable command ends the container with
//! docker's exit codes (127, 126) and message on its stderr, so `skiff run`
//! reports it like docker instead of failing the create with an opaque error.
//!
//! It is also where the container's seccomp filter goes on: libcontainer
//! installs `linux.seccomp` only with libseccomp (a C library), and its
//! executor runs in the container's init after everything else (namespaces,
//! mounts, capabilities dropped, no_new_privs set), right before execve, so
//! the filter restricts only the workload. Tenants (`skiff exec`) get the
//! container's filter too, as with Docker; libcontainer drops
//! `linux.seccomp` from a tenant's spec, so the filter is compiled by the
//! shim from the container's config.json and carried here.
//!
//! The container's rlimits go on here too, for the same reason: see
//! [`defer_rlimits`].

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use libcontainer::oci_spec::runtime::{PosixRlimit, PosixRlimitType, Spec};
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::errno::Errno;

use super::seccomp::{self, Filter};

/// No `Default`: an executor is built from its container's bundle, so none
/// runs a process without the container's seccomp filter by accident.
#[derive(Clone)]
pub struct SkiffExecutor {
    seccomp: Option<Arc<Filter>>,
}

impl SkiffExecutor {
    /// The executor of the container whose bundle is `dir`: with the filter
    /// of its config.json's `linux.seccomp`, if any.
    pub fn for_bundle(dir: &Path) -> Result<SkiffExecutor, String> {
        let config = dir.join("config.json");
        let spec = Spec::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
        let filter = seccomp::filter_of(&spec).map_err(|e| e.to_string())?;
        Ok(SkiffExecutor {
            seccomp: filter.map(Arc::new),
        })
    }
}

/// Where [`defer_rlimits`] puts the container process's rlimits.
const RLIMITS_ANNOTATION: &str = "io.skiff.rlimits";

/// Move the process's rlimits out of `spec` into an annotation, for the
/// executor to set right before exec. libcontainer sets `process.rlimits`
/// in its intermediate process, before the container's init is even
/// forked, so the init's whole set-up (rootfs, pivot_root, the start
/// socket) would run under them; and the init holds the shim's
/// descriptors until its exec closes them, so a low RLIMIT_NOFILE
/// (`--ulimit nofile=10`) leaves it no descriptor number to open anything
/// (EMFILE) and the container never starts. runc likewise sets them only
/// once its init is ready. Lowering a limit needs no privilege, and none is
/// asked above the launching process's hard limit (`--ulimit` refuses more,
/// the default RLIMIT_NOFILE is clamped), which the init inherits.
pub fn defer_rlimits(spec: &mut Spec) -> Result<(), serde_json::Error> {
    let Some(process) = spec.process_mut() else {
        return Ok(());
    };
    let Some(limits) = process.rlimits().clone().filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    process.set_rlimits(None);
    let text = serde_json::to_string(&limits)?;
    spec.annotations_mut()
        .get_or_insert_with(HashMap::new)
        .insert(RLIMITS_ANNOTATION.to_string(), text);
    Ok(())
}

/// The limits [`defer_rlimits`] moved aside, to set now. Only for the
/// container's own process: a tenant's (`skiff exec`) spec is
/// libcontainer's, with rlimits of its own that libcontainer has set.
fn deferred_rlimits(spec: &Spec) -> Result<Vec<PosixRlimit>, String> {
    let own = spec
        .process()
        .as_ref()
        .is_none_or(|p| p.rlimits().as_ref().is_none_or(|l| l.is_empty()));
    let text = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(RLIMITS_ANNOTATION));
    match (own, text) {
        (true, Some(text)) => {
            serde_json::from_str(text).map_err(|e| format!("the container's rlimits: {e}"))
        }
        _ => Ok(Vec::new()),
    }
}

fn set_deferred_rlimits(spec: &Spec) -> Result<(), String> {
    for l in deferred_rlimits(spec)? {
        nix::sys::resource::setrlimit(resource(l.typ()), l.soft(), l.hard())
            .map_err(|e| format!("setting {}: {e}", l.typ()))?;
    }
    Ok(())
}

fn resource(t: PosixRlimitType) -> nix::sys::resource::Resource {
    use nix::sys::resource::Resource as R;
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => R::RLIMIT_CPU,
        T::RlimitFsize => R::RLIMIT_FSIZE,
        T::RlimitData => R::RLIMIT_DATA,
        T::RlimitStack => R::RLIMIT_STACK,
        T::RlimitCore => R::RLIMIT_CORE,
        T::RlimitRss => R::RLIMIT_RSS,
        T::RlimitNproc => R::RLIMIT_NPROC,
        T::RlimitNofile => R::RLIMIT_NOFILE,
        T::RlimitMemlock => R::RLIMIT_MEMLOCK,
        T::RlimitAs => R::RLIMIT_AS,
        T::RlimitLocks => R::RLIMIT_LOCKS,
        T::RlimitSigpending => R::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => R::RLIMIT_MSGQUEUE,
        T::RlimitNice => R::RLIMIT_NICE,
        T::RlimitRtprio => R::RLIMIT_RTPRIO,
        T::RlimitRttime => R::RLIMIT_RTTIME,
    }
}

/// Docker's exit code and message for an exec failure.
pub fn exec_failure(cmd: &str, errno: Errno) -> (i32, String) {
    match errno {
        Errno::ENOENT if cmd.contains('/') => (
            127,
            format!("exec: \"{cmd}\": stat {cmd}: no such file or directory"),
        ),
        Errno::ENOENT => (
            127,
            format!("exec: \"{cmd}\": executable file not found in $PATH"),
        ),
        Errno::EACCES | Errno::EISDIR | Errno::ENOEXEC => {
            (126, format!("exec: \"{cmd}\": permission denied"))
        }
        other => (126, format!("exec: \"{cmd}\": {}", other.desc())),
    }
}

impl Executor for SkiffExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .filter(|a| !a.is_empty())
            .ok_or(ExecutorError::InvalidArg)?;
        let cargs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| ExecutorError::InvalidArg))
            .collect::<Result<_, _>>()?;
        // Before the filter, which might not allow setrlimit.
        if let Err(e) = set_deferred_rlimits(spec) {
            let _ = writeln!(std::io::stderr(), "skiff: {e}");
            // SAFETY: as below.
            unsafe { nix::libc::_exit(126) }
        }
        if let Some(filter) = &self.seccomp {
            if let Err(e) = filter.install() {
                // The command must not run unconfined; say why, as a failed
                // exec would (the container's stderr reaches the user).
                let _ = writeln!(std::io::stderr(), "skiff: {e}");
                // SAFETY: as below.
                unsafe { nix::libc::_exit(126) }
            }
        }
        let Err(errno) = nix::unistd::execvp(&cargs[0], &cargs);
        let (code, message) = exec_failure(&args[0], errno);
        let _ = writeln!(std::io::stderr(), "{message}");
        // SAFETY: _exit only ends this (single-threaded) container process.
        unsafe { nix::libc::_exit(code) }
    }

    /// Runs in the container's init once it is set up (root, user,
    /// working directory), before the container counts as created: a
    /// command that is not there or cannot be run fails the create, as
    /// runc's does, so the container stays Created and `run` (even with
    /// -d) exits 127 or 126. exec() above still catches what only execve
    /// can tell (a file of an unknown format).
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(process) = spec.process().as_ref() else {
            return Ok(());
        };
        let Some(cmd) = process.args().as_ref().and_then(|a| a.first()) else {
            return Ok(());
        };
        let path = process
            .env()
            .as_ref()
            .and_then(|env| env.iter().rev().find_map(|kv| kv.strip_prefix("PATH=")))
            .unwrap_or(super::baseline::DEFAULT_PATH);
        match lookup(cmd, path) {
            Ok(()) => Ok(()),
            Err(errno) => {
                let (code, message) = exec_failure(cmd, errno);
                Err(ExecutorValidationError::ArgValidationError(mark(
                    code, &message,
                )))
            }
        }
    }
}

/// Whether execvp could find `cmd` along `path`, as it searches: a name
/// with a slash as it is, else each PATH entry (an empty one is the
/// working directory); a file found but not executable is EACCES.
fn lookup(cmd: &str, path: &str) -> Result<(), Errno> {
    use nix::unistd::{access, AccessFlags};
    let runnable = |p: &Path| -> Result<(), Errno> {
        let meta = std::fs::metadata(p)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::ENOENT)))?;
        if meta.is_dir() {
            return Err(Errno::EACCES);
        }
        access(p, AccessFlags::X_OK)
    };
    if cmd.contains('/') {
        return runnable(Path::new(cmd));
    }
    let mut seen = Errno::ENOENT;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        match runnable(&Path::new(dir).join(cmd)) {
            Ok(()) => return Ok(()),
            Err(Errno::EACCES) => seen = Errno::EACCES,
            Err(_) => {}
        }
    }
    Err(seen)
}

/// How a failed lookup crosses libcontainer's error chain (a string) to
/// the shim and the CLI: marked, so that its exit code and docker's
/// message can be taken back out of whatever text surrounds it.
const MARK_OPEN: &str = "<<skiff-exec ";
const MARK_CLOSE: &str = " skiff-exec>>";

fn mark(code: i32, message: &str) -> String {
    format!("{MARK_OPEN}{code} {message}{MARK_CLOSE}")
}

/// The exit code and message of an exec failure found by validate(), if
/// `text` (an error from creating a container or a tenant) carries one.
pub fn exec_failure_in(text: &str) -> Option<(i32, String)> {
    let start = text.find(MARK_OPEN)? + MARK_OPEN.len();
    let rest = &text[start..];
    let inner = &rest[..rest.find(MARK_CLOSE)?];
    let (code, message) = inner.split_once(' ')?;
    Some((code.parse().ok()?, message.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_codes() {
        assert_eq!(
            exec_failure("nope", Errno::ENOENT),
            (
                127,
                "exec: \"nope\": executable file not found in $PATH".to_string()
            )
        );
        assert_eq!(exec_failure("/etc", Errno::EACCES).0, 126);
        assert_eq!(exec_failure("/x/y", Errno::ENOENT).0, 127);
    }

    #[test]
    fn lookups_and_marks() {
        assert_eq!(lookup("sh", "/nonexistent:/bin"), Ok(()));
        assert_eq!(
            lookup("no-such-command-here", "/bin:/usr/bin"),
            Err(Errno::ENOENT)
        );
        assert_eq!(lookup("/etc", ""), Err(Errno::EACCES));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "not a program").unwrap();
        assert_eq!(lookup(plain.to_str().unwrap(), ""), Err(Errno::EACCES));
        let along = format!("/nonexistent:{}", dir.path().display());
        assert_eq!(lookup("plain", &along), Err(Errno::EACCES));
        assert_eq!(lookup("/no/such", ""), Err(Errno::ENOENT));
        let text = format!(
            "creating the container: init failed: {}: more",
            mark(127, "exec: \"x\": executable file not found in $PATH")
        );
        assert_eq!(
            exec_failure_in(&text),
            Some((
                127,
                "exec: \"x\": executable file not found in $PATH".into()
            ))
        );
        assert_eq!(exec_failure_in("creating the container: other"), None);
    }

    #[test]
    fn rlimits_wait_for_the_executor() {
        // The default spec's process has libcontainer's RLIMIT_NOFILE 1024.
        let mut spec = Spec::default();
        let limits = spec.process().as_ref().and_then(|p| p.rlimits().clone());
        let limits = limits.filter(|l| !l.is_empty()).expect("default rlimits");
        // A tenant's spec keeps them: libcontainer sets those itself.
        let mut tenant = spec.clone();
        defer_rlimits(&mut spec).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().rlimits(), &None);
        assert_eq!(deferred_rlimits(&spec).unwrap(), limits);
        tenant.set_annotations(spec.annotations().clone());
        assert_eq!(deferred_rlimits(&tenant).unwrap(), []);
        // Through config.json, as the shim reads it.
        let again: Spec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(deferred_rlimits(&again).unwrap(), limits);
        // None to move: nothing changes.
        let before = spec.clone();
        defer_rlimits(&mut spec).unwrap();
        assert_eq!(spec, before);
    }
}
