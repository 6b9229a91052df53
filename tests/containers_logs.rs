//! CRI log files: format, tail/timestamps, size-based rotation.

#[path = "support/containers.rs"]
mod containers;
mod support;

use containers::Engine;

#[test]
fn cri_format_tail_and_timestamps() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; printf three",
    ]);
    let v = e.inspect("talk");
    let log = std::fs::read_to_string(v["LogPath"].as_str().unwrap()).unwrap();
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert_eq!(lines.len(), 3, "{log}");
    for l in &lines {
        assert!(chrono::DateTime::parse_from_rfc3339(l[0]).is_ok(), "{log}");
    }
    let rest: Vec<_> = lines.iter().map(|l| (l[1], l[2], l[3])).collect();
    assert!(
        rest.contains(&("stdout", "F", "one"))
            && rest.contains(&("stderr", "F", "two"))
            && rest.contains(&("stdout", "F", "three")),
        "{log}"
    );
    let out = e.skiff(&["logs", "talk"]);
    assert_eq!(support::stdout(&out), "one\nthree\n");
    assert_eq!(support::stderr(&out), "two\n");
    assert_eq!(e.ok(&["logs", "--tail", "1", "talk"]), "three\n");
    let ts = e.ok(&["logs", "--timestamps", "--tail", "1", "talk"]);
    let (t, text) = ts.trim().split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(t).is_ok() && text == "three",
        "{ts}"
    );
    assert_eq!(
        e.ok(&[
            "logs",
            "--since",
            "2000-01-01T00:00:00Z",
            "--tail",
            "1",
            "talk"
        ]),
        "three\n"
    );
    e.ok(&["rm", "talk"]);
}

#[test]
fn logs_rotate_at_the_configured_size() {
    let e = Engine::new();
    e.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-max-size",
        "4096",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1000); do echo line-$i; done",
    ]);
    let v = e.inspect("chatty");
    let log = std::path::PathBuf::from(v["LogPath"].as_str().unwrap());
    let rotated = log.with_extension("log.1");
    assert!(rotated.exists(), "no rotated file");
    for p in [&log, &rotated] {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len <= 4096, "{} is {len} bytes", p.display());
    }
    // Only one rotated file is kept, and the newest lines are there.
    let dir = log.parent().unwrap();
    let logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ctr.log"))
        .collect();
    assert_eq!(logs.len(), 2);
    let out = e.ok(&["logs", "--tail", "1", "chatty"]);
    assert_eq!(out, "line-1000\n");
    e.ok(&["rm", "chatty"]);
    e.assert_clean();
}
