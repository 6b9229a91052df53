use std::collections::BTreeMap;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn never(_: &str) -> bool {
    false
}

#[test]
fn names_follow_docker_rules() {
    for ok in ["ab", "data", "my_vol.1-x", "0a", &"a".repeat(255)] {
        validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "",
        "a",
        "_ab",
        ".ab",
        "-ab",
        "a/b",
        "..",
        "a b",
        "ä1",
        &"a".repeat(256),
    ] {
        assert!(
            matches!(validate_name(bad), Err(VolumeError::InvalidName(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn create_get_list_and_existing_is_returned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vols = Volumes::new(tmp.path());
    assert!(vols.list().expect("list").is_empty());
    let v = vols
        .create("data", labels(&[("app", "web")]))
        .expect("create");
    assert_eq!(v.name, "data");
    assert_eq!(v.driver, "local");
    assert_eq!(v.labels, labels(&[("app", "web")]));
    assert_eq!(v.mountpoint, tmp.path().join("volumes/data/_data"));
    assert!(v.mountpoint.is_dir());
    chrono::DateTime::parse_from_rfc3339(&v.created).expect("created is RFC 3339");

    // Creating again returns the existing volume, labels unchanged.
    std::fs::write(v.mountpoint.join("f"), "x").expect("write");
    let again = vols.create("data", BTreeMap::new()).expect("create again");
    assert_eq!(again, v);
    assert!(again.mountpoint.join("f").exists());

    vols.create("other", BTreeMap::new()).expect("create");
    let names: Vec<_> = vols
        .list()
        .expect("list")
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["data", "other"]);
    assert_eq!(vols.get("other").expect("get").name, "other");
    assert!(matches!(vols.get("nope"), Err(VolumeError::NotFound(_))));
    assert!(matches!(
        vols.create("../x", BTreeMap::new()),
        Err(VolumeError::InvalidName(_))
    ));
}

#[test]
fn mountpoint_creates_on_first_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vols = Volumes::new(tmp.path());
    let mp = vols.mountpoint("cache").expect("mountpoint");
    assert!(mp.is_dir());
    std::fs::write(mp.join("kept"), "1").expect("write");
    // The second container gets the same data.
    let mp2 = vols.mountpoint("cache").expect("mountpoint");
    assert_eq!(
        std::fs::read_to_string(mp2.join("kept")).expect("read"),
        "1"
    );
}

#[test]
fn remove_refuses_in_use_and_handles_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vols = Volumes::new(tmp.path());
    let v = vols.create("busy", BTreeMap::new()).expect("create");
    std::fs::create_dir_all(v.mountpoint.join("deep/er")).expect("mkdir");
    std::fs::write(v.mountpoint.join("deep/er/f"), "x").expect("write");
    let users = |name: &str| name == "busy";
    for force in [false, true] {
        assert!(matches!(
            vols.remove("busy", force, &users),
            Err(VolumeError::InUse(_))
        ));
    }
    assert!(v.mountpoint.join("deep/er/f").exists());
    assert!(vols.remove("busy", false, &never).expect("remove"));
    assert!(!tmp.path().join("volumes/busy").exists());
    assert!(matches!(
        vols.remove("busy", false, &never),
        Err(VolumeError::NotFound(_))
    ));
    assert!(!vols.remove("busy", true, &never).expect("forced missing"));
    // Nothing hidden is left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("volumes"))
        .expect("read")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn prune_keeps_used_volumes_and_sweeps_dead_leftovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vols = Volumes::new(tmp.path());
    let a = vols.create("aa", BTreeMap::new()).expect("create");
    std::fs::write(a.mountpoint.join("f"), vec![0u8; 1000]).expect("write");
    vols.create("bb", BTreeMap::new()).expect("create");
    let dir = tmp.path().join("volumes");
    // A leftover of a process that no longer exists (PIDs never reach
    // u32::MAX) and one of this live process.
    let dead = dir.join(format!("{TMP}{}-x", u32::MAX));
    let live = dir.join(format!("{DOOMED}{}-y", std::process::id()));
    std::fs::create_dir(&dead).expect("mkdir");
    std::fs::create_dir(&live).expect("mkdir");

    let pruned = vols.prune(&|n: &str| n == "bb").expect("prune");
    assert_eq!(pruned.names, ["aa"]);
    // The 1000-byte file plus meta.json.
    assert!(pruned.bytes > 1000, "{pruned:?}");
    assert!(vols.get("bb").is_ok());
    assert!(matches!(vols.get("aa"), Err(VolumeError::NotFound(_))));
    assert!(!dead.exists());
    assert!(live.exists());
}

#[test]
fn damaged_metadata_is_skipped_in_list() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vols = Volumes::new(tmp.path());
    vols.create("good", BTreeMap::new()).expect("create");
    let bad = tmp.path().join("volumes/bad1");
    std::fs::create_dir_all(&bad).expect("mkdir");
    std::fs::write(bad.join(META), "{not json").expect("write");
    let names: Vec<_> = vols
        .list()
        .expect("list")
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["good"]);
    assert!(matches!(vols.get("bad1"), Err(VolumeError::Meta { .. })));
}
