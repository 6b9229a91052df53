//! A real registry (Debian's `docker-registry`) on 127.0.0.1 inside a test's
//! own network namespace, and a busybox image built from `busybox-static`
//! with umoci. Everything is torn down by `Drop`: the registry process (by its
//! PID), then the namespace, then the temporary directory.
//!
//! Include with `mod support; #[path = "support/registry.rs"] mod registry;
//! #[path = "support/oci.rs"] mod oci;`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::{run_ok, stderr, TestNet};

pub const REGISTRY_PORT: u16 = 5000;

pub struct Registry {
    // Field order is drop order after `drop`: process first, then netns, then files.
    child: Option<Child>,
    pub net: TestNet,
    pub dir: tempfile::TempDir,
    /// Set for a registry started with [`Registry::start_secure`].
    pub secure: Option<Secure>,
}

/// What a TLS + htpasswd registry needs from its clients.
pub struct Secure {
    /// The test CA that signed the registry's certificate (PEM).
    pub ca_file: PathBuf,
    pub username: String,
    pub password: String,
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// HTTPS with a certificate from a test CA made here with openssl, and
    /// htpasswd (bcrypt, via `htpasswd -B`) auth for `username`/`password`.
    pub fn start_secure(username: &str, password: &str) -> Registry {
        Registry::launch(Some((username, password)))
    }

