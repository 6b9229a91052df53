//! A pod's volumes on the node, as kubelet lays them out: one directory per
//! pod, one per volume, bound into the containers that mount them.
//!
//! ```text
//! <root>/agent/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>   disk, or a tmpfs (medium Memory)
//! <root>/agent/pods/<uid>/volumes/kubernetes.io~configmap/<name>   files (atomic.rs)
//! <root>/agent/pods/<uid>/volumes/kubernetes.io~downward-api/<name>
//! <root>/agent/pods/<uid>/volumes/kubernetes.io~secret/<name>      files on a tmpfs: never on disk
//! <root>/agent/pods/<uid>/volumes/kubernetes.io~projected/<name>   files on a tmpfs (tokens)
//! hostPath volumes                                                  the host's path itself
//! <root>/agent/pods/<uid>/volume-subpaths/<volume>/<container>/<i>  subPath binds (subpath.rs)
//! ```
//!
//! Everything here is blocking file-system work; the worker runs it on the
//! blocking pool.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::runtime::container::containerspec::{Mount, MountSource};

pub mod atomic;
pub mod payload;
mod subpath;

pub use payload::{Sources, TokenKey};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A ConfigMap, Secret or key that is not there (kubelet's message).
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} are not supported yet")]
    Unsupported(String),
    #[error("{0}")]
    Token(String),
    #[error("{0}")]
    HostPath(String),
    #[error("{0}")]
    SubPath(String),
    #[error("{0}")]
    Write(#[from] atomic::WriteError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A volume's failure, with the volume's name: kubelet's FailedMount
/// message is `MountVolume.SetUp failed for volume "<name>" : <error>`.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {error}")]
pub struct SetUpError {
    pub volume: String,
    pub error: VolumeError,
}

/// The directory of pod `uid`'s volumes and other node-side files.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("agent").join("pods").join(uid)
}

/// The size of a tmpfs holding files from API objects: room for the set
/// being replaced and the new one (objects are at most ~1.5 MiB each).
const FILES_TMPFS_MIN: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// emptyDir, hostPath: the containers' to write (unless readOnly).
    Dir,
    /// configMap, secret, downwardAPI, projected: written by the agent,
    /// always read-only in containers (as kubelet since 1.9.4).
    Files,
}

#[derive(Debug, Clone)]
struct Placed {
    path: PathBuf,
    kind: Kind,
    /// Files kept on a tmpfs of their own (secrets, tokens): grown when a
    /// new payload would not fit beside the old one.
    tmpfs: bool,
}

impl Placed {
    fn write(&self, files: &atomic::Payload, fs_group: Option<u32>) -> Result<bool, VolumeError> {
        if self.tmpfs {
            fit_tmpfs(&self.path, files_tmpfs_size(files))?;
        }
        // The modes fsGroup gives the files are written as such, so that
        // the next write sees the same set and leaves it be.
        let owned;
        let files = match fs_group {
            Some(_) => {
                owned = files
                    .iter()
                    .map(|(k, f)| {
                        let mut f = f.clone();
                        f.mode |= 0o440;
                        (k.clone(), f)
                    })
                    .collect::<atomic::Payload>();
                &owned
            }
            None => files,
        };
        let changed = atomic::write_owned(&self.path, files, fs_group)?;
        if let Some(gid) = fs_group.filter(|_| changed) {
            own_files(&self.path, gid, 0)?;
        }
        Ok(changed)
    }
}

/// The pod's fsGroup: the group its volumes are made to belong to.
fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

/// Deeper than this, an agent-written tree is not one (a payload's paths
/// are short).
const MAX_DEPTH: usize = 64;

/// kubelet's SetVolumeOwnership for a read-only volume of files the agent
/// wrote: each entry's group becomes `gid`, files gain group (and owner)
/// read, directories setgid and search; symlinks are left as they are.
/// Containers cannot write these volumes, so nothing here changes under
/// the walk.
fn own_files(path: &Path, gid: u32, depth: usize) -> Result<(), VolumeError> {
    use std::os::unix::fs::lchown;
    let meta = fs::symlink_metadata(path).map_err(io_at(path))?;
    lchown(path, None, Some(gid)).map_err(io_at(path))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o2550))
            .map_err(io_at(path))?;
        if depth >= MAX_DEPTH {
            return Err(VolumeError::Invalid(format!(
                "{} is too deep",
                path.display()
            )));
        }
        for entry in fs::read_dir(path).map_err(io_at(path))? {
            let entry = entry.map_err(io_at(path))?;
            own_files(&entry.path(), gid, depth + 1)?;
        }
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o440)).map_err(io_at(path))?;
    }
    Ok(())
}

