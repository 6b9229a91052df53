//! Printers of apps/v1 and batch/v1: deployments, replicasets,
//! statefulsets, daemonsets, jobs, cronjobs; columns and cells side by side.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    age, array_at, col, condition_true, format_label_selector, format_labels, int_at,
    layout_containers, name, opt_str, wide, Column, Printer, AGE, CONTAINERS_DESC, IMAGES_DESC,
    NAME,
};
use crate::api::duration;
use crate::api::selector::LabelSelector;

const CONTAINERS: Column = wide("Containers", "string", CONTAINERS_DESC);
const IMAGES: Column = wide("Images", "string", IMAGES_DESC);
const SELECTOR: Column = wide("Selector", "string", "A label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set.");

/// `spec.replicas`, which the API defaults to 1 when omitted.
fn desired_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The `Ready` column of Deployments and StatefulSets, and its cell:
/// ready replicas out of those desired, as `2/3`.
const READY_OF_DESIRED: Column = col("Ready", "string", "Number of the pod with ready state");

fn ready_of_desired(obj: &Value) -> Value {
    json!(format!(
        "{}/{}",
        int_at(obj, "/status/readyReplicas"),
        desired_replicas(obj)
    ))
}

fn containers(obj: &Value, template: &str) -> (Value, Value) {
    layout_containers(array_at(obj, &format!("{template}/spec/containers")))
}

pub const DEPLOYMENTS: Printer = Printer {
    columns: deployments_columns,
    cells: deployments_cells,
};

fn deployments_columns() -> Vec<Column> {
    vec![
            NAME,
            READY_OF_DESIRED,
            col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ]
}

fn deployments_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    // printDeployment prints the selector itself: "" when empty,
    // "<invalid>" when it cannot be parsed.
    let selector = match LabelSelector::from_label_selector_json(
        obj.pointer("/spec/selector").unwrap_or(&Value::Null),
    ) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_string(),
    };
    let (names, images) = containers(obj, "/spec/template");
    row.extend([
        ready_of_desired(obj),
        json!(int_at(obj, "/status/updatedReplicas")),
        json!(int_at(obj, "/status/availableReplicas")),
        age(obj, now),
        names,
        images,
        json!(selector),
    ]);
    row
}

pub const REPLICASETS: Printer = Printer {
    columns: replicasets_columns,
    cells: replicasets_cells,
};

fn replicasets_columns() -> Vec<Column> {
    vec![
        NAME,
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired replicas.",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas.",
        ),
        col(
            "Ready",
            "integer",
            "The number of ready replicas for this replica set.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ]
}

fn replicasets_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    replicas_row(
        obj,
        now,
        format_label_selector(obj.pointer("/spec/selector")),
    )
}

/// A ReplicaSet's or ReplicationController's row: they differ only in how
/// their selector is written.
fn replicas_row(obj: &Value, now: DateTime<Utc>, selector: String) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let (names, images) = containers(obj, "/spec/template");
    row.extend([
        json!(desired_replicas(obj)),
        json!(int_at(obj, "/status/replicas")),
        json!(int_at(obj, "/status/readyReplicas")),
        age(obj, now),
        names,
        images,
        json!(selector),
    ]);
    row
}

pub const STATEFULSETS: Printer = Printer {
    columns: statefulsets_columns,
    cells: statefulsets_cells,
};

fn statefulsets_columns() -> Vec<Column> {
    vec![NAME, READY_OF_DESIRED, AGE, CONTAINERS, IMAGES]
}

fn statefulsets_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let (names, images) = containers(obj, "/spec/template");
    row.extend([ready_of_desired(obj), age(obj, now), names, images]);
    row
}

pub const DAEMONSETS: Printer = Printer {
    columns: daemonsets_columns,
    cells: daemonsets_cells,
};

fn daemonsets_columns() -> Vec<Column> {
    vec![
            NAME,
            col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ]
}

fn daemonsets_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let (names, images) = containers(obj, "/spec/template");
    row.extend([
        json!(int_at(obj, "/status/desiredNumberScheduled")),
        json!(int_at(obj, "/status/currentNumberScheduled")),
        json!(int_at(obj, "/status/numberReady")),
        json!(int_at(obj, "/status/updatedNumberScheduled")),
        json!(int_at(obj, "/status/numberAvailable")),
        json!(format_labels(
            obj.pointer("/spec/template/spec/nodeSelector")
        )),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(obj.pointer("/spec/selector"))),
    ]);
    row
}