    fn launch(secure: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("skiff-registry-")
            .tempdir()
            .expect("temp dir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("storage dir");
        let mut extra = String::new();
        let secure = secure.map(|(user, pass)| {
            let (ca_file, cert, key) = make_test_pki(dir.path());
            let htpasswd = dir.path().join("htpasswd");
            run_ok(
                Command::new("htpasswd")
                    .args(["-B", "-b", "-c"])
                    .arg(&htpasswd)
                    .args([user, pass]),
            );
            extra = format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                cert.display(),
                key.display(),
                htpasswd.display()
            );
            Secure {
                ca_file,
                username: user.to_string(),
                password: pass.to_string(),
            }
        });
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n{extra}",
                storage.display()
            ),
        )
        .expect("registry config");
        let mut reg = Registry {
            child: None,
            net: TestNet::new(),
            dir,
            secure,
        };
        let log = fs::File::create(reg.dir.path().join("registry.log")).expect("log");
        let log2 = log.try_clone().expect("dup log");
        let child = reg
            .net
            .command("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawn docker-registry (is it installed? tests/support/install-image-deps.sh)");
        reg.child = Some(child);
        reg.wait_ready();
        reg
    }

    /// `http://127.0.0.1:5000` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.secure.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{REGISTRY_PORT}")
    }

    /// curl inside the namespace, trusting the test CA and sending the
    /// credentials when the registry wants them.
    pub fn curl(&self) -> Command {
        let mut cmd = self.net.command("curl");
        cmd.args(["-sS", "--fail-with-body"]);
        if let Some(s) = &self.secure {
            cmd.arg("--cacert")
                .arg(&s.ca_file)
                .arg("-u")
                .arg(format!("{}:{}", s.username, s.password));
        }
        cmd
    }

    /// skopeo's options for talking to this registry as `prefix` (`src`/`dest`/``).
    fn skopeo_opts(&self, prefix: &str) -> Vec<String> {
        let dash = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}-")
        };
        let mut v = vec![format!("--{dash}tls-verify=false")];
        if let Some(s) = &self.secure {
            v.push(format!("--{dash}creds={}:{}", s.username, s.password));
        }
        v
    }

    fn wait_ready(&self) {
        for _ in 0..100 {
            let ok = self
                .curl()
                .args(["-o", "/dev/null"])
                .arg(format!("{}/v2/", self.url()))
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("registry did not come up; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{REGISTRY_PORT}")
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Path of a blob's data file in the registry's filesystem storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `skopeo copy` (inside the namespace) from `src` to `docker://<registry>/<dest>`.
    pub fn skopeo_copy(&self, src: &str, dest: &str) -> Output {
        run_ok(
            self.net
                .command("skopeo")
                .args(["copy", "--quiet"])
                .args(self.skopeo_opts("dest"))
                .arg(src)
                .arg(format!("docker://{}/{dest}", self.host())),
        )
    }

    /// The raw manifest of `name` as the registry serves it.
    pub fn raw_manifest(&self, name: &str) -> serde_json::Value {
        let out = run_ok(
            self.net
                .command("skopeo")
                .args(["inspect", "--raw"])
                .args(self.skopeo_opts(""))
                .arg(format!("docker://{}/{name}", self.host())),
        );
        serde_json::from_slice(&out.stdout).expect("manifest JSON")
    }

    pub fn manifest_digest(&self, name: &str) -> String {
        let out = run_ok(
            self.net
                .command("skopeo")
                .args(["inspect", "--format", "{{.Digest}}"])
                .args(self.skopeo_opts(""))
                .arg(format!("docker://{}/{name}", self.host())),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Registry {
    /// Upload a blob (POST for an upload session, then one PUT with the
    /// data and its digest); returns its digest. Used for images written by
    /// hand (tests/support/oci.rs), hostile ones included: the registry checks
    /// the digest of what it receives, nothing else.
    pub fn upload_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = crate::oci::sha256(data);
        let out = run_ok(
            self.curl()
                .args(["-o", "/dev/null", "-X", "POST", "-w", "%header{location}"])
                .arg(format!("{}/v2/{repo}/blobs/uploads/", self.url())),
        );
        let location = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!location.is_empty(), "no upload location");
        let location = if location.starts_with('/') {
            format!("{}{location}", self.url())
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let file = self.dir.path().join(format!("upload-{}", &digest[7..19]));
        fs::write(&file, data).expect("write upload");
        run_ok(
            self.curl()
                .args(["-o", "/dev/null", "-X", "PUT"])
                .args(["-H", "Content-Type: application/octet-stream"])
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg(format!("{location}{sep}digest={digest}")),
        );
        let _ = fs::remove_file(&file);
        digest
    }

    /// PUT a manifest or index under `reference` (a tag or digest); returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        data: &[u8],
    ) -> String {
        let file = self.dir.path().join("manifest-upload.json");
        fs::write(&file, data).expect("write manifest");
        run_ok(
            self.curl()
                .args(["-o", "/dev/null", "-X", "PUT"])
                .arg("-H")
                .arg(format!("Content-Type: {media_type}"))
                .arg("--data-binary")
                .arg(format!("@{}", file.display()))
                .arg(format!("{}/v2/{repo}/manifests/{reference}", self.url())),
        );
        crate::oci::sha256(data)
    }

    /// Push a hand-written image (its blobs, then its manifest) as `repo:tag`.
    pub fn push_image(&self, repo: &str, tag: &str, image: &crate::oci::Image) -> String {
        for blob in image.blobs() {
            self.upload_blob(repo, &blob.data);
        }
        self.put_manifest(repo, tag, crate::oci::OCI_MANIFEST, &image.manifest)
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl.
/// Returns (ca.pem, server.pem, server.key).
fn make_test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, csr) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
    );
    let ext = dir.join("server.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
            .args(["-days", "2", "-subj", "/CN=skiff test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    run_ok(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", "/CN=127.0.0.1"]),
    );
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-out")
            .arg(&cert)
            .arg("-extfile")
            .arg(&ext),
    );
    (ca, cert, key)
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- registry log ---\n{}", self.log());
        }
    }
}

/// Build an OCI layout at `<dir>/oci` holding `busybox:latest`: busybox-static
/// with a few applet symlinks, made with umoci. Returns the `oci:` source.
pub fn build_busybox_image(dir: &Path) -> String {
    crate::support::busybox::oci_image(dir, crate::support::busybox::Contents::Minimal)
}

/// Run the skiff binary inside `net` with `--root root`.
pub fn skiff(net: &TestNet, root: &Path, args: &[&str]) -> Output {
    net.command(env!("CARGO_BIN_EXE_skiff"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run skiff")
}

pub fn skiff_ok(net: &TestNet, root: &Path, args: &[&str]) -> String {
    let out = skiff(net, root, args);
    assert!(
        out.status.success(),
        "skiff {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files under `dir` (not recursing), for "nothing left behind" checks.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
