//! Seccomp (issue 10): a default container gets Docker's default profile —
//! what it denies fails with EPERM (user namespaces, mounts, keyrings,
//! io_uring, perf_event_open, AF_PACKET/AF_VSOCK/NETLINK_AUDIT sockets, and
//! the same through the i386 ABI), clone3 gets ENOSYS — while ordinary
//! programs run; `--security-opt seccomp=unconfined` lifts it, a profile
//! file replaces it, and `exec` is confined like the container. Each
//! container has a session keyring of its own, as with runc; that alone
//! does not keep root's user keyring `@u` from a container running as
//! root (it can link `@u` into its session keyring and read through it):
//! the default profile's denial of keyctl/add_key/request_key does.
//!
//! The raw calls busybox cannot make are made by probes: tiny static ELF
//! programs written by the test (one system call each, exit status 0 on
//! success, the errno on failure), bound into the container.

#[path = "support/containers.rs"]
mod containers;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use containers::Engine;
use support::stderr;

const EPERM: i32 = 1;
const EACCES: i32 = 13;
const ENOSYS: i32 = 38;

/// How a probe enters the kernel.
#[derive(Clone, Copy)]
enum Abi {
    /// `syscall`, x86_64 numbers and registers.
    X86_64,
    /// `int 0x80`, i386 numbers, 32-bit registers.
    I386,
}

/// A static x86_64 ELF that makes one system call and exits with 0 when it
/// returned a non-negative value, otherwise with its errno.
fn probe_elf(abi: Abi, nr: u64, args: [u64; 6]) -> Vec<u8> {
    let mut code: Vec<u8> = Vec::new();
    match abi {
        Abi::X86_64 => {
            // mov rax/rdi/rsi/rdx/r10/r8/r9, imm64
            let regs: [&[u8]; 7] = [
                &[0x48, 0xb8],
                &[0x48, 0xbf],
                &[0x48, 0xbe],
                &[0x48, 0xba],
                &[0x49, 0xba],
                &[0x49, 0xb8],
                &[0x49, 0xb9],
            ];
            let values = std::iter::once(nr).chain(args);
            for (op, v) in regs.iter().zip(values) {
                code.extend_from_slice(op);
                code.extend_from_slice(&v.to_le_bytes());
            }
            code.extend_from_slice(&[0x0f, 0x05]); // syscall
        }
        Abi::I386 => {
            // mov eax/ebx/ecx/edx/esi/edi/ebp, imm32
            let regs = [0xb8u8, 0xbb, 0xb9, 0xba, 0xbe, 0xbf, 0xbd];
            let values = std::iter::once(nr).chain(args);
            for (op, v) in regs.iter().zip(values) {
                code.push(*op);
                code.extend_from_slice(&(v as u32).to_le_bytes());
            }
            code.extend_from_slice(&[0xcd, 0x80]); // int 0x80
            code.extend_from_slice(&[0x48, 0x63, 0xc0]); // movsxd rax, eax
        }
    }
    code.extend_from_slice(&[
        0x48, 0x85, 0xc0, // test rax, rax
        0x78, 0x04, // js err
        0x31, 0xff, // xor edi, edi
        0xeb, 0x05, // jmp exit
        0x48, 0xf7, 0xd8, // err: neg rax
        0x89, 0xc7, // mov edi, eax
        0xb8, 0xe7, 0x00, 0x00, 0x00, // exit: mov eax, 231 (exit_group)
        0x0f, 0x05, // syscall
    ]);
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + code.len() as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&v.to_le_bytes()); // ehsize phentsize phnum shentsize shnum shstrndx
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    elf.extend_from_slice(&0u64.to_le_bytes()); // offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // paddr
    elf.extend_from_slice(&size.to_le_bytes()); // filesz
    elf.extend_from_slice(&size.to_le_bytes()); // memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // align
    elf.extend_from_slice(&code);
    elf
}

fn a(first: &[u64]) -> [u64; 6] {
    let mut out = [0; 6];
    out[..first.len()].copy_from_slice(first);
    out
}

const CLONE_NEWUSER: u64 = 0x1000_0000;
const KEYCTL_READ: u64 = 11;
const KEYCTL_LINK: u64 = 8;
const KEY_SPEC_SESSION_KEYRING: i64 = -3;