/// Room for the set of files being replaced and the new one, with slack.
fn files_tmpfs_size(files: &atomic::Payload) -> u64 {
    files
        .values()
        .map(|f| f.data.len() as u64)
        .sum::<u64>()
        .saturating_mul(4)
        .max(FILES_TMPFS_MIN)
}

/// Grow the tmpfs at `path` to `size` bytes when it is smaller (a Secret
/// that grew past what its volume was made for would fail every write).
fn fit_tmpfs(path: &Path, size: u64) -> Result<(), VolumeError> {
    use nix::mount::{mount, MsFlags};
    let have = crate::agent::node::host::statfs(path)
        .map_err(|e| VolumeError::Invalid(e.to_string()))?
        .capacity_bytes;
    if have >= size {
        return Ok(());
    }
    let opts = format!("size={size}");
    mount(
        None::<&str>,
        path,
        None::<&str>,
        // A remount takes the mount's flags anew: the same as when made.
        MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| io_at(path)(io::Error::from(e)))
}

/// A pod's volumes, set up.
#[derive(Debug, Clone)]
pub struct PodVolumes {
    placed: BTreeMap<String, Placed>,
    /// Where the pod's subPath binds go.
    subpaths: PathBuf,
}

/// What the pod's volumes read from the API: ConfigMap names, Secret names
/// and the tokens its projections ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Referenced {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    pub tokens: BTreeSet<TokenKey>,
}

impl Referenced {
    pub fn of(pod: &Pod) -> Referenced {
        let mut r = Referenced::default();
        for v in volumes(pod) {
            if let Some(cm) = &v.config_map {
                r.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                r.secrets.insert(s);
            }
            for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(cm) = &s.config_map {
                    r.config_maps.insert(cm.name.clone());
                }
                if let Some(sec) = &s.secret {
                    r.secrets.insert(sec.name.clone());
                }
                if let Some(t) = &s.service_account_token {
                    r.tokens.insert(payload::token_key(t));
                }
            }
        }
        r
    }

    /// Whether any of the pod's volumes changes after it starts.
    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty() && self.tokens.is_empty()
    }
}

fn volumes(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

/// Whether the pod has volumes whose files come from the API or the pod
/// itself (and so may change while it runs).
pub fn has_files(pod: &Pod) -> bool {
    volumes(pod).iter().any(|v| {
        v.config_map.is_some()
            || v.secret.is_some()
            || v.downward_api.is_some()
            || v.projected.is_some()
    })
}

impl PodVolumes {
    /// Make every volume of `pod` (again, after an agent restart: what is
    /// there is kept).
    pub fn set_up(root: &Path, pod: &Pod, src: &Sources) -> Result<PodVolumes, SetUpError> {
        let pod_dir = pod_dir(root, pod.metadata.uid.as_deref().unwrap_or_default());
        let dir = pod_dir.join("volumes");
        let mut placed = BTreeMap::new();
        for v in volumes(pod) {
            let p = set_up_one(&dir, pod, v, src).map_err(|error| SetUpError {
                volume: v.name.clone(),
                error,
            })?;
            placed.insert(v.name.clone(), p);
        }
        Ok(PodVolumes {
            placed,
            subpaths: pod_dir.join("volume-subpaths"),
        })
    }

    /// Write the files of configMap, secret, downwardAPI and projected
    /// volumes again from `src` (each changes all at once, or not at all).
    pub fn refresh(&self, pod: &Pod, src: &Sources) -> Result<(), SetUpError> {
        for v in volumes(pod) {
            let Some(p) = self.placed.get(&v.name) else {
                continue;
            };
            if p.kind != Kind::Files {
                continue;
            }
            if let Some(made) = payload::of(pod, v, src) {
                let fail = |error| SetUpError {
                    volume: v.name.clone(),
                    error,
                };
                let files = made.map_err(fail)?;
                p.write(&files, fs_group(pod)).map_err(fail)?;
            }
        }
        Ok(())
    }

    /// The mounts of container `c`, its `subPathExpr`s expanded against
    /// `env` (the container's environment). A subPath is bound here, onto a
    /// path of the pod's that the engine then binds (subpath.rs).
    pub fn mounts<'a>(
        &self,
        c: &Container,
        env: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Vec<Mount>, VolumeError> {
        let mut out = Vec::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            let placed = self.placed.get(&m.name).ok_or_else(|| {
                VolumeError::Invalid(format!("volume {:?} is not one of the pod's", m.name))
            })?;
            let sub = match (&m.sub_path, &m.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(e)) if !e.is_empty() => crate::agent::pods::spec::expand(e, &env),
                _ => String::new(),
            };
            let source = if sub.is_empty() {
                placed.path.clone()
            } else {
                let target = self
                    .subpaths
                    .join(&m.name)
                    .join(&c.name)
                    .join(i.to_string());
                subpath::bind(&placed.path, &sub, &target)?
            };
            out.push(Mount {
                destination: m.mount_path.clone(),
                source: MountSource::Host(source),
                read_only: m.read_only == Some(true) || placed.kind == Kind::Files,
            });
        }
        Ok(out)
    }
}

