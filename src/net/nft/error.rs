//! What can go wrong while programming the table.

use std::io;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// Refused before anything was sent to the kernel.
    #[error("invalid nftables configuration: {0}")]
    InvalidConfig(String),

    #[error("nftables netlink socket: {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// One message of the batch was refused; the kernel aborted the whole
    /// transaction, so the ruleset is as it was before.
    #[error(
        "nftables: batch message {index} ({what}) failed: {errno:?} ({desc}){detail}{more}",
        desc = errno.desc(),
        detail = detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        more = if *also_failed > 0 { format!(" (and {also_failed} later message(s) failed too)") } else { String::new() },
    )]
    Kernel {
        /// Position in the batch, 1-based, not counting the batch-begin marker.
        index: usize,
        /// The message, e.g. `NEWSETELEM published-any (1 elements)`.
        what: String,
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        detail: Option<String>,
        /// Later messages that failed too, usually as a consequence of the first.
        also_failed: usize,
    },

    /// The batch as a whole was refused (no permission, nf_tables missing,
    /// commit failed); the ruleset is as it was before.
    #[error(
        "nftables: batch refused: {errno:?} ({desc}){detail}",
        desc = errno.desc(),
        detail = detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
    )]
    BatchRefused {
        errno: Errno,
        detail: Option<String>,
    },

    /// The kernel's replies did not add up (missing acks, garbled frames).
    /// Whether the change was committed is unknown.
    #[error("nftables: unexpected netlink reply: {0}")]
    Protocol(String),
}

impl NftError {
    /// The errno the kernel answered with, if it was the kernel that refused.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NftError::Kernel { errno, .. } | NftError::BatchRefused { errno, .. } => Some(*errno),
            NftError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            NftError::InvalidConfig(_) | NftError::Protocol(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_names_message_and_errno() {
        let e = NftError::Kernel {
            index: 7,
            what: "NEWRULE postrouting: masquerade".into(),
            errno: Errno::EOPNOTSUPP,
            detail: None,
            also_failed: 2,
        };
        let s = e.to_string();
        assert!(s.contains("message 7"), "{s}");
        assert!(s.contains("NEWRULE postrouting: masquerade"), "{s}");
        assert!(s.contains("EOPNOTSUPP"), "{s}");
        assert!(s.contains("2 later"), "{s}");
        assert_eq!(e.errno(), Some(Errno::EOPNOTSUPP));
    }

    #[test]
    fn refused_batch_names_errno() {
        let e = NftError::BatchRefused {
            errno: Errno::EPERM,
            detail: Some("why".into()),
        };
        let s = e.to_string();
        assert!(s.contains("EPERM") && s.contains(": why"), "{s}");
    }
}
