//! From a metric's recommendation to the replicas actually set (upstream's
//! `normalizeDesiredReplicas` and `...WithBehaviors`): recent
//! recommendations stabilise it, the scaling policies limit how fast it
//! moves, min and max bound it. Each step says why, in the condition
//! upstream writes.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// A (reason, message) of a condition.
pub type Why = (&'static str, &'static str);

const READY_FOR_NEW_SCALE: Why = ("ReadyForNewScale", "recommended size matches current size");
const SCALE_DOWN_STABILIZED: Why = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const SCALE_UP_STABILIZED: Why = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const SCALE_UP_LIMIT: Why = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: Why = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: Why = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: Why = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const WITHIN_RANGE: Why = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);

/// What one autoscaler remembers between passes.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Recent recommendations.
    pub recommendations: Vec<(i32, Timestamp)>,
    /// Recent changes made, up and down (sizes of the steps).
    pub ups: Vec<(i32, Timestamp)>,
    pub downs: Vec<(i32, Timestamp)>,
}

/// The outcome: replicas, the AbleToScale reason, the ScalingLimited one
/// and whether the limits cut the stabilised value.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub replicas: i32,
    pub able: Why,
    pub limited: Why,
    pub clipped: bool,
}

pub struct Bounds {
    pub current: i32,
    pub min: i32,
    pub max: i32,
}

/// Without `behavior`: the highest recommendation of the last
/// `down_window` (no scaling in on a dip), then at most doubling (or four).
pub fn legacy(
    h: &mut History,
    b: &Bounds,
    desired: i32,
    down_window: SignedDuration,
    now: Timestamp,
) -> Normalized {
    let cutoff = now - down_window;
    let mut stabilized = desired;
    let mut stale = None;
    for (i, (r, at)) in h.recommendations.iter().enumerate() {
        if *at < cutoff {
            stale = Some(i);
        } else {
            stabilized = stabilized.max(*r);
        }
    }
    remember(h, stale, desired, now);
    let able = if stabilized != desired {
        SCALE_DOWN_STABILIZED
    } else {
        READY_FOR_NEW_SCALE
    };
    let up_limit = b.current.saturating_mul(2).max(4);
    let (ceiling, why_ceiling) = if b.max > up_limit {
        (up_limit, SCALE_UP_LIMIT)
    } else {
        (b.max, TOO_MANY)
    };
    let (replicas, limited) = if stabilized < b.min {
        (b.min, TOO_FEW)
    } else if stabilized > ceiling {
        (ceiling, why_ceiling)
    } else {
        (stabilized, WITHIN_RANGE)
    };
    Normalized {
        replicas,
        able,
        limited,
        clipped: replicas != stabilized,
    }
}

fn remember(h: &mut History, slot: Option<usize>, desired: i32, now: Timestamp) {
    match slot {
        Some(i) => h.recommendations[i] = (desired, now),
        None => h.recommendations.push((desired, now)),
    }
}

fn secs(s: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(s.max(0)))
}

/// The sum of the steps of `events` within the last `period`.
fn changed_within(events: &[(i32, Timestamp)], period: i32, now: Timestamp) -> i32 {
    let cutoff = now - secs(period);
    events
        .iter()
        .filter(|(_, at)| *at > cutoff)
        .fold(0i32, |a, (n, _)| a.saturating_add(*n))
}

/// The replicas at the start of a policy's period: now, less what it
/// added, plus what it took away since.
fn period_start(h: &History, current: i32, period: i32, now: Timestamp) -> i32 {
    current
        .saturating_sub(changed_within(&h.ups, period, now))
        .saturating_add(changed_within(&h.downs, period, now))
}

fn to_i32(x: f64) -> i32 {
    if x.is_nan() {
        return 0;
    }
    x.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

fn up_limit(h: &History, current: i32, rules: &HPAScalingRules, now: Timestamp) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut out: Option<i32> = None;
    for p in rules.policies.iter().flatten() {
        let start = period_start(h, current, p.period_seconds, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start.saturating_add(p.value),
            _ => to_i32((f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil()),
        };
        out = Some(match out {
            None => proposed,
            Some(o) if select == "Min" => o.min(proposed),
            Some(o) => o.max(proposed),
        });
    }
    out.unwrap_or(current)
}

fn down_limit(h: &History, current: i32, rules: &HPAScalingRules, now: Timestamp) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut out: Option<i32> = None;
    for p in rules.policies.iter().flatten() {
        let start = period_start(h, current, p.period_seconds, now);
        let proposed = match p.type_.as_str() {
            "Pods" => start.saturating_sub(p.value),
            _ => to_i32(f64::from(start) * (1.0 - f64::from(p.value) / 100.0)),
        };
        // "Max" is the policy allowing the biggest change: the lowest floor.
        out = Some(match out {
            None => proposed,
            Some(o) if select == "Min" => o.max(proposed),
            Some(o) => o.min(proposed),
        });
    }
    out.unwrap_or(current)
}

