//! How many replicas one resource metric asks for (upstream's
//! `replica_calculator.go`): the pods' usage against their requests (or
//! against an average value), with the pods that cannot be trusted yet —
//! pending, not ready, just started, without a sample — kept from tipping
//! the decision the wrong way.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The controller's knobs (kube-controller-manager's flags of the same
/// names, with their defaults).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// A ratio this close to 1 is no reason to scale.
    pub tolerance: f64,
    /// How long after its start a pod's CPU samples may still be its
    /// start-up burst.
    pub cpu_initialization: SignedDuration,
    /// A pod not ready this soon after its start has never been ready.
    pub initial_readiness_delay: SignedDuration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            tolerance: 0.1,
            cpu_initialization: SignedDuration::from_mins(5),
            initial_readiness_delay: SignedDuration::from_secs(30),
        }
    }
}

/// What the calculation needs of one pod.
#[derive(Debug, Clone)]
pub struct PodState {
    pub name: String,
    pub deleting: bool,
    pub phase: String,
    /// The Ready condition: (status is True, last transition).
    pub ready: Option<(bool, Timestamp)>,
    pub start: Option<Timestamp>,
    /// The request of the resource, summed over the containers measured
    /// (milli-units); Err names the container without one.
    pub request: Result<i64, String>,
}

/// One pod's usage sample (milli-units).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub value: i64,
    pub timestamp: Timestamp,
    pub window: SignedDuration,
}

/// What is aimed at: a utilisation of the requests, or a per-pod value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Percent of the request.
    Utilization(i32),
    /// Milli-units per pod.
    AverageValue(i64),
}

/// A recommendation and what was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub replicas: i32,
    /// Percent of the requests (utilisation targets only).
    pub utilization: Option<i32>,
    /// Mean usage per pod, in milli-units.
    pub average: i64,
}

#[derive(Default)]
struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

