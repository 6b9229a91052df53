use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, HostPathVolumeSource, Pod,
    PodSpec, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::*;

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(Into::into),
            size_limit: size.map(|s| Quantity(s.into())),
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, sub: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        sub_path: sub.map(Into::into),
        ..Default::default()
    }
}

fn container(mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: "c".into(),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn host(m: &Mount) -> &Path {
    match &m.source {
        MountSource::Host(p) => p,
        other => panic!("{other:?}"),
    }
}

fn fs_type(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| Path::new(l.split(' ').nth(4).unwrap()) == path)
        .filter_map(|l| l.split(" - ").nth(1))
        .filter_map(|l| l.split(' ').next())
        .next_back()
        .unwrap_or("")
        .to_string()
}

/// Set up, then always torn down (a tmpfs must not outlive the test).
struct Guard<'a>(&'a Path, &'a str);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        tear_down(self.0, self.1).unwrap();
    }
}

#[test]
fn empty_dirs_on_disk_and_in_memory() {
    let root = tempfile::tempdir().unwrap();
    let p = pod(vec![
        empty_dir("scratch", None, None),
        empty_dir("shm", Some("Memory"), Some("1Mi")),
    ]);
    let _g = Guard(root.path(), "uid-1");
    let v = PodVolumes::set_up(root.path(), &p, &Sources::default()).unwrap();
    let c = container(vec![
        mount("scratch", "/data", None),
        mount("shm", "/shm", None),
    ]);
    let m = v.mounts(&c, |_| None).unwrap();
    assert_eq!(m.len(), 2);
    assert!(!m[0].read_only);
    let scratch = host(&m[0]);
    assert!(scratch.ends_with("uid-1/volumes/kubernetes.io~empty-dir/scratch"));
    assert_eq!(
        fs::metadata(scratch).unwrap().permissions().mode() & 0o777,
        0o777
    );
    assert_eq!(fs_type(host(&m[1])), "tmpfs");
    // Kept as is when set up again (an agent that restarts).
    fs::write(scratch.join("f"), "kept").unwrap();
    PodVolumes::set_up(root.path(), &p, &Sources::default()).unwrap();
    assert_eq!(fs::read_to_string(scratch.join("f")).unwrap(), "kept");
    assert_eq!(
        mounts_under(root.path()).len(),
        1,
        "the tmpfs is not mounted twice"
    );
    tear_down(root.path(), "uid-1").unwrap();
    assert!(!pod_dir(root.path(), "uid-1").exists());
    assert!(mounts_under(root.path()).is_empty());
}

