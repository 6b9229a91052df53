//! packaging/install.sh, run as `curl … | sh` runs it, in a scratch root
//! (INSTALL_SKIFF_ROOT) so that nothing on the host changes: this build's
//! skiff is downloaded from a local HTTP server with its checksum, and the
//! files, modes, units and environment file it writes are checked, as are
//! its refusals (a wrong checksum, an agent without a token), re-runs (which
//! change nothing unless a setting did), a read-only /usr/local/bin, OpenRC,
//! and skiff-uninstall.sh removing what it installed and nothing else.
//!
//! systemd is not PID 1 on the test machine, so `systemctl`, `rc-update`
//! and `rc-service` are stand-ins on PATH that record how they were called:
//! what the installer asks of the service manager is checked, not what the
//! service manager does with it (systemd-analyze checks the unit itself).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{stderr, stdout, TestNet};

const INSTALL: &str = "packaging/install.sh";

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no install test for {other}"),
    }
}

/// Files served over plain HTTP on 127.0.0.1 (a release's download
/// directory), for as long as the test runs.
struct Downloads {
    dir: tempfile::TempDir,
    base: String,
}

impl Downloads {
    /// This build's skiff as `skiff-ARCH`, with `sha256sum-ARCH.txt` saying
    /// `sha` (its own checksum when None).
    fn serve(sha: Option<&str>) -> Downloads {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("skiff-{}", arch());
        let bin = dir.path().join(&name);
        if std::fs::hard_link(env!("CARGO_BIN_EXE_skiff"), &bin).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_skiff"), &bin).unwrap();
        }
        let sum = match sha {
            Some(s) => s.to_string(),
            None => {
                let out = Command::new("sha256sum").arg(&bin).output().unwrap();
                stdout(&out).split_whitespace().next().unwrap().to_string()
            }
        };
        std::fs::write(
            dir.path().join(format!("sha256sum-{}.txt", arch())),
            format!("{sum}  {name}\n"),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let root = dir.path().to_path_buf();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    // The rest of the request head.
                    let mut header = String::new();
                    while reader.read_line(&mut header).is_ok() && header.trim() != "" {
                        header.clear();
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/");
                    let file = root.join(path.trim_start_matches('/'));
                    match std::fs::read(&file) {
                        Ok(body) if !path.contains("..") => {
                            let _ = write!(
                                conn,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = conn.write_all(&body);
                        }
                        _ => {
                            let _ = conn.write_all(
                                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            );
                        }
                    }
                });
            }
        });
        Downloads { dir, base }
    }
}

