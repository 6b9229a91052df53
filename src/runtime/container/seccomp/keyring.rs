//! A session keyring of the container's own, as runc gives each container:
//! without it the container shares the session keyring of whoever ran
//! skiff, and through it possesses (and may read) the keys linked there,
//! such as root's user keyring `@u`.
//!
//! It does not protect `@u` on its own: a container running as root in the
//! host's user namespace owns that same `@u` and can link it into its
//! session keyring (`keyctl link @u @s`) or search it, then read its keys.
//! What keeps root's keys from a container is the default seccomp profile
//! denying keyctl, add_key and request_key; `seccomp=unconfined` gives that
//! up.

use std::ffi::CString;

const KEYCTL_JOIN_SESSION_KEYRING: nix::libc::c_int = 1;

/// Joins a new session keyring named `_ses.<name>`; the container created
/// afterwards inherits it. A kernel without keys (ENOSYS) is no error.
pub fn join_new_session(name: &str) -> std::io::Result<()> {
    let name = CString::new(format!("_ses.{name}"))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING) reads a NUL-terminated name that
    // lives across the call.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            name.as_ptr(),
        )
    };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(nix::libc::ENOSYS) {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}