#[test]
fn config_map_files_are_read_only_and_refresh() {
    let root = tempfile::tempdir().unwrap();
    let vol = Volume {
        name: "page".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: "site".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let secret = Volume {
        name: "creds".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("creds".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = pod(vec![vol, secret]);
    let mut src = Sources::default();
    let cm = |text: &str| ConfigMap {
        data: Some(BTreeMap::from([("index.html".into(), text.into())])),
        ..Default::default()
    };
    // A missing ConfigMap fails the set-up with kubelet's message.
    let e = PodVolumes::set_up(root.path(), &p, &src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"page\" : configmap \"site\" not found"
    );
    src.config_maps.insert("site".into(), cm("one"));
    src.secrets.insert(
        "creds".into(),
        k8s_openapi::api::core::v1::Secret {
            data: Some(BTreeMap::from([("pw".into(), ByteString(b"pw1".to_vec()))])),
            ..Default::default()
        },
    );
    let _g = Guard(root.path(), "uid-1");
    let v = PodVolumes::set_up(root.path(), &p, &src).unwrap();
    let m = v
        .mounts(
            &container(vec![
                mount("page", "/www", None),
                mount("creds", "/s", None),
            ]),
            |_| None,
        )
        .unwrap();
    assert!(m[0].read_only && m[1].read_only);
    assert_eq!(
        fs::read_to_string(host(&m[0]).join("index.html")).unwrap(),
        "one"
    );
    assert_eq!(
        fs_type(host(&m[1])),
        "tmpfs",
        "secrets never touch the disk"
    );
    assert_eq!(fs::read_to_string(host(&m[1]).join("pw")).unwrap(), "pw1");
    src.config_maps.insert("site".into(), cm("two"));
    v.refresh(&p, &src).unwrap();
    assert_eq!(
        fs::read_to_string(host(&m[0]).join("index.html")).unwrap(),
        "two"
    );
    // A secret that grows past the room its tmpfs was made with (a
    // projected volume of several): the tmpfs grows with it.
    let big = vec![b'x'; 5 << 20];
    src.secrets.insert(
        "creds".into(),
        k8s_openapi::api::core::v1::Secret {
            data: Some(BTreeMap::from([("pw".into(), ByteString(big.clone()))])),
            ..Default::default()
        },
    );
    v.refresh(&p, &src).unwrap();
    assert_eq!(fs::read(host(&m[1]).join("pw")).unwrap(), big);
    assert_eq!(fs_type(host(&m[1])), "tmpfs");
}

#[test]
fn sub_paths_stay_in_their_volume() {
    let root = tempfile::tempdir().unwrap();
    let p = pod(vec![empty_dir("shared", None, None)]);
    let _g = Guard(root.path(), "uid-1");
    let v = PodVolumes::set_up(root.path(), &p, &Sources::default()).unwrap();
    let base = pod_dir(root.path(), "uid-1").join("volumes/kubernetes.io~empty-dir/shared");
    let m = v
        .mounts(&container(vec![mount("shared", "/a", Some("x/y"))]), |_| {
            None
        })
        .unwrap();
    assert!(host(&m[0]).ends_with("volume-subpaths/shared/c/0"), "{m:?}");
    assert!(base.join("x/y").is_dir(), "a missing subPath is made");
    // What a container could plant in the shared volume.
    std::os::unix::fs::symlink("/etc", base.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../..", base.join("up")).unwrap();
    for sub in ["escape", "escape/ssl", "up", "up/x", "../x", "/etc"] {
        let e = v
            .mounts(&container(vec![mount("shared", "/a", Some(sub))]), |_| None)
            .unwrap_err();
        assert!(matches!(e, VolumeError::SubPath(_)), "{sub}: {e}");
    }
    // A symlink that stays in the volume is followed, as kubelet does.
    std::os::unix::fs::symlink("x", base.join("link")).unwrap();
    fs::write(base.join("x/y/mark"), "here").unwrap();
    let m = v
        .mounts(
            &container(vec![mount("shared", "/a", Some("link/y"))]),
            |_| None,
        )
        .unwrap();
    assert_eq!(
        fs::read_to_string(host(&m[0]).join("mark")).unwrap(),
        "here"
    );
    // subPathExpr expands the container's variables.
    let mut c = container(vec![mount("shared", "/a", None)]);
    c.volume_mounts.as_mut().unwrap()[0].sub_path_expr = Some("$(POD)".into());
    let m = v.mounts(&c, |k| (k == "POD").then_some("p-1")).unwrap();
    assert!(base.join("p-1").is_dir());
    assert!(host(&m[0]).ends_with("volume-subpaths/shared/c/0"));
}

/// The race a container can run: once the agent has checked a subPath, swap
/// it for a symlink to the host's /etc before the engine binds it. What the
/// engine is given must still be the directory that was checked.
#[test]
fn a_sub_path_swapped_for_a_symlink_after_the_check_binds_what_was_checked() {
    let root = tempfile::tempdir().unwrap();
    let p = pod(vec![empty_dir("shared", None, None)]);
    let _g = Guard(root.path(), "uid-1");
    let v = PodVolumes::set_up(root.path(), &p, &Sources::default()).unwrap();
    let base = pod_dir(root.path(), "uid-1").join("volumes/kubernetes.io~empty-dir/shared");
    fs::create_dir(base.join("data")).unwrap();
    fs::write(base.join("data/mark"), "checked").unwrap();
    let m = v
        .mounts(
            &container(vec![mount("shared", "/a", Some("data"))]),
            |_| None,
        )
        .unwrap();
    fs::rename(base.join("data"), base.join("moved")).unwrap();
    std::os::unix::fs::symlink("/etc", base.join("data")).unwrap();
    let source = host(&m[0]);
    assert!(!source.join("passwd").exists(), "the host's /etc was bound");
    assert_eq!(fs::read_to_string(source.join("mark")).unwrap(), "checked");
    // A file works as a directory does; binding again replaces the bind.
    fs::write(base.join("moved/f"), "file").unwrap();
    for _ in 0..2 {
        let m = v
            .mounts(
                &container(vec![mount("shared", "/f", Some("moved/f"))]),
                |_| None,
            )
            .unwrap();
        assert_eq!(fs::read_to_string(host(&m[0])).unwrap(), "file");
    }
    let target = pod_dir(root.path(), "uid-1").join("volume-subpaths/shared/c/0");
    let binds = mounts_under(&target);
    assert_eq!(binds, vec![target.clone()], "one bind on the target");
}

/// A path checked in full and then changed underneath is refused, never
/// followed.
#[test]
fn opening_beneath_refuses_a_symlink_in_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir_all(base.join("a/b")).unwrap();
    std::os::unix::fs::symlink("a", base.join("l")).unwrap();
    assert!(subpath::open_beneath(&base, &base.join("a/b")).is_ok());
    assert!(subpath::open_beneath(&base, &base.join("l/b")).is_err());
    assert!(subpath::open_beneath(&base, &base.join("l")).is_err());
    assert!(subpath::open_beneath(&base, &base.join("none")).is_err());
    assert!(subpath::open_beneath(&base, Path::new("/etc")).is_err());
}

#[test]
fn host_path_types() {
    let tmp = tempfile::tempdir().unwrap();
    let hp = |path: &Path, t: &str| Volume {
        name: "h".into(),
        host_path: Some(HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some(t.into()),
        }),
        ..Default::default()
    };
    let set_up = |v: Volume| PodVolumes::set_up(tmp.path(), &pod(vec![v]), &Sources::default());
    let dir = tmp.path().join("made");
    set_up(hp(&dir, "DirectoryOrCreate")).unwrap();
    assert!(dir.is_dir());
    let file = tmp.path().join("f");
    set_up(hp(&file, "FileOrCreate")).unwrap();
    assert!(file.is_file());
    set_up(hp(&file, "File")).unwrap();
    let e = set_up(hp(&file, "Directory")).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
    let e = set_up(hp(&tmp.path().join("none"), "File")).unwrap_err();
    assert!(e.to_string().contains("is not a file"), "{e}");
    assert!(set_up(hp(&file, "Socket")).is_err());
    let m = set_up(hp(&dir, "Directory"))
        .unwrap()
        .mounts(&container(vec![mount("h", "/h", None)]), |_| None)
        .unwrap();
    assert_eq!(host(&m[0]), dir);
}

#[test]
fn unsupported_volumes_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Volume {
        name: "n".into(),
        nfs: Some(k8s_openapi::api::core::v1::NFSVolumeSource {
            server: "s".into(),
            path: "/".into(),
            read_only: None,
        }),
        ..Default::default()
    };
    let e = PodVolumes::set_up(tmp.path(), &pod(vec![v]), &Sources::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"n\" : nfs volumes are not supported yet"
    );
}

#[test]
fn mountinfo_escapes() {
    assert_eq!(unescape("/a\\040b"), "/a b");
    assert_eq!(unescape("/a\\"), "/a\\");
}

/// With an fsGroup the files get group read; a refresh with nothing new
/// finds the same set and writes nothing (a new set every sync would make
/// applications that watch `..data` reload for ever).
#[test]
fn an_fs_group_owns_the_files_and_a_refresh_leaves_them_be() {
    let root = tempfile::tempdir().unwrap();
    let secret = Volume {
        name: "creds".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("creds".into()),
            default_mode: Some(0o400),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut p = pod(vec![secret]);
    p.spec.as_mut().unwrap().security_context =
        Some(k8s_openapi::api::core::v1::PodSecurityContext {
            fs_group: Some(2000),
            ..Default::default()
        });
    let mut src = Sources::default();
    src.secrets.insert(
        "creds".into(),
        k8s_openapi::api::core::v1::Secret {
            data: Some(BTreeMap::from([("pw".into(), ByteString(b"pw".to_vec()))])),
            ..Default::default()
        },
    );
    let _g = Guard(root.path(), "uid-1");
    let v = PodVolumes::set_up(root.path(), &p, &src).unwrap();
    let dir = pod_dir(root.path(), "uid-1").join("volumes/kubernetes.io~secret/creds");
    let meta = fs::metadata(dir.join("pw")).unwrap();
    assert_eq!(
        (meta.gid(), meta.permissions().mode() & 0o777),
        (2000, 0o440)
    );
    let data = fs::read_link(dir.join(atomic::DATA_LINK)).unwrap();
    v.refresh(&p, &src).unwrap();
    assert_eq!(fs::read_link(dir.join(atomic::DATA_LINK)).unwrap(), data);
}
