//! Seccomp for containers: Docker's default profile (default.rs) or a
//! profile in Docker's format (profile.rs), resolved for the container's
//! capabilities into the OCI spec's `linux.seccomp`, compiled to classic
//! BPF by skiff itself (bpf.rs, no libseccomp) and installed by the
//! container's init right before it executes the command (see
//! executor.rs: libcontainer's workload executor is that hook).
//!
//! ```text
//! skiff run --security-opt seccomp=…  → Choice
//! spec.rs    Choice + capabilities    → linux.seccomp (checked: it compiles)
//! shim       linux.seccomp            → Filter (before the container exists)
//! init       Filter::install          → execve
//! ```

pub mod bpf;
pub mod default;
pub mod keyring;
pub mod profile;
pub mod syscalls;

use std::path::PathBuf;

use oci_spec::runtime::{LinuxSeccomp, Spec};
use serde::{Deserialize, Serialize};

pub use bpf::Filter;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid seccomp profile: {0}")]
    Profile(String),
    #[error("seccomp: {0} is not supported")]
    Unsupported(String),
    #[error("the seccomp filter has {0} instructions, more than the kernel's limit of 4096")]
    TooLong(usize),
    #[error("compiling the seccomp filter: a jump is out of reach ({0})")]
    Jump(String),
    #[error("installing the seccomp filter: {0}")]
    Install(std::io::Error),
}

/// What `--security-opt seccomp=…` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Choice {
    /// skiff's default profile (Docker's).
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format, read when the container is created.
    Profile(PathBuf),
}

impl Choice {
    /// The value of `--security-opt seccomp=VALUE`.
    pub fn parse(value: &str) -> Choice {
        match value {
            "unconfined" => Choice::Unconfined,
            "builtin" | "default" => Choice::Default,
            path => Choice::Profile(PathBuf::from(path)),
        }
    }
}

/// The running kernel's (major, minor), for `minKernel`; (0, 0) when it
/// cannot be told, which only leaves out rules that need a newer kernel.
fn kernel_version() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| profile::parse_kernel(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// The `linux.seccomp` of a container with these bounding capabilities, or
/// None without a filter. The filter is compiled here once so that a
/// profile skiff cannot apply fails `skiff run` before anything is made.
pub fn for_container(
    choice: &Choice,
    caps: &[String],
) -> Result<Option<LinuxSeccomp>, SeccompError> {
    let profile = match choice {
        Choice::Unconfined => return Ok(None),
        Choice::Default => {
            default::profile().map_err(|e| SeccompError::Profile(format!("built-in: {e}")))?
        }
        Choice::Profile(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
                path: path.clone(),
                source,
            })?;
            profile::Profile::parse(&text).map_err(|e| match e {
                SeccompError::Profile(m) => {
                    SeccompError::Profile(format!("{}: {m}", path.display()))
                }
                other => other,
            })?
        }
    };
    let target = profile::Target {
        caps,
        kernel: kernel_version(),
    };
    let seccomp = profile.resolve(&target)?;
    // Said for a user's profile only: Docker's own names send and recv,
    // which x86 has only through socketcall. A misspelt name would
    // otherwise leave that call unfiltered without a word.
    if let Choice::Profile(path) = choice {
        for name in bpf::unknown_names(&seccomp) {
            tracing::warn!(profile = %path.display(), syscall = name,
                "the seccomp profile names a system call unknown on x86_64, i386 and x32; its rules skip it");
        }
    }
    bpf::compile(&seccomp)?;
    Ok(Some(seccomp))
}

/// The filter of a container's spec (None when it has no `linux.seccomp`).
pub fn filter_of(spec: &Spec) -> Result<Option<Filter>, SeccompError> {
    match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Ok(Some(bpf::compile(s)?)),
        None => Ok(None),
    }
}

const SECCOMP_SET_MODE_FILTER: nix::libc::c_ulong = 1;

impl Filter {
    /// Installs the filter on the calling thread (and, with TSYNC, its
    /// process). no_new_privs is set first: without CAP_SYS_ADMIN the
    /// kernel takes a filter only under it, and skiff always wants it.
    pub fn install(&self) -> Result<(), SeccompError> {
        let len =
            u16::try_from(self.insns.len()).map_err(|_| SeccompError::TooLong(self.insns.len()))?;
        let prog = nix::libc::sock_fprog {
            len,
            filter: self.insns.as_ptr() as *mut nix::libc::sock_filter,
        };
        // SAFETY: plain prctl/seccomp calls; `prog` points at instructions
        // laid out as `struct sock_filter` (repr(C) Insn) that outlive the
        // call (the kernel copies them).
        unsafe {
            if nix::libc::prctl(nix::libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(SeccompError::Install(std::io::Error::last_os_error()));
            }
            let rc = nix::libc::syscall(
                nix::libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                nix::libc::c_ulong::from(self.flags),
                &prog as *const nix::libc::sock_fprog,
            );
            if rc != 0 {
                return Err(SeccompError::Install(std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