/// The probes, by file name: (ABI, number, arguments). `key` is the id of
/// the host's key.
fn probes(key: i64) -> Vec<(&'static str, Abi, u64, [u64; 6])> {
    vec![
        ("getpid", Abi::X86_64, 39, a(&[])),
        ("unshare-user", Abi::X86_64, 272, a(&[CLONE_NEWUSER])),
        (
            "keyctl-read",
            Abi::X86_64,
            250,
            a(&[KEYCTL_READ, key as u64]),
        ),
        ("io-uring-setup", Abi::X86_64, 425, a(&[1, 0])),
        (
            "perf-event-open",
            Abi::X86_64,
            298,
            a(&[0, 0, u64::MAX, u64::MAX, 0]),
        ),
        ("af-packet", Abi::X86_64, 41, a(&[17, 3, 0x0300])),
        ("af-vsock", Abi::X86_64, 41, a(&[40, 1, 0])),
        ("netlink-audit", Abi::X86_64, 41, a(&[16, 3, 9])),
        ("clone3", Abi::X86_64, 435, a(&[0, 0])),
        ("i386-getpid", Abi::I386, 20, a(&[])),
        ("i386-unshare-user", Abi::I386, 310, a(&[CLONE_NEWUSER])),
        (
            "i386-keyctl-read",
            Abi::I386,
            288,
            a(&[KEYCTL_READ, key as u64]),
        ),
        // Last, in this order: root's user keyring linked into the
        // container's session keyring makes the key possessed, then read.
        (
            "keyctl-link-user",
            Abi::X86_64,
            250,
            a(&[
                KEYCTL_LINK,
                KEY_SPEC_USER_KEYRING as u64,
                KEY_SPEC_SESSION_KEYRING as u64,
            ]),
        ),
        (
            "keyctl-read-linked",
            Abi::X86_64,
            250,
            a(&[KEYCTL_READ, key as u64]),
        ),
    ]
}

fn write_probes(dir: &Path, key: i64) -> PathBuf {
    let probes_dir = dir.join("probes");
    std::fs::create_dir_all(&probes_dir).unwrap();
    for (name, abi, nr, args) in probes(key) {
        let path = probes_dir.join(name);
        std::fs::write(&path, probe_elf(abi, nr, args)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    probes_dir
}

/// A key in root's user keyring (`keyctl add user NAME SECRET @u`),
/// unlinked again on drop.
struct HostKey(i64);

const KEY_SPEC_USER_KEYRING: i64 = -4;

impl HostKey {
    fn add() -> HostKey {
        // One name per key: add_key on an existing name updates that key,
        // and the other test's drop would unlink it under this one.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name =
            std::ffi::CString::new(format!("skiff-test-{}-{n}", std::process::id())).unwrap();
        let payload = b"SECRET";
        // SAFETY: add_key with NUL-terminated strings and a payload that
        // live across the call.
        let id = unsafe {
            nix::libc::syscall(
                nix::libc::SYS_add_key,
                c"user".as_ptr(),
                name.as_ptr(),
                payload.as_ptr(),
                payload.len(),
                KEY_SPEC_USER_KEYRING,
            )
        };
        assert!(id > 0, "add_key: {}", std::io::Error::last_os_error());
        HostKey(id)
    }
}

impl Drop for HostKey {
    fn drop(&mut self) {
        const KEYCTL_UNLINK: i64 = 9;
        // SAFETY: keyctl(UNLINK) takes two integers.
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_keyctl,
                KEYCTL_UNLINK,
                self.0,
                KEY_SPEC_USER_KEYRING,
            );
        }
    }
}

/// Runs every probe in one container; (name, exit status) of each.
fn run_probes(e: &Engine, probes_dir: &Path, key: i64, extra: &[&str]) -> Vec<(String, i32)> {
    let script: String = probes(key)
        .iter()
        .map(|(name, ..)| format!("/probes/{name}; echo {name}=$?; "))
        .collect();
    let bind = format!("{}:/probes:ro", probes_dir.display());
    let mut args = vec!["run", "--rm", "-v", &bind];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    let out = e.ok(&args);
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().parse().unwrap_or(-1)))
        .collect()
}

fn status(results: &[(String, i32)], name: &str) -> i32 {
    results
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no result for {name}: {results:?}"))
        .1
}