fn set_up_one(dir: &Path, pod: &Pod, v: &Volume, src: &Sources) -> Result<Placed, VolumeError> {
    let files = |plugin: &str, tmpfs: bool| -> Result<Placed, VolumeError> {
        let path = dir.join(plugin).join(&v.name);
        make_dir(&path, 0o755)?;
        let files = payload::of(pod, v, src).unwrap_or_else(|| Ok(Default::default()))?;
        if tmpfs && !is_mount_point(&path)? {
            mount_tmpfs(&path, Some(files_tmpfs_size(&files)))?;
        }
        let placed = Placed {
            path,
            kind: Kind::Files,
            tmpfs,
        };
        placed.write(&files, fs_group(pod))?;
        Ok(placed)
    };
    if let Some(e) = &v.empty_dir {
        let path = dir.join("kubernetes.io~empty-dir").join(&v.name);
        if let Some(m) = e
            .medium
            .as_deref()
            .filter(|m| !m.is_empty() && *m != "Memory")
        {
            return Err(VolumeError::Unsupported(format!(
                "emptyDir medium {m:?} volumes"
            )));
        }
        // Every user in every container may write it (kubelet's 0777).
        make_dir(&path, 0o777)?;
        if e.medium.as_deref() == Some("Memory") && !is_mount_point(&path)? {
            let size = match &e.size_limit {
                Some(q) => Some(quantity_bytes(&q.0)?),
                None => None,
            };
            mount_tmpfs(&path, size)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).map_err(io_at(&path))?;
        }
        // With an fsGroup the volume belongs to it, and what containers
        // make in it inherits the group (setgid). Only its top is changed:
        // a walk of what containers wrote could be raced into following a
        // link they planted.
        if let Some(gid) = fs_group(pod) {
            std::os::unix::fs::lchown(&path, None, Some(gid)).map_err(io_at(&path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o2777)).map_err(io_at(&path))?;
        }
        return Ok(Placed {
            path,
            kind: Kind::Dir,
            tmpfs: false,
        });
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        check_host_path(&path, h.type_.as_deref().unwrap_or(""))?;
        return Ok(Placed {
            path,
            kind: Kind::Dir,
            tmpfs: false,
        });
    }
    if v.config_map.is_some() {
        return files("kubernetes.io~configmap", false);
    }
    if v.secret.is_some() {
        return files("kubernetes.io~secret", true);
    }
    if v.downward_api.is_some() {
        return files("kubernetes.io~downward-api", false);
    }
    if v.projected.is_some() {
        return files("kubernetes.io~projected", true);
    }
    if let Some(c) = &v.persistent_volume_claim {
        return Err(VolumeError::Unsupported(format!(
            "persistentVolumeClaim volumes (claim {:?}: this node has no storage provisioner)",
            c.claim_name
        )));
    }
    let kind = serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "unknown".into());
    Err(VolumeError::Unsupported(format!("{kind} volumes")))
}