/// With `behavior` (defaulted): stabilised over each direction's window,
/// then limited by its policies over their periods.
pub fn with_behavior(
    h: &mut History,
    b: &Bounds,
    desired: i32,
    behavior: &HorizontalPodAutoscalerBehavior,
    default_down_window: SignedDuration,
    now: Timestamp,
) -> Normalized {
    let up = behavior.scale_up.clone().unwrap_or_default();
    let down = behavior.scale_down.clone().unwrap_or_default();
    let up_window = secs(up.stabilization_window_seconds.unwrap_or(0));
    let down_window = down
        .stabilization_window_seconds
        .map_or(default_down_window, secs);
    let (up_cut, down_cut) = (now - up_window, now - down_window);
    let (mut up_rec, mut down_rec) = (desired, desired);
    let mut stale = None;
    for (i, (r, at)) in h.recommendations.iter().enumerate() {
        if *at > up_cut {
            up_rec = up_rec.min(*r);
        }
        if *at > down_cut {
            down_rec = down_rec.max(*r);
        }
        if *at < up_cut && *at < down_cut {
            stale = Some(i);
        }
    }
    remember(h, stale, desired, now);
    let stabilized = b.current.max(up_rec).min(down_rec);
    let able = if stabilized == desired {
        READY_FOR_NEW_SCALE
    } else if desired >= b.current {
        SCALE_UP_STABILIZED
    } else {
        SCALE_DOWN_STABILIZED
    };
    let (replicas, limited) = if stabilized > b.current {
        let limit = up_limit(h, b.current, &up, now).max(b.current);
        let (allowed, why) = if b.max > limit {
            (limit, SCALE_UP_LIMIT)
        } else {
            (b.max, TOO_MANY)
        };
        if stabilized > allowed {
            (allowed, why)
        } else {
            (stabilized, WITHIN_RANGE)
        }
    } else if stabilized < b.current {
        let limit = down_limit(h, b.current, &down, now).min(b.current);
        let (allowed, why) = if b.min < limit {
            (limit, SCALE_DOWN_LIMIT)
        } else {
            (b.min, TOO_FEW)
        };
        if stabilized < allowed {
            (allowed, why)
        } else {
            (stabilized, WITHIN_RANGE)
        }
    } else {
        (stabilized, WITHIN_RANGE)
    };
    Normalized {
        replicas,
        able,
        limited,
        clipped: replicas != stabilized,
    }
}

