//! skiff's default seccomp profile: Docker's default (moby
//! `profiles/seccomp/default.json`) for x86_64 hosts, written down here in
//! skiff's own terms and turned into a [`Profile`] so that it goes through
//! the same resolution as a `--security-opt seccomp=FILE` profile.
//!
//! Where it is stricter than Docker's, on purpose (issue 10):
//! - `io_uring_*` are denied (as Docker does since 25.0: a large kernel
//!   attack surface that bypasses the syscall filter for the I/O it does);
//! - `socket` refuses AF_PACKET (raw link-layer frames: spoofing on the node
//!   bridge) and NETLINK_AUDIT besides Docker's AF_VSOCK, and a family with
//!   bits above 32 (the kernel truncates the `int`, the filter would not);
//! - i386's `socketcall` may not create sockets (SYS_SOCKET): the family is
//!   behind a pointer the filter cannot read, so it would bypass the rules
//!   above; i386 libcs use the `socket` call itself since Linux 4.3.

use serde_json::json;

use super::profile::Profile;

/// Allowed to every container, whatever its capabilities.
const ALWAYS: &str = "
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64
ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr listxattrat
llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack
membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync
munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2
pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll
ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64
pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop
semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketpair splice stat stat64 statfs statfs64 statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork
vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace
";

/// Allowed only with a capability (a container granted it may use them).
const WITH_CAPABILITY: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree open_tree_attr perf_event_open quotactl quotactl_fd \
         setdomainname sethostname setns syslog umount umount2 unshare listmount statmount",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// `personality` values that only select the Linux ABI (and query it).
const PERSONALITIES: &[u64] = &[0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Flags of clone(2) that create namespaces: CLONE_NEWNS, NEWCGROUP,
/// NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NAMESPACES: u64 = 0x7e02_0000;

const AF_NETLINK: u64 = 16;
const NETLINK_AUDIT: u64 = 9;
const AF_PACKET: u64 = 17;
const AF_VSOCK: u64 = 40;
const ENOSYS: u32 = 38;
/// socketcall(2)'s call number for socket(2).
const SYS_SOCKET: u64 = 1;

fn names(list: &str) -> Vec<&str> {
    list.split_whitespace().collect()
}

/// The default profile (before resolution against a container's
/// capabilities).
pub fn profile() -> Result<Profile, serde_json::Error> {
    let mut rules = vec![json!({"names": names(ALWAYS), "action": "SCMP_ACT_ALLOW"})];
    // Checked before the allowing rule below (rules match in order).
    rules.push(json!({
        "names": ["socket"], "action": "SCMP_ACT_ERRNO",
        "args": [
            {"index": 0, "value": AF_NETLINK, "op": "SCMP_CMP_EQ"},
            {"index": 2, "value": 0xffff_ffffu64, "valueTwo": NETLINK_AUDIT, "op": "SCMP_CMP_MASKED_EQ"},
        ],
    }));
    rules.push(json!({
        "names": ["socket"], "action": "SCMP_ACT_ALLOW",
        "args": [
            {"index": 0, "value": 0xffff_ffff_0000_0000u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
            {"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"},
            {"index": 0, "value": AF_PACKET, "op": "SCMP_CMP_NE"},
        ],
    }));
    rules.push(json!({
        "names": ["socketcall"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": SYS_SOCKET, "op": "SCMP_CMP_NE"}],
    }));
    for p in PERSONALITIES {
        rules.push(json!({
            "names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}],
        }));
    }
    rules.push(json!({
        "names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["amd64", "x32"]},
    }));
    rules.push(json!({
        "names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW",
        "includes": {"arches": ["amd64", "x32", "x86"]},
    }));
    for (cap, list) in WITH_CAPABILITY {
        rules.push(json!({
            "names": names(list), "action": "SCMP_ACT_ALLOW",
            "includes": {"caps": [cap]},
        }));
    }
    rules.push(json!({
        "names": ["clone"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": CLONE_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        "excludes": {"caps": ["CAP_SYS_ADMIN"]},
    }));
    // clone3's flags are behind a pointer the filter cannot read: ENOSYS
    // makes libcs fall back to clone, whose flags it can.
    rules.push(json!({
        "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
        "excludes": {"caps": ["CAP_SYS_ADMIN"]},
    }));
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{
            "architecture": "SCMP_ARCH_X86_64",
            "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        }],
        "syscalls": rules,
    });
    serde_json::from_value(profile)
}