fn make_dir(path: &Path, mode: u32) -> Result<(), VolumeError> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => {}
        Err(e) => return Err(io_at(path)(e)),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_at(path))
}

fn quantity_bytes(q: &str) -> Result<u64, VolumeError> {
    crate::api::validation::quantity::nanos(q)
        .map(|n| (n / 1_000_000_000).max(0) as u64)
        .ok_or_else(|| VolumeError::Invalid(format!("sizeLimit {q:?} is not a valid quantity")))
}

/// Whether `path` is a mount point: its device differs from its parent's.
fn is_mount_point(path: &Path) -> Result<bool, VolumeError> {
    let here = fs::metadata(path).map_err(io_at(path))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let up = fs::metadata(parent).map_err(io_at(parent))?;
    Ok(here.dev() != up.dev() || here.ino() == up.ino())
}

fn mount_tmpfs(path: &Path, size: Option<u64>) -> Result<(), VolumeError> {
    use nix::mount::{mount, MsFlags};
    let mut opts = "mode=0755".to_string();
    if let Some(size) = size {
        opts.push_str(&format!(",size={size}"));
    }
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| io_at(path)(io::Error::from(e)))
}

/// hostPath's `type` checks, kubelet's (hostpath.checkType), with its
/// messages; the *OrCreate types make what is missing.
fn check_host_path(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let err = |m: String| Err(VolumeError::HostPath(m));
    let p = path.display();
    let meta = fs::metadata(path);
    match kind {
        // No type, no check; a missing path becomes a directory, as
        // containerd makes a missing bind source (docker does the same).
        "" => match meta {
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(path, 0o755),
            _ => Ok(()),
        },
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => err(format!(
                "hostPath type check failed: {p} is not a directory"
            )),
            Err(_) => make_dir(path, 0o755),
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => err(format!(
                "hostPath type check failed: {p} is not a directory"
            )),
            Err(_) => err(format!(
                "hostPath type check failed: {p} is not a directory"
            )),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => err(format!("hostPath type check failed: {p} is not a file")),
            Err(_) => fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map(drop)
                .map_err(io_at(path)),
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => err(format!("hostPath type check failed: {p} is not a file")),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => err(format!(
                "hostPath type check failed: {p} is not a socket file"
            )),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => err(format!(
                "hostPath type check failed: {p} is not a character device"
            )),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => err(format!(
                "hostPath type check failed: {p} is not a block device"
            )),
        },
        other => err(format!("hostPath type {other:?} is not one kubelet knows")),
    }
}

/// Remove pod `uid`'s volumes: its tmpfs mounts are unmounted first (a
/// mount left behind would keep its files, and its memory).
pub fn tear_down(root: &Path, uid: &str) -> Result<(), VolumeError> {
    tear_down_dir(&pod_dir(root, uid))
}

/// Every pod's (skiff killall).
pub fn tear_down_all(root: &Path) -> Result<(), VolumeError> {
    tear_down_dir(&root.join("agent").join("pods"))
}

/// The UIDs of the pods with a directory here.
pub fn pod_uids(root: &Path) -> Vec<String> {
    let dir = root.join("agent").join("pods");
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

fn tear_down_dir(dir: &Path) -> Result<(), VolumeError> {
    if !dir.exists() {
        return Ok(());
    }
    // Until none is left: a path may hold several stacked mounts.
    for _ in 0..64 {
        let left = mounts_under(dir);
        if left.is_empty() {
            break;
        }
        for m in left {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!("unmounting {}: {e}", m.display());
            }
        }
    }
    // Removing through a mount still there would delete what it shows (a
    // subPath's source: a hostPath's files).
    if let Some(m) = mounts_under(dir).first() {
        return Err(VolumeError::Io {
            path: m.clone(),
            source: io::Error::other("still mounted; not removing the pod's directory"),
        });
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// The mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
