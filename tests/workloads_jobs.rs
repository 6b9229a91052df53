//! Jobs on the server's own node, end to end with the real agent and
//! kubectl: completions with parallelism, a failing Job that stops at its
//! backoffLimit, an Indexed Job whose pods see their index, and a CronJob
//! that runs every minute.

#[path = "support/containers.rs"]
mod containers;
#[path = "support/pods.rs"]
mod pods;
mod support;

use std::time::{Duration, Instant};

use pods::server_with_busybox;
use support::Server;

const NODE: &str = "job-node";

fn job(name: &str, extra_spec: &str, script: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:latest
        imagePullPolicy: Never
        command: ["sh", "-c", {script:?}]
"#
    )
}

fn get(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "job", name, "-o", "json"])).unwrap()
}

fn wait_job(
    s: &Server,
    name: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let j = get(s, name);
        if f(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {name} never {what}: {:#}\n{}",
            j["status"],
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn condition(j: &serde_json::Value, kind: &str) -> bool {
    j["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

#[test]
fn jobs_complete_fail_at_their_limit_and_index_their_pods() {
    let s = server_with_busybox(NODE);
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &job("five", "  completions: 5\n  parallelism: 2", "sleep 1"),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &job("failing", "  backoffLimit: 1", "exit 3"),
    );
    s.kubectl_stdin(
        &["apply", "-f", "-"],
        &job(
            "indexed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
            "echo index=$JOB_COMPLETION_INDEX host=$(hostname)",
        ),
    );

    // completions=5, parallelism=2: never more than two at once, five
    // successes, Complete.
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let j = get(&s, "five");
        most = most.max(j["status"]["active"].as_i64().unwrap_or(0));
        if condition(&j, "Complete") {
            assert_eq!(j["status"]["succeeded"], 5, "{:#}", j["status"]);
            assert!(j["status"]["completionTime"].is_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never complete: {:#}",
            j["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most <= 2, "{most} pods ran at once");
    let out = s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/five",
        "--timeout=10s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    // Every pod was counted and released: no tracking finalizer is left.
    let pods = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "job-name=five",
        "-o",
        "jsonpath={.items[*].metadata.finalizers}",
    ]);
    assert!(!pods.contains("job-tracking"), "{pods}");

    // backoffLimit 1: two failures, then Failed; no third pod.
    let j = wait_job(&s, "failing", "failed", |j| condition(j, "Failed"));
    assert_eq!(j["status"]["failed"], 2, "{:#}", j["status"]);
    let reason = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .map(|c| c["reason"].clone());
    assert_eq!(reason, Some(serde_json::json!("BackoffLimitExceeded")));
    let count = s.kubectl_ok(&["get", "pods", "-l", "job-name=failing", "-o", "name"]);
    assert_eq!(count.lines().count(), 2, "{count}");

    // Indexed: each pod sees its index and is named for it.
    let j = wait_job(&s, "indexed", "complete", |j| condition(j, "Complete"));
    assert_eq!(j["status"]["completedIndexes"], "0-2");
    let names = s.kubectl_ok(&["get", "pods", "-l", "job-name=indexed", "-o", "name"]);
    for i in 0..3 {
        let pod = names
            .lines()
            .find(|n| n.starts_with(&format!("pod/indexed-{i}-")))
            .unwrap_or_else(|| panic!("no pod for index {i}: {names}"));
        let log = s.kubectl_ok(&["logs", pod]);
        assert_eq!(log.trim(), format!("index={i} host=indexed-{i}"));
    }
}

const CRON: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: minutely
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  jobTemplate:
    metadata:
      labels: {made-by: cron}
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: busybox:latest
            imagePullPolicy: Never
            command: ["sh", "-c", "echo tick"]
"#;

fn get_kind(s: &Server, kind: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&s.kubectl_ok(&["get", kind, name, "-o", "json"])).unwrap()
}

#[test]
fn a_cronjob_runs_every_minute() {
    let s = server_with_busybox("cron-node");
    // A zone the tz database does not know is refused at the door.
    let bad = CRON.replace("Etc/UTC", "Mars/Olympus");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.timeZone") && err.contains("unknown time zone Mars/Olympus"),
        "{err}"
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], CRON);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The next minute comes: a Job named for its minute, owned by the
    // CronJob, carrying the template's labels and the scheduled time; it
    // runs and completes, and the CronJob records it.
    let deadline = Instant::now() + Duration::from_secs(150);
    let cj = loop {
        let cj = get_kind(&s, "cronjob", "minutely");
        if cj["status"]["lastSuccessfulTime"].is_string() {
            break cj;
        }
        assert!(
            Instant::now() < deadline,
            "no successful run: {:#}\n{}",
            cj["status"],
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let scheduled = cj["status"]["lastScheduleTime"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs = s.kubectl_ok(&["get", "jobs", "-l", "made-by=cron", "-o", "json"]);
    let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    let job = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| condition(j, "Complete"))
        .unwrap_or_else(|| panic!("no complete job: {jobs:#}"));
    let name = job["metadata"]["name"].as_str().unwrap();
    let minute: i64 = name.strip_prefix("minutely-").unwrap().parse().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(&scheduled).unwrap();
    assert_eq!(at.timestamp() % 60, 0, "{scheduled}");
    assert!(minute <= at.timestamp() / 60, "{name} after {scheduled}");
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["uid"], cj["metadata"]["uid"]);
    let stamp = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .unwrap_or_default();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
    let pods = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("job-name={name}"),
        "-o",
        "name",
    ]);
    let log = s.kubectl_ok(&["logs", pods.lines().next().unwrap_or_default()]);
    assert_eq!(log.trim(), "tick");
    let table = s.kubectl_ok(&["get", "cronjob", "minutely"]);
    assert!(
        table.contains("* * * * *") && table.contains("Etc/UTC"),
        "{table}"
    );

    // Suspended, it starts nothing more; a run by hand still works (kubectl
    // makes it from the template).
    s.kubectl_ok(&[
        "patch",
        "cronjob",
        "minutely",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    s.kubectl_ok(&["create", "job", "--from=cronjob/minutely", "by-hand"]);
    wait_job(&s, "by-hand", "complete", |j| condition(j, "Complete"));
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=CronJob",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
}

fn reason_of(j: &serde_json::Value, kind: &str) -> (String, String) {
    let c = j["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or_default();
    (
        c["reason"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn job_policies_end_jobs_early_and_finished_jobs_expire() {
    let s = server_with_busybox(NODE);
    let apply = |name: &str, spec: &str, script: &str| {
        let out = s.kubectl_stdin(&["apply", "-f", "-"], &job(name, spec, script));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apply("ttl", "  ttlSecondsAfterFinished: 2", "true");
    // Restarted in place: its restarts are what the limit counts.
    let restarting = job("restarting", "  backoffLimit: 1", "exit 1")
        .replace("restartPolicy: Never", "restartPolicy: OnFailure");
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &restarting);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    apply(
        "policy",
        "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes: {containerName: main, operator: In, values: [42]}",
        "exit 42",
    );
    apply(
        "perindex",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  backoffLimitPerIndex: 1",
        "[ $JOB_COMPLETION_INDEX = 1 ] && exit 1; exit 0",
    );
    apply(
        "success",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  successPolicy:\n    rules:\n    - succeededIndexes: \"0\"",
        "[ $JOB_COMPLETION_INDEX = 0 ] && exit 0; sleep 3600",
    );

    // FailJob on the first pod's exit code: no retry, however large the
    // backoff limit.
    let j = wait_job(&s, "policy", "failed", |j| condition(j, "Failed"));
    let (reason, message) = reason_of(&j, "Failed");
    assert_eq!(reason, "PodFailurePolicy");
    assert!(
        message.starts_with("Container main for pod default/policy-")
            && message.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(j["status"]["failed"], 1, "{:#}", j["status"]);

    // Index 1 fails twice (its limit is one retry), the others succeed.
    let j = wait_job(&s, "perindex", "failed", |j| condition(j, "Failed"));
    assert_eq!(reason_of(&j, "Failed").0, "FailedIndexes");
    assert_eq!(j["status"]["failedIndexes"], "1", "{:#}", j["status"]);
    assert_eq!(j["status"]["completedIndexes"], "0,2", "{:#}", j["status"]);
    let retry = s.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "job-name=perindex,batch.kubernetes.io/job-completion-index=1",
        "-o",
        "jsonpath={.items[*].metadata.annotations.batch\\.kubernetes\\.io/job-index-failure-count}",
    ]);
    assert_eq!(retry.trim(), "1", "the retry carries the index's failures");

    // Index 0 is enough: the rest are stopped.
    let j = wait_job(&s, "success", "complete", |j| condition(j, "Complete"));
    let (reason, message) = reason_of(&j, "Complete");
    assert_eq!(
        (reason.as_str(), message.as_str()),
        ("SuccessPolicy", "Matched rules at index 0")
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = s.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "job-name=success",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ]);
        if left.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {left}");
        std::thread::sleep(Duration::from_millis(250));
    }

    let j = wait_job(&s, "restarting", "failed", |j| condition(j, "Failed"));
    assert_eq!(reason_of(&j, "Failed").0, "BackoffLimitExceeded");
    // One pod, restarted in place, then stopped: not a second pod.
    assert_eq!(j["status"]["failed"], 1, "{:#}", j["status"]);

    // The finished Job with a TTL goes, with its pod.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = s.kubectl(&["get", "job", "ttl", "-o", "name"]);
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job ttl is still there\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s
        .kubectl_ok(&["get", "pods", "-l", "job-name=ttl", "-o", "name"])
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the ttl job's pod stayed");
        std::thread::sleep(Duration::from_millis(250));
    }
}