fn group(
    pods: &[PodState],
    samples: &BTreeMap<String, Sample>,
    cpu: bool,
    tuning: &Tuning,
    now: Timestamp,
) -> Groups {
    let mut g = Groups::default();
    for p in pods {
        if p.deleting || p.phase == "Failed" {
            g.ignored.insert(p.name.clone());
            continue;
        }
        if p.phase == "Pending" {
            g.unready.insert(p.name.clone());
            continue;
        }
        let Some(sample) = samples.get(&p.name) else {
            g.missing.insert(p.name.clone());
            continue;
        };
        if cpu {
            let unready = match (p.ready, p.start) {
                (Some((ready, since)), Some(start)) => {
                    if start + tuning.cpu_initialization > now {
                        // Still starting: only a full window of samples
                        // taken since it turned ready is its real usage.
                        !ready || sample.timestamp < since + sample.window
                    } else {
                        // Never ready since its start.
                        !ready && start + tuning.initial_readiness_delay > since
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(p.name.clone());
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// (ratio, utilisation, mean) of `samples` against their pods' requests.
fn utilization_ratio(
    samples: &BTreeMap<String, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i128, 0i128, 0i128);
    for (name, value) in samples {
        // A sample without a request is a pod that is not the target's.
        let Some(r) = requests.get(name) else {
            continue;
        };
        used += i128::from(*value);
        requested += i128::from(*r);
        n += 1;
    }
    if requested <= 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested).clamp(0, i128::from(i32::MAX)) as i32;
    Ok((
        f64::from(utilization) / f64::from(target.max(1)),
        utilization,
        (used / n).clamp(0, i128::from(i64::MAX)) as i64,
    ))
}

fn average_ratio(samples: &BTreeMap<String, i64>, target: i64) -> (f64, i64) {
    let n = samples.len().max(1) as i128;
    let sum: i128 = samples.values().map(|v| i128::from(*v)).sum();
    let mean = (sum / n).clamp(0, i128::from(i64::MAX)) as i64;
    (mean as f64 / target.max(1) as f64, mean)
}

/// A fractional count of replicas, rounded up, within what a replica count
/// can hold (the bounds clamp it further).
fn replicas_of(x: f64) -> i32 {
    if x.is_nan() {
        return 0;
    }
    x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

/// Upstream's `GetResourceReplicas` and `GetRawResourceReplicas`.
pub fn resource_replicas(
    current: i32,
    target: Target,
    resource: &str,
    pods: &[PodState],
    samples: &BTreeMap<String, Sample>,
    tuning: &Tuning,
    now: Timestamp,
) -> Result<Outcome, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group(pods, samples, resource == "cpu", tuning, now);
    let mut used: BTreeMap<String, i64> = samples
        .iter()
        .filter(|(n, _)| !g.ignored.contains(*n) && !g.unready.contains(*n))
        .map(|(n, s)| (n.clone(), s.value))
        .collect();
    // Only the target's pods count.
    used.retain(|n, _| pods.iter().any(|p| &p.name == n));
    if used.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let mut requests = BTreeMap::new();
    if let Target::Utilization(_) = target {
        for p in pods {
            match &p.request {
                Ok(r) => {
                    requests.insert(p.name.clone(), *r);
                }
                Err(container) => {
                    return Err(format!(
                        "missing request for {resource} in container {container} of Pod {}",
                        p.name
                    ))
                }
            }
        }
    }
    let ratio_of = |used: &BTreeMap<String, i64>| -> Result<(f64, Option<i32>, i64), String> {
        match target {
            Target::Utilization(t) => {
                utilization_ratio(used, &requests, t).map(|(r, u, m)| (r, Some(u), m))
            }
            Target::AverageValue(t) => {
                let (r, m) = average_ratio(used, t);
                Ok((r, None, m))
            }
        }
    };
    let (ratio, utilization, average) = ratio_of(&used)?;
    let outcome = |replicas: i32| Outcome {
        replicas,
        utilization,
        average,
    };
    let up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !up_with_unready && g.missing.is_empty() {
        if (1.0 - ratio).abs() <= tuning.tolerance {
            return Ok(outcome(current));
        }
        return Ok(outcome(replicas_of(ratio * g.ready as f64)));
    }
    // Assume the worst for the direction taken: pods without samples use
    // their whole request (target) when scaling in, nothing when scaling
    // out; pods not ready use nothing when scaling out.
    // Exactly on target, they are left out, as upstream.
    for name in g.missing.iter().filter(|_| ratio != 1.0) {
        let assumed = if ratio < 1.0 {
            match target {
                Target::Utilization(t) => {
                    let r = requests.get(name).copied().unwrap_or(0);
                    (i128::from(r) * i128::from(t.max(100)) / 100).min(i128::from(i64::MAX)) as i64
                }
                Target::AverageValue(t) => t,
            }
        } else {
            0
        };
        used.insert(name.clone(), assumed);
    }
    if up_with_unready {
        for name in &g.unready {
            used.insert(name.clone(), 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&used)?;
    if (1.0 - new_ratio).abs() <= tuning.tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(outcome(current));
    }
    let replicas = replicas_of(new_ratio * used.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(outcome(current));
    }
    Ok(outcome(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    /// A pod Running and Ready for ten minutes, asking 100m.
    fn pod(name: &str) -> PodState {
        let long_ago = now() - SignedDuration::from_mins(10);
        PodState {
            name: name.into(),
            deleting: false,
            phase: "Running".into(),
            ready: Some((true, long_ago)),
            start: Some(long_ago),
            request: Ok(100),
        }
    }

    fn sample(value: i64) -> Sample {
        Sample {
            value,
            timestamp: now() - SignedDuration::from_secs(5),
            window: SignedDuration::from_secs(15),
        }
    }

    fn samples(v: &[(&str, i64)]) -> BTreeMap<String, Sample> {
        v.iter().map(|(n, x)| (n.to_string(), sample(*x))).collect()
    }

    fn cpu(current: i32, target: i32, pods: &[PodState], s: &BTreeMap<String, Sample>) -> Outcome {
        resource_replicas(
            current,
            Target::Utilization(target),
            "cpu",
            pods,
            s,
            &Tuning::default(),
            now(),
        )
        .unwrap()
    }

    #[test]
    fn usage_over_target_scales_out_and_under_scales_in() {
        let pods = [pod("a"), pod("b")];
        let out = cpu(2, 50, &pods, &samples(&[("a", 200), ("b", 100)]));
        // 150% of requests against 50%: three times the pods.
        assert_eq!(
            out,
            Outcome {
                replicas: 6,
                utilization: Some(150),
                average: 150
            }
        );
        let out = cpu(2, 50, &pods, &samples(&[("a", 10), ("b", 10)]));
        assert_eq!(out.replicas, 1);
        assert_eq!(out.utilization, Some(10));
    }

    #[test]
    fn within_tolerance_nothing_moves() {
        let pods = [pod("a"), pod("b")];
        let out = cpu(2, 50, &pods, &samples(&[("a", 52), ("b", 53)]));
        assert_eq!(out.replicas, 2);
    }

    #[test]
    fn a_pod_without_samples_holds_a_scale_in_back() {
        // b has no sample: when scaling in it is assumed to use its whole
        // request, so the ratio is (10+100)/200 = 55% against 50%: within
        // tolerance, no change.
        let pods = [pod("a"), pod("b")];
        let out = cpu(2, 50, &pods, &samples(&[("a", 10)]));
        assert_eq!(out.replicas, 2);
        // and it counts as idle when scaling out: (300+0)/200 = 150% → 6
        let out = cpu(2, 50, &pods, &samples(&[("a", 300)]));
        assert_eq!(out.replicas, 6);
    }

    #[test]
    fn exactly_on_target_pods_without_samples_change_nothing() {
        // a is at 50% of its request against 50%; b, c, d have no sample.
        // They are left out rather than taken as idle: no scale in.
        let pods = [pod("a"), pod("b"), pod("c"), pod("d")];
        let out = cpu(4, 50, &pods, &samples(&[("a", 50)]));
        assert_eq!(out.replicas, 4);
    }

    #[test]
    fn huge_figures_saturate_instead_of_wrapping() {
        let mut big = pod("a");
        big.request = Ok(i64::MAX);
        let out = cpu(1, 50, &[big], &samples(&[("a", i64::MAX)]));
        assert_eq!(out.utilization, Some(100));
        assert_eq!(out.replicas, 2);
        let out = resource_replicas(
            1,
            Target::AverageValue(1),
            "memory",
            &[pod("a")],
            &samples(&[("a", i64::MAX)]),
            &Tuning::default(),
            now(),
        )
        .unwrap();
        assert_eq!(out.replicas, i32::MAX);
    }

    #[test]
    fn unready_and_starting_pods_do_not_push_a_scale_out() {
        let mut starting = pod("b");
        starting.start = Some(now() - SignedDuration::from_secs(20));
        starting.ready = Some((true, now() - SignedDuration::from_secs(2)));
        let pending = PodState {
            phase: "Pending".into(),
            ..pod("c")
        };
        // b's burst since it turned ready is not a full window old: unready
        // like c, and both assumed idle when scaling out: (200+0+0)/300.
        let out = cpu(
            3,
            50,
            &[pod("a"), starting, pending],
            &samples(&[("a", 200), ("b", 900)]),
        );
        assert_eq!(out.replicas, 4);
        assert_eq!(out.utilization, Some(200), "reported from the ready pods");
    }

    #[test]
    fn failed_and_deleted_pods_are_left_out() {
        let failed = PodState {
            phase: "Failed".into(),
            ..pod("b")
        };
        let deleting = PodState {
            deleting: true,
            ..pod("c")
        };
        let out = cpu(
            3,
            50,
            &[pod("a"), failed, deleting],
            &samples(&[("a", 50), ("b", 900)]),
        );
        assert_eq!(out.replicas, 3, "a is on target; b and c do not count");
    }

    #[test]
    fn errors_say_what_is_missing() {
        let mut no_request = pod("a");
        no_request.request = Err("app".into());
        let err = resource_replicas(
            1,
            Target::Utilization(50),
            "cpu",
            &[no_request],
            &samples(&[("a", 5)]),
            &Tuning::default(),
            now(),
        )
        .unwrap_err();
        assert_eq!(err, "missing request for cpu in container app of Pod a");
        let err = resource_replicas(
            1,
            Target::Utilization(50),
            "cpu",
            &[],
            &samples(&[]),
            &Tuning::default(),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "no pods returned by selector while calculating replica count"
        );
        let err = resource_replicas(
            1,
            Target::Utilization(50),
            "cpu",
            &[pod("a")],
            &samples(&[]),
            &Tuning::default(),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "did not receive metrics for targeted pods (pods might be unready)"
        );
    }

    #[test]
    fn average_value_targets_divide_the_mean() {
        let pods = [pod("a"), pod("b")];
        let out = resource_replicas(
            2,
            Target::AverageValue(100_000),
            "memory",
            &pods,
            &samples(&[("a", 300_000), ("b", 100_000)]),
            &Tuning::default(),
            now(),
        )
        .unwrap();
        assert_eq!(
            out,
            Outcome {
                replicas: 4,
                utilization: None,
                average: 200_000
            }
        );
    }
}
