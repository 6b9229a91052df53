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

use std::ffi::CString;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use libcontainer::oci_spec::runtime::Spec;
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

    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // Checked at exec time instead (see the module comment).
        Ok(())
    }
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
}
