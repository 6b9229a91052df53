//! A minimal TCP throughput meter for bench/net.sh (the same static binary
//! on the host and, bind-mounted, inside busybox containers).
//!
//!   tcpbench serve PORT          accept one connection, read to EOF, print
//!                                "BYTES SECONDS GBIT_PER_S" (from the first byte)
//!   tcpbench send HOST:PORT MIB  send MIB mebibytes of zeros, then close
//!   tcpbench echo PORT           accept connections for ever, answer each
//!                                byte read with one byte
//!   tcpbench rr HOST:PORT N      N times: connect, send a byte, read one,
//!                                close; print "P50_US P99_US" (whole round)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Instant;

const BUF: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("serve") if args.len() == 3 => serve(&args[2]),
        Some("send") if args.len() == 4 => send(&args[2], &args[3]),
        Some("echo") if args.len() == 3 => echo(&args[2]),
        Some("rr") if args.len() == 4 => rr(&args[2], &args[3]),
        _ => Err(
            "usage: tcpbench serve PORT | send HOST:PORT MIB | echo PORT | rr HOST:PORT N".into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(port: &str) -> Result<(), String> {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).map_err(|e| e.to_string())?;
    let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    let mut start = None;
    loop {
        let n = conn.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        start.get_or_insert_with(Instant::now);
        total += n as u64;
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let gbit = if secs > 0.0 {
        total as f64 * 8.0 / secs / 1e9
    } else {
        0.0
    };
    println!("{total} {secs:.3} {gbit:.2}");
    Ok(())
}

fn send(addr: &str, mib: &str) -> Result<(), String> {
    let mib: u64 = mib.parse().map_err(|_| format!("bad size {mib:?}"))?;
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let buf = vec![0u8; BUF];
    let chunks = mib * 1024 * 1024 / BUF as u64;
    for _ in 0..chunks {
        conn.write_all(&buf).map_err(|e| e.to_string())?;
    }
    conn.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    // Wait for the reader to finish.
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    Ok(())
}

fn echo(port: &str) -> Result<(), String> {
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).map_err(|e| e.to_string())?;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut b = [0u8; 1];
            while matches!(conn.read(&mut b), Ok(1)) {
                if conn.write_all(&b).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

fn rr(addr: &str, n: &str) -> Result<(), String> {
    let n: usize = n.parse().map_err(|_| format!("bad count {n:?}"))?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut conn = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        conn.set_nodelay(true).map_err(|e| e.to_string())?;
        conn.write_all(b"x").map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        conn.read_exact(&mut b).map_err(|e| e.to_string())?;
        drop(conn);
        times.push(start.elapsed().as_micros() as u64);
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!("{} {}", at(0.5), at(0.99));
    Ok(())
}