/// Note a change made, and forget those older than any policy looks back.
pub fn record_scale(h: &mut History, from: i32, to: i32, keep: SignedDuration, now: Timestamp) {
    let cutoff = now - keep;
    h.ups.retain(|(_, at)| *at > cutoff);
    h.downs.retain(|(_, at)| *at > cutoff);
    h.recommendations.retain(|(_, at)| *at > cutoff);
    if to > from {
        h.ups.push((to.saturating_sub(from), now));
    } else if to < from {
        h.downs.push((from.saturating_sub(to), now));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const FIVE_MIN: SignedDuration = SignedDuration::from_secs(300);

    #[test]
    fn legacy_keeps_the_highest_recent_recommendation() {
        let mut h = History::default();
        let b = Bounds {
            current: 4,
            min: 1,
            max: 10,
        };
        let n = legacy(&mut h, &b, 4, FIVE_MIN, t(0));
        assert_eq!((n.replicas, n.able), (4, READY_FOR_NEW_SCALE));
        // A dip a minute later is held at 4.
        let n = legacy(&mut h, &b, 1, FIVE_MIN, t(60));
        assert_eq!((n.replicas, n.able.0), (4, "ScaleDownStabilized"));
        // Once the 4 is older than the window, the dip wins.
        let n = legacy(&mut h, &b, 1, FIVE_MIN, t(400));
        assert_eq!(n.replicas, 1);
        assert_eq!(n.limited, WITHIN_RANGE);
    }

    #[test]
    fn legacy_at_most_doubles_and_respects_the_bounds() {
        let mut h = History::default();
        let n = legacy(
            &mut h,
            &Bounds {
                current: 3,
                min: 1,
                max: 20,
            },
            15,
            FIVE_MIN,
            t(0),
        );
        assert_eq!(
            (n.replicas, n.limited.0, n.clipped),
            (6, "ScaleUpLimit", true)
        );
        let mut h = History::default();
        let n = legacy(
            &mut h,
            &Bounds {
                current: 3,
                min: 1,
                max: 5,
            },
            15,
            FIVE_MIN,
            t(0),
        );
        assert_eq!((n.replicas, n.limited.0), (5, "TooManyReplicas"));
        let mut h = History::default();
        let n = legacy(
            &mut h,
            &Bounds {
                current: 3,
                min: 2,
                max: 5,
            },
            1,
            FIVE_MIN,
            t(0),
        );
        assert_eq!((n.replicas, n.limited.0), (2, "TooFewReplicas"));
    }

    fn rules(window: Option<i32>, select: &str, policies: &[(&str, i32, i32)]) -> HPAScalingRules {
        HPAScalingRules {
            stabilization_window_seconds: window,
            select_policy: Some(select.into()),
            policies: Some(
                policies
                    .iter()
                    .map(|(ty, value, period)| HPAScalingPolicy {
                        type_: ty.to_string(),
                        value: *value,
                        period_seconds: *period,
                    })
                    .collect(),
            ),
            tolerance: None,
        }
    }

    #[test]
    fn policies_limit_the_rate_over_their_period() {
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(Some(0), "Max", &[("Pods", 2, 60)])),
            scale_down: Some(rules(Some(0), "Max", &[("Percent", 50, 60)])),
        };
        let mut h = History::default();
        let b = Bounds {
            current: 2,
            min: 1,
            max: 10,
        };
        let n = with_behavior(&mut h, &b, 9, &behavior, FIVE_MIN, t(0));
        assert_eq!((n.replicas, n.limited.0), (4, "ScaleUpLimit"));
        record_scale(&mut h, 2, 4, FIVE_MIN, t(0));
        // Within the same minute, the two pods are spent already.
        let b = Bounds {
            current: 4,
            min: 1,
            max: 10,
        };
        let n = with_behavior(&mut h, &b, 9, &behavior, FIVE_MIN, t(30));
        assert_eq!(n.replicas, 4);
        // A minute on, two more.
        let n = with_behavior(&mut h, &b, 9, &behavior, FIVE_MIN, t(61));
        assert_eq!(n.replicas, 6);
        // Down by half at most.
        let mut h = History::default();
        let b = Bounds {
            current: 8,
            min: 1,
            max: 10,
        };
        let n = with_behavior(&mut h, &b, 1, &behavior, FIVE_MIN, t(0));
        assert_eq!((n.replicas, n.limited.0), (4, "ScaleDownLimit"));
    }

    #[test]
    fn stabilization_windows_per_direction() {
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(Some(60), "Max", &[("Percent", 100, 15)])),
            scale_down: Some(rules(None, "Max", &[("Percent", 100, 15)])),
        };
        let mut h = History::default();
        let b = Bounds {
            current: 2,
            min: 1,
            max: 10,
        };
        let n = with_behavior(&mut h, &b, 2, &behavior, FIVE_MIN, t(0));
        assert_eq!(n.replicas, 2);
        // A spike is held back by the lower recommendation of a minute ago.
        let n = with_behavior(&mut h, &b, 5, &behavior, FIVE_MIN, t(30));
        assert_eq!((n.replicas, n.able.0), (2, "ScaleUpStabilized"));
        // and a dip by the controller's five minutes (window unset).
        let mut h = History::default();
        let b = Bounds {
            current: 5,
            min: 1,
            max: 10,
        };
        with_behavior(&mut h, &b, 5, &behavior, FIVE_MIN, t(0));
        let n = with_behavior(&mut h, &b, 1, &behavior, FIVE_MIN, t(100));
        assert_eq!((n.replicas, n.able.0), (5, "ScaleDownStabilized"));
        let n = with_behavior(&mut h, &b, 1, &behavior, FIVE_MIN, t(400));
        assert_eq!(n.replicas, 1);
    }

    #[test]
    fn huge_targets_do_not_wrap() {
        let mut h = History::default();
        let b = Bounds {
            current: 1_500_000_000,
            min: 1,
            max: i32::MAX,
        };
        let n = legacy(&mut h, &b, 1_500_000_000, FIVE_MIN, t(0));
        assert_eq!(n.replicas, 1_500_000_000);
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(
                Some(0),
                "Max",
                &[("Pods", i32::MAX, 15), ("Percent", 1000, 15)],
            )),
            scale_down: None,
        };
        let mut h = History::default();
        let n = with_behavior(&mut h, &b, i32::MAX, &behavior, FIVE_MIN, t(0));
        assert_eq!(n.replicas, i32::MAX);
    }

    #[test]
    fn disabled_direction_does_not_move() {
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(Some(0), "Disabled", &[("Pods", 4, 15)])),
            scale_down: None,
        };
        let mut h = History::default();
        let b = Bounds {
            current: 2,
            min: 1,
            max: 10,
        };
        let n = with_behavior(&mut h, &b, 8, &behavior, FIVE_MIN, t(0));
        assert_eq!(n.replicas, 2);
    }
}