/// A scratch root standing for `/`, and the service-manager stand-ins.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let stubs = dir.path().join("stubs");
        std::fs::create_dir(&stubs).unwrap();
        for tool in ["systemctl", "rc-update", "rc-service"] {
            let path = stubs.join(tool);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >> '{}'\n",
                    dir.path().join("calls").display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir(dir.path().join("root")).unwrap();
        Scratch { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}\nfiles: {:?}", self.files()))
    }

    fn mode(&self, rel: &str) -> u32 {
        std::fs::metadata(self.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// Every file under the root, relative to it.
    fn files(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    walk(&p, root, out);
                } else {
                    out.insert(format!("/{}", p.strip_prefix(root).unwrap().display()));
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root(), &self.root(), &mut out);
        out
    }

    /// The service-manager calls since the last look.
    fn calls(&self) -> Vec<String> {
        let path = self.dir.path().join("calls");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text.lines().map(str::to_string).collect()
    }

    /// The installer as `curl … | sh -s - ARGS` runs it: a clean
    /// environment but for `env`, and the scratch root.
    fn install(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let script = std::fs::read(INSTALL).unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-s")
            .arg("-")
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.dir.path().join("stubs").display()
                ),
            )
            .env("INSTALL_SKIFF_ROOT", self.root())
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&script).unwrap();
        child.wait_with_output().unwrap()
    }

    /// skiff-uninstall.sh as written, in `net` (skiff killall acts on the
    /// network namespace it runs in: a test's own), with the stand-ins.
    fn uninstall(&self, net: &TestNet) -> Output {
        net.command("sh")
            .arg(self.path("/usr/local/bin/skiff-uninstall.sh"))
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.dir.path().join("stubs").display()
                ),
            )
            .output()
            .unwrap()
    }

    fn install_ok(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let out = self.install(env, args);
        assert!(
            out.status.success(),
            "install.sh failed: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }
}

fn local_binary() -> [(&'static str, &'static str); 2] {
    [
        ("INSTALL_SKIFF_SKIP_DOWNLOAD", "true"),
        ("INSTALL_SKIFF_BINARY", env!("CARGO_BIN_EXE_skiff")),
    ]
}

#[test]
fn a_server_is_installed_from_a_download_and_a_rerun_restarts_only_on_change() {
    let downloads = Downloads::serve(None);
    let s = Scratch::new();
    let env = [
        ("SKIFF_DOWNLOAD_URL", downloads.base.as_str()),
        ("INSTALL_SKIFF_ALLOW_HTTP", "true"),
        ("INSTALL_SKIFF_INIT", "systemd"),
        ("SKIFF_CONFIG_FILE", "/etc/skiff/edge.yaml"),
    ];
    let out = s.install_ok(&env, &["--cluster-cidr", "10.50.0.0/16"]);
    assert!(out.contains("sha256") && out.contains("verified"), "{out}");
    assert!(
        out.contains("KUBECONFIG=") && out.contains("kubectl get nodes"),
        "{out}"
    );

    let expected: BTreeSet<String> = [
        "/usr/local/bin/skiff",
        "/usr/local/bin/skiff-killall.sh",
        "/usr/local/bin/skiff-uninstall.sh",
        "/etc/systemd/system/skiff.service",
        "/etc/systemd/system/skiff.service.env",
        "/etc/skiff/.installed-dirs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(s.files(), expected);
    assert_eq!(s.mode("/usr/local/bin/skiff"), 0o755);
    assert_eq!(s.mode("/usr/local/bin/skiff-killall.sh"), 0o755);
    assert_eq!(s.mode("/usr/local/bin/skiff-uninstall.sh"), 0o755);
    assert_eq!(s.mode("/etc/systemd/system/skiff.service"), 0o644);
    assert_eq!(s.mode("/etc/systemd/system/skiff.service.env"), 0o600);
    assert_eq!(s.mode("/etc/skiff"), 0o700);
    assert_eq!(s.mode("/etc"), 0o755);
    assert_eq!(
        std::fs::read(s.path("/usr/local/bin/skiff")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_skiff")).unwrap()
    );

    // The environment file has the SKIFF_ settings, not the installer's.
    assert_eq!(
        s.read("/etc/systemd/system/skiff.service.env"),
        "SKIFF_CONFIG_FILE='/etc/skiff/edge.yaml'\n"
    );
    let unit = s.read("/etc/systemd/system/skiff.service");
    let root = s.root().display().to_string();
    for line in [
        "Type=notify",
        "Delegate=yes",
        "KillMode=process",
        "Restart=always",
        &format!("EnvironmentFile=-{root}/etc/systemd/system/skiff.service.env"),
        &format!("ExecStart={root}/usr/local/bin/skiff server \"--cluster-cidr\" \"10.50.0.0/16\""),
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in\n{unit}");
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(s.path("/etc/systemd/system/skiff.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    assert!(
        verify.status.success() && stderr(&verify).trim().is_empty(),
        "{verify:?}"
    );
    assert_eq!(
        s.calls(),
        [
            "systemctl daemon-reload",
            "systemctl enable skiff",
            "systemctl restart skiff"
        ]
    );

    // The same again: nothing is written and the service is not restarted.
    let out = s.install_ok(&env, &["--cluster-cidr", "10.50.0.0/16"]);
    assert!(!out.contains("wrote"), "{out}");
    assert_eq!(s.files(), expected);
    assert_eq!(
        s.calls(),
        ["systemctl enable skiff", "systemctl start skiff"]
    );

    // Another flag: the unit is rewritten and the service restarted.
    let out = s.install_ok(&env, &["--cluster-cidr", "10.60.0.0/16"]);
    assert!(out.contains("skiff.service"), "{out}");
    assert!(!out.contains("usr/local/bin/skiff\n"), "{out}");
    assert_eq!(
        s.calls(),
        [
            "systemctl daemon-reload",
            "systemctl enable skiff",
            "systemctl restart skiff"
        ]
    );

    // Installed but neither enabled nor started when asked.
    let mut skip = env.to_vec();
    skip.push(("INSTALL_SKIFF_SKIP_ENABLE", "true"));
    s.install_ok(&skip, &[]);
    assert!(s.calls().is_empty());
    let mut no_start = env.to_vec();
    no_start.push(("INSTALL_SKIFF_SKIP_START", "true"));
    s.install_ok(&no_start, &["--cluster-cidr", "10.70.0.0/16"]);
    assert_eq!(
        s.calls(),
        ["systemctl daemon-reload", "systemctl enable skiff"]
    );
    // The changes those runs made are still owed a restart.
    s.install_ok(&env, &["--cluster-cidr", "10.70.0.0/16"]);
    assert_eq!(
        s.calls(),
        [
            "systemctl daemon-reload",
            "systemctl enable skiff",
            "systemctl restart skiff"
        ]
    );
    s.install_ok(&env, &["--cluster-cidr", "10.70.0.0/16"]);
    assert_eq!(
        s.calls(),
        ["systemctl enable skiff", "systemctl start skiff"]
    );

    // An agent's install on this box is refused: both would share its data.
    let out = s.install(
        &[
            ("SKIFF_URL", "https://10.0.0.1:6443"),
            ("SKIFF_TOKEN", "K10abc::server:def"),
            ("INSTALL_SKIFF_INIT", "systemd"),
            ("INSTALL_SKIFF_SKIP_DOWNLOAD", "true"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("runs a skiff server"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path("/etc/systemd/system/skiff-agent.service").exists());
}

/// What install.sh writes by default is the unit in packaging/systemd
/// (which tests/packaging_units.rs verifies), with the scratch root taken
/// out of its paths.
#[test]
fn the_units_written_are_the_packaged_ones() {
    for (env, unit) in [
        (vec![], "skiff.service"),
        (
            vec![
                ("SKIFF_URL", "https://10.0.0.1:6443"),
                ("SKIFF_TOKEN", "K10abc::server:def"),
            ],
            "skiff-agent.service",
        ),
    ] {
        let s = Scratch::new();
        let mut env = env;
        env.extend(local_binary());
        env.push(("INSTALL_SKIFF_INIT", "systemd"));
        s.install_ok(&env, &[]);
        let written = s
            .read(&format!("/etc/systemd/system/{unit}"))
            .replace(&s.root().display().to_string(), "");
        let packaged = std::fs::read_to_string(Path::new("packaging/systemd").join(unit)).unwrap();
        assert_eq!(written, packaged, "{unit}");
    }
}

#[test]
fn a_wrong_checksum_installs_nothing() {
    let downloads = Downloads::serve(Some(&"0".repeat(64)));
    let s = Scratch::new();
    let out = s.install(
        &[
            ("SKIFF_DOWNLOAD_URL", &downloads.base),
            ("INSTALL_SKIFF_ALLOW_HTTP", "true"),
            ("INSTALL_SKIFF_INIT", "systemd"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    assert!(s.files().is_empty(), "{:?}", s.files());
    assert!(s.calls().is_empty());

    // A download directory without the binary is an error too.
    let out = s.install(
        &[
            ("SKIFF_DOWNLOAD_URL", &format!("{}/nowhere", downloads.base)),
            ("INSTALL_SKIFF_ALLOW_HTTP", "true"),
            ("INSTALL_SKIFF_INIT", "systemd"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("could not download"),
        "{}",
        stderr(&out)
    );
    assert!(s.files().is_empty(), "{:?}", s.files());

    // Plain http is refused unless allowed: the checksum would come over
    // the same unprotected connection as the binary.
    let out = s.install(
        &[
            ("SKIFF_DOWNLOAD_URL", &downloads.base),
            ("INSTALL_SKIFF_INIT", "systemd"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("plain http"), "{}", stderr(&out));
    assert!(s.files().is_empty(), "{:?}", s.files());
    drop(downloads.dir);
}

#[test]
fn an_agent_needs_a_server_and_a_token() {
    let s = Scratch::new();
    let mut env = local_binary().to_vec();
    env.push(("INSTALL_SKIFF_INIT", "systemd"));

    env.push(("SKIFF_URL", "https://10.0.0.1:6443"));
    let out = s.install(&env, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SKIFF_TOKEN"), "{}", stderr(&out));
    assert!(s.files().is_empty(), "{:?}", s.files());

    let mut no_url = local_binary().to_vec();
    no_url.push(("INSTALL_SKIFF_EXEC", "agent"));
    let out = s.install(&no_url, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SKIFF_URL"), "{}", stderr(&out));

    let mut plain = env.clone();
    plain.pop();
    plain.push(("SKIFF_URL", "http://10.0.0.1:6443"));
    plain.push(("SKIFF_TOKEN", "x"));
    let out = s.install(&plain, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("https://"), "{}", stderr(&out));
    assert!(s.files().is_empty(), "{:?}", s.files());

    env.push(("SKIFF_TOKEN", "K10abc::server:def"));
    let out = s.install(&env, &["server"]);
    assert!(!out.status.success(), "a server given SKIFF_URL");
    assert!(stderr(&out).contains("SKIFF_URL"), "{}", stderr(&out));

    // A token given as a flag would land in the world-readable unit; a
    // SKIFF_ value that the env file cannot hold is refused before
    // anything is written.
    let out = s.install(&env, &["--token=K10abc::server:def"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("SKIFF_TOKEN"), "{}", stderr(&out));
    let mut quote = env.clone();
    quote.push(("SKIFF_NODE_NAME", "it's"));
    let out = s.install(&quote, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SKIFF_NODE_NAME may not contain a single quote"),
        "{}",
        stderr(&out)
    );
    assert!(s.files().is_empty(), "{:?}", s.files());

    s.install_ok(&env, &["--node-label", "site=north shed"]);
    assert_eq!(s.mode("/etc/systemd/system/skiff-agent.service.env"), 0o600);
    assert_eq!(
        s.read("/etc/systemd/system/skiff-agent.service.env"),
        "SKIFF_TOKEN='K10abc::server:def'\nSKIFF_URL='https://10.0.0.1:6443'\n"
    );
    let unit = s.read("/etc/systemd/system/skiff-agent.service");
    assert!(unit.lines().any(|l| l == "Type=exec"), "{unit}");
    let exec = format!(
        "ExecStart={}/usr/local/bin/skiff agent \"--node-label\" \"site=north shed\"",
        s.root().display()
    );
    assert!(unit.lines().any(|l| l == exec), "{unit}");
    assert!(!s.path("/etc/systemd/system/skiff.service").exists());
    assert_eq!(
        s.calls(),
        [
            "systemctl daemon-reload",
            "systemctl enable skiff-agent",
            "systemctl restart skiff-agent"
        ]
    );
}

/// A bind mount (read-only: standing for a read-only /usr), removed again
/// whatever happens.
struct Bind(PathBuf);

impl Bind {
    /// `source` shown at `target` (writable), unmounted on drop.
    fn show(source: &Path, target: &Path) -> Bind {
        support::run_ok(Command::new("mount").arg("--bind").arg(source).arg(target));
        Bind(target.to_path_buf())
    }

    fn mount(dir: &Path) -> Bind {
        std::fs::create_dir_all(dir).unwrap();
        support::run_ok(Command::new("mount").arg("--bind").arg(dir).arg(dir));
        let guard = Bind(dir.to_path_buf());
        support::run_ok(
            Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(dir),
        );
        guard
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_usr_local_bin_installs_to_opt_bin() {
    let s = Scratch::new();
    let _ro = Bind::mount(&s.path("/usr/local/bin"));
    let mut env = local_binary().to_vec();
    env.push(("INSTALL_SKIFF_INIT", "systemd"));
    let out = s.install_ok(&env, &[]);
    assert!(out.contains("read-only"), "{out}");
    assert_eq!(s.mode("/opt/bin/skiff"), 0o755);
    assert!(s.path("/opt/bin/skiff-uninstall.sh").exists());
    let unit = s.read("/etc/systemd/system/skiff.service");
    let exec = format!("ExecStart={}/opt/bin/skiff server", s.root().display());
    assert!(unit.lines().any(|l| l == exec), "{unit}");
}

#[test]
fn openrc_gets_an_init_script() {
    let s = Scratch::new();
    let mut env = local_binary().to_vec();
    env.push(("INSTALL_SKIFF_INIT", "openrc"));
    env.push(("SKIFF_DATA_DIR", "/srv/skiff"));
    s.install_ok(&env, &["--node-label", "it's $HOME \"here\" `x`\\"]);
    assert_eq!(s.mode("/etc/init.d/skiff"), 0o755);
    assert_eq!(s.mode("/etc/skiff/skiff.env"), 0o600);
    assert_eq!(
        s.read("/etc/skiff/skiff.env"),
        "SKIFF_DATA_DIR='/srv/skiff'\n"
    );
    let script = s.read("/etc/init.d/skiff");
    assert!(script.starts_with("#!/sbin/openrc-run\n"), "{script}");
    assert!(
        script
            .lines()
            .any(|l| l
                == r#"command_args="server '--node-label' 'it'\\''s \$HOME \"here\" \`x\`\\'""#),
        "{script}"
    );
    let syntax = Command::new("sh")
        .arg("-n")
        .arg(s.path("/etc/init.d/skiff"))
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{syntax:?}");
    // The arguments come back as they were given.
    let words = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{}; eval \"set -- $command_args\"; printf '%s\\n' \"$@\"",
            script
                .lines()
                .find(|l| l.starts_with("command_args="))
                .unwrap()
        ))
        .output()
        .unwrap();
    assert_eq!(
        stdout(&words),
        "server\n--node-label\nit's $HOME \"here\" `x`\\\n"
    );
    assert_eq!(
        s.calls(),
        ["rc-update add skiff default", "rc-service skiff restart"]
    );
    assert!(!s.path("/etc/systemd").exists());
}

#[test]
fn uninstall_removes_what_was_installed_and_nothing_else() {
    let s = Scratch::new();
    // The box's own files, which must stay.
    for f in [
        "/usr/local/bin/other-tool",
        "/etc/hostname",
        "/var/lib/other/db",
    ] {
        std::fs::create_dir_all(s.path(f).parent().unwrap()).unwrap();
        std::fs::write(s.path(f), "mine").unwrap();
    }
    let before = s.files();
    let mut env = local_binary().to_vec();
    env.push(("INSTALL_SKIFF_INIT", "systemd"));
    s.install_ok(&env, &[]);
    // What running skiff leaves.
    for f in [
        "/var/lib/skiff/server/db/state.db",
        "/etc/skiff/skiff.yaml",
        "/run/skiff/x",
        "/var/log/pods/ns_pod_uid/c/0.log",
    ] {
        std::fs::create_dir_all(s.path(f).parent().unwrap()).unwrap();
        std::fs::write(s.path(f), "").unwrap();
    }
    s.calls();

    // skiff killall acts on the network namespace it runs in: a test's own.
    let net = TestNet::new();
    let uninstall = || s.uninstall(&net);

    // A mount left under the data directory (a pod's hostPath, say):
    // rm -rf would delete what it shows, so nothing is removed.
    let host_files = s.dir.path().join("host-files");
    std::fs::create_dir(&host_files).unwrap();
    std::fs::write(host_files.join("precious"), "keep").unwrap();
    let volume = s.path("/var/lib/skiff/pods/uid/volumes/data");
    std::fs::create_dir_all(&volume).unwrap();
    let mounted = Bind::show(&host_files, &volume);
    let out = uninstall();
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains("still mounted"), "{}", stderr(&out));
    assert!(host_files.join("precious").exists());
    assert!(s.path("/usr/local/bin/skiff").exists());
    drop(mounted);
    s.calls();

    let out = uninstall();
    assert!(out.status.success(), "{out:?}");
    assert!(host_files.join("precious").exists());
    assert_eq!(s.files(), before);
    for gone in [
        "/var/lib/skiff",
        "/etc/skiff",
        "/run/skiff",
        "/var/log/pods",
    ] {
        assert!(!s.path(gone).exists(), "{gone} is left");
    }
    // Uninstalling twice does no harm: the script is gone with the rest.
    assert!(!s.path("/usr/local/bin/skiff-uninstall.sh").exists());
    assert_eq!(
        s.calls(),
        [
            "systemctl stop skiff",
            "systemctl disable skiff",
            "systemctl daemon-reload"
        ]
    );
}

/// A data directory that was there before (SKIFF_DATA_DIR) is the user's:
/// uninstall leaves it, and says so; one the installer made goes.
#[test]
fn uninstall_leaves_a_data_directory_it_did_not_make() {
    for existed in [true, false] {
        let s = Scratch::new();
        let data = s.path("/home/alice");
        if existed {
            std::fs::create_dir_all(data.join("server")).unwrap();
            std::fs::write(data.join("server/notes.txt"), "mine").unwrap();
        }
        let mut env = local_binary().to_vec();
        env.push(("INSTALL_SKIFF_INIT", "systemd"));
        let with_slash = format!("{}/", data.display());
        env.push(("SKIFF_DATA_DIR", &with_slash));
        s.install_ok(&env, &[]);
        let killall = s.read("/usr/local/bin/skiff-killall.sh");
        assert!(
            killall.contains(&format!("--root '{}' ", data.display())),
            "{killall}"
        );
        let out = s.uninstall(&TestNet::new());
        assert!(out.status.success(), "{out:?}");
        if existed {
            assert!(data.join("server/notes.txt").exists());
            assert!(stderr(&out).contains("left"), "{}", stderr(&out));
        } else {
            assert!(
                !data.exists(),
                "the data directory the installer made is left"
            );
        }
    }
}
