//! systemd's readiness protocol (sd_notify(3)): when a service manager
//! runs skiff with `Type=notify`, it waits for `READY=1` on the datagram
//! socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract
//! namespace) before it counts the service as started. A few lines of std
//! over a Unix datagram socket.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Tell the service manager that skiff is ready, with a status line.
/// Nothing happens without `NOTIFY_SOCKET`; a failure is logged, never
/// fatal (the service still runs; systemd then times out on its own).
pub fn ready(status: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("READY=1\nSTATUS={status}\n");
    match send(&socket.to_string_lossy(), message.as_bytes()) {
        Ok(()) => tracing::debug!(status, "told the service manager skiff is ready"),
        Err(e) => {
            tracing::warn!(socket = %socket.to_string_lossy(), "telling the service manager skiff is ready: {e}")
        }
    }
}

fn send(socket: &str, message: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(message, &addr)?;
    } else if socket.starts_with('/') {
        sock.send_to(message, socket)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an abstract name (@...)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("skiff-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_listener = UnixDatagram::bind_addr(&addr).unwrap();
        send(&format!("@{name}"), b"READY=1\n").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        assert!(send("relative", b"x").is_err());
    }
}
