//! The workload executor handed to libcontainer: execvp as the default one
//! does, but a missing or non-executable command ends the container with
//! docker's exit codes (127, 126) and message on its stderr, so `skiff run`
//! reports it like docker instead of failing the create with an opaque error.

use std::ffi::CString;
use std::io::Write;

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::errno::Errno;

#[derive(Clone, Default)]
pub struct SkiffExecutor;

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