#[test]
fn the_default_profile_denies_with_eperm() {
    let e = Engine::new();
    let key = HostKey::add();
    let probes_dir = write_probes(e.dir.path(), key.0);
    let r = run_probes(&e, &probes_dir, key.0, &[]);
    assert_eq!(status(&r, "getpid"), 0, "{r:?}");
    for denied in [
        "unshare-user",
        "keyctl-read",
        "io-uring-setup",
        "perf-event-open",
        "af-packet",
        "af-vsock",
        "netlink-audit",
        // What keeps root's @u from the container: not its own session
        // keyring (root could link @u into it), the filter.
        "keyctl-link-user",
        "keyctl-read-linked",
    ] {
        assert_eq!(status(&r, denied), EPERM, "{denied}: {r:?}");
    }
    assert_eq!(status(&r, "clone3"), ENOSYS, "{r:?}");
    // The i386 ABI is filtered by its own numbers (when the kernel has it).
    if status(&r, "i386-getpid") != ENOSYS {
        assert_eq!(status(&r, "i386-getpid"), 0, "{r:?}");
        assert_eq!(status(&r, "i386-unshare-user"), EPERM, "{r:?}");
        assert_eq!(status(&r, "i386-keyctl-read"), EPERM, "{r:?}");
    }

    // busybox's own tools see the same.
    let out = e.err(&["run", "--rm", "busybox", "unshare", "-U", "-r", "true"]);
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    e.assert_clean();
}

#[test]
fn unconfined_lifts_the_filter() {
    let e = Engine::new();
    let key = HostKey::add();
    let probes_dir = write_probes(e.dir.path(), key.0);
    let r = run_probes(
        &e,
        &probes_dir,
        key.0,
        &["--security-opt", "seccomp=unconfined"],
    );
    // A user namespace needs no capability: it works without the filter.
    assert_eq!(status(&r, "unshare-user"), 0, "{r:?}");
    assert_eq!(status(&r, "af-packet"), 0, "CAP_NET_RAW is granted: {r:?}");
    for allowed in [
        "io-uring-setup",
        "perf-event-open",
        "af-vsock",
        "netlink-audit",
    ] {
        assert_ne!(status(&r, allowed), EPERM, "{allowed}: {r:?}");
    }
    assert_ne!(status(&r, "clone3"), ENOSYS, "{r:?}");
    // The container's session keyring is its own, so it does not possess
    // root's user keyring by inheritance. This is no protection: as root it
    // can link @u in (keyctl-link-user), which only the filter prevents.
    assert_eq!(status(&r, "keyctl-read"), EACCES, "{r:?}");
    e.assert_clean();
}

#[test]
fn ordinary_programs_run_under_the_profile() {
    let e = Engine::new();
    let script = "set -e
        mkdir -p /www /tmp/t && echo hello > /www/index.html
        httpd -p 127.0.0.1:8080 -h /www
        wget -q -O - http://127.0.0.1:8080/index.html
        tar -C /www -cf /tmp/www.tar . && tar -C /tmp/t -xf /tmp/www.tar && cat /tmp/t/index.html
        ps -o pid,args | grep -q httpd && echo ps-ok
        top -b -n1 | grep -q PID && echo top-ok
        (sleep 0; echo forked) & wait
        echo $(echo sub)shell";
    let out = e.ok(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hello", "hello", "ps-ok", "top-ok", "forked", "subshell"],
        "{out}"
    );
    e.assert_clean();
}

#[test]
fn a_profile_file_replaces_the_default_and_exec_is_confined() {
    let e = Engine::new();
    let profile = e.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = e.err(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    // What the default denies is allowed by this profile.
    e.ok(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);

    // A profile skiff cannot read or apply fails the run, naming it, and
    // leaves no container behind.
    let bad = e.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let out = e.err(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        "busybox",
        "true",
    ]);
    assert!(stderr(&out).contains("bad.json"), "{}", stderr(&out));
    let out = e.err(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=x",
        "busybox",
        "true",
    ]);
    assert!(stderr(&out).contains("--security-opt"), "{}", stderr(&out));
    assert_eq!(e.ok(&["ps", "-aq"]).trim(), "");

    // exec joins the container's confinement.
    e.ok(&["run", "-d", "--name", "svc", "busybox", "sleep", "1000"]);
    let out = e.err(&["exec", "svc", "unshare", "-U", "true"]);
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(e.ok(&["exec", "svc", "echo", "ok"]).trim(), "ok");
    e.ok(&["rm", "-f", "svc"]);
    e.assert_clean();
}
