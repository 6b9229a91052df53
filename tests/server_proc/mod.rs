//! A `skiff server` started by hand, for tests that need what
//! `support::Server` does not offer: a command in front of it (`prlimit`), a
//! data directory of their own choosing (a small tmpfs), or a server that is
//! expected to refuse to start. Killed by its PID on drop, its log printed
//! when the test fails.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::TestNet;

/// A bound on waiting for a start or an exit (not an assertion on speed).
const WAIT: Duration = Duration::from_secs(60);

pub struct Proc {
    child: Option<Child>,
    log: PathBuf,
    port: u16,
}

impl Proc {
    /// Start `[prefix...] skiff server` inside `net` with `data_dir`,
    /// listening on 127.0.0.1:`port`, writing its log to `log`.
    pub fn spawn(
        net: &TestNet,
        prefix: &[&str],
        data_dir: &Path,
        port: u16,
        kubeconfig: &Path,
        log: PathBuf,
        extra: &[&str],
    ) -> Proc {
        let out = fs::File::create(&log).expect("create server log");
        let err = out.try_clone().expect("dup log");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = net.command(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_skiff"));
                c
            }
            None => net.command(env!("CARGO_BIN_EXE_skiff")),
        };
        cmd.arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--bind-address", "127.0.0.1"])
            .args(["--https-listen-port", &port.to_string()])
            .arg("--write-kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Proc {
            child: Some(child),
            log,
            port,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + WAIT;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Poll `/readyz` (bounded) until the server answers `ok`.
    pub fn wait_ready(&mut self, net: &TestNet) {
        let deadline = Instant::now() + WAIT;
        let url = format!("https://127.0.0.1:{}/readyz", self.port);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                panic!("skiff server exited ({status}):\n{}", self.log());
            }
            let out = net
                .command("curl")
                .args(["-sk", "--max-time", "2", &url])
                .output()
                .expect("run curl");
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "skiff server not ready:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- skiff server log ({}) ---\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}