pub const JOBS: Printer = Printer {
    columns: jobs_columns,
    cells: jobs_cells,
};

fn jobs_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ]
}

fn jobs_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let (names, images) = containers(obj, "/spec/template");
    row.extend([
        json!(job_status(obj)),
        json!(job_completions(obj)),
        json!(job_duration(obj, now)),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(obj.pointer("/spec/selector"))),
    ]);
    row
}

pub const CRONJOBS: Printer = Printer {
    columns: cronjobs_columns,
    cells: cronjobs_cells,
};

fn cronjobs_columns() -> Vec<Column> {
    vec![
            NAME,
            col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false."),
            col("Active", "integer", "A list of pointers to currently running jobs."),
            col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ]
}

fn cronjobs_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let last = match opt_str(obj, "/status/lastScheduleTime") {
        Some(t) => duration::since(Some(t), now),
        None => "<none>".to_string(),
    };
    let suspend = match obj.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let (names, images) = containers(obj, "/spec/jobTemplate/spec/template");
    row.extend([
        json!(opt_str(obj, "/spec/schedule").unwrap_or_default()),
        json!(opt_str(obj, "/spec/timeZone").unwrap_or("<none>")),
        json!(suspend),
        json!(array_at(obj, "/status/active").len()),
        json!(last),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(
            obj.pointer("/spec/jobTemplate/spec/selector")
        )),
    ]);
    row
}

/// The 1.32 STATUS column of jobs.
fn job_status(job: &Value) -> &'static str {
    let conditions = array_at(job, "/status/conditions");
    if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job_completions(job: &Value) -> String {
    let succeeded = int_at(job, "/status/succeeded");
    match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int_at(job, "/spec/parallelism");
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    }
}

fn job_duration(job: &Value, now: DateTime<Utc>) -> String {
    let start = opt_str(job, "/status/startTime").and_then(duration::parse_time);
    let end = opt_str(job, "/status/completionTime").and_then(duration::parse_time);
    match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => duration::human_duration(now.signed_duration_since(s)),
        (Some(s), Some(e)) => duration::human_duration(e.signed_duration_since(s)),
    }
}

pub const REPLICATIONCONTROLLERS: Printer = Printer {
    columns: replicationcontrollers_columns,
    cells: replicationcontrollers_cells,
};

fn replicationcontrollers_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1."),
        col("Current", "integer", "Replicas is the most recently observed number of replicas."),
        col("Ready", "integer", "The number of ready replicas for this replication controller."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template."),
    ]
}

fn replicationcontrollers_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // An RC's selector is a plain map, printed as labels are.
    replicas_row(obj, now, format_labels(obj.pointer("/spec/selector")))
}

pub const PODTEMPLATES: Printer = Printer {
    columns: podtemplates_columns,
    cells: podtemplates_cells,
};

fn podtemplates_columns() -> Vec<Column> {
    vec![
        super::Column {
            name: "Template".into(),
            ..NAME
        },
        col("Containers", "string", CONTAINERS_DESC),
        col("Images", "string", IMAGES_DESC),
        col("Pod Labels", "string", "Map of string keys and values that can be used to organize and categorize (scope and select) objects. May match selectors of replication controllers and services. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels"),
    ]
}

fn podtemplates_cells(obj: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    let (names, images) = containers(obj, "/template");
    row.extend([
        names,
        images,
        json!(format_labels(obj.pointer("/template/metadata/labels"))),
    ]);
    row
}

pub const CONTROLLERREVISIONS: Printer = Printer {
    columns: controllerrevisions_columns,
    cells: controllerrevisions_cells,
};

fn controllerrevisions_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Controller", "string", "Controller of the object."),
        col(
            "Revision",
            "integer",
            "Revision indicates the revision of the state represented by Data.",
        ),
        AGE,
    ]
}

fn controllerrevisions_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut row = vec![name(obj)];
    // `<kind>.<group>/<name>` of the controlling owner, lower-cased kind.
    let controller = array_at(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |r| {
                let kind = opt_str(r, "/kind").unwrap_or("").to_lowercase();
                let group = opt_str(r, "/apiVersion")
                    .and_then(|av| av.split_once('/'))
                    .map_or("", |(g, _)| g);
                let name = opt_str(r, "/name").unwrap_or("");
                if group.is_empty() {
                    format!("{kind}/{name}")
                } else {
                    format!("{kind}.{group}/{name}")
                }
            },
        );
    row.extend([
        json!(controller),
        json!(int_at(obj, "/revision")),
        age(obj, now),
    ]);
    row
}
