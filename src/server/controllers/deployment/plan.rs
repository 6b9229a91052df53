//! The arithmetic of a rollout, pure: how far the new ReplicaSet may grow
//! and the old ones shrink without breaking maxSurge and maxUnavailable
//! (upstream's NewRSNewReplicas, reconcileOldReplicaSets,
//! cleanupUnhealthyReplicas, scaleDownOldReplicaSetsForRollingUpdate),
//! and how a Deployment scaled mid-rollout spreads the change over its
//! ReplicaSets (upstream's proportional scaling).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// maxSurge (rounded up) and maxUnavailable (rounded down) of `replicas`;
/// both zero is not allowed, so unavailable becomes 1 (as upstream).
pub fn surge_and_unavailable(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let resolve = |v: Option<&IntOrString>, up: bool| -> i32 {
        match v {
            None => {
                // The API's default, 25%.
                let n = i64::from(replicas) * 25;
                (if up { (n + 99) / 100 } else { n / 100 }) as i32
            }
            Some(IntOrString::Int(n)) => (*n).max(0),
            Some(IntOrString::String(s)) => {
                let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
                let n = i64::from(replicas) * pct.max(0);
                let v = if up { (n + 99) / 100 } else { n / 100 };
                i32::try_from(v).unwrap_or(i32::MAX)
            }
        }
    };
    let s = resolve(surge, true);
    let mut u = resolve(unavailable, false);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

/// One ReplicaSet as the plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    /// spec.replicas.
    pub replicas: i32,
    pub available: i32,
    /// Creation time (seconds), for oldest-first.
    pub created: i64,
}

/// The new ReplicaSet's next size in a rolling update.
pub fn new_rs_size(replicas: i32, surge: i32, new: &Set, all: &[&Set]) -> i32 {
    let current: i32 = all.iter().map(|s| s.replicas).sum();
    let max_total = replicas.saturating_add(surge);
    if new.replicas >= replicas {
        return replicas;
    }
    if current >= max_total {
        return new.replicas;
    }
    let up = (max_total - current).min(replicas - new.replicas);
    new.replicas + up
}

/// How far each old ReplicaSet shrinks now: unhealthy replicas first
/// (they serve nothing), then available ones, oldest sets first, never
/// below `replicas - unavailable` available pods overall.
pub fn old_rs_sizes(replicas: i32, unavailable: i32, new: &Set, old: &[Set]) -> Vec<(String, i32)> {
    let old_count: i32 = old.iter().map(|s| s.replicas).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let all: i32 = old_count + new.replicas;
    let min_available = replicas - unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return Vec::new();
    }
    let mut sorted: Vec<Set> = old.to_vec();
    sorted.sort_by_key(|s| (s.created, s.name.clone()));
    let mut sizes: Vec<(String, i32)> = sorted
        .iter()
        .map(|s| (s.name.clone(), s.replicas))
        .collect();
    // Unhealthy replicas first.
    for (i, s) in sorted.iter().enumerate() {
        if budget <= 0 {
            break;
        }
        let unhealthy = (s.replicas - s.available).max(0);
        let cut = unhealthy.min(budget);
        sizes[i].1 -= cut;
        budget -= cut;
    }
    // Then available ones, keeping the minimum available.
    let available: i32 = new.available
        + sorted
            .iter()
            .map(|s| s.available.min(s.replicas))
            .sum::<i32>();
    let mut spare = available - min_available;
    for (i, s) in sorted.iter().enumerate() {
        if spare <= 0 {
            break;
        }
        let healthy_left = sizes[i].1.min(s.available);
        let cut = healthy_left.min(spare);
        sizes[i].1 -= cut;
        spare -= cut;
    }
    sorted
        .iter()
        .zip(sizes)
        .filter(|(s, (_, n))| *n != s.replicas)
        .map(|(_, x)| x)
        .collect()
}

/// A Deployment scaled to `replicas` while several ReplicaSets have pods:
/// spread the difference in proportion to their sizes (the remainder to
/// the largest, the newest among equals), so that a rollout keeps its
/// pace. `sets` newest first.
pub fn proportional(replicas: i32, surge: i32, sets: &[Set]) -> Vec<(String, i32)> {
    let current: i32 = sets.iter().map(|s| s.replicas).sum();
    let allowed = replicas.saturating_add(surge);
    let diff = allowed - current;
    if diff == 0 || current == 0 {
        return Vec::new();
    }
    let mut out: Vec<(String, i32)> = sets.iter().map(|s| (s.name.clone(), s.replicas)).collect();
    let mut left = diff;
    for (i, s) in sets.iter().enumerate() {
        if s.replicas == 0 {
            continue;
        }
        let share = (i64::from(s.replicas) * i64::from(diff) / i64::from(current)) as i32;
        let share = if diff > 0 {
            share.min(left)
        } else {
            share.max(left)
        };
        out[i].1 += share;
        left -= share;
    }
    if left != 0 {
        // The largest set takes the rest (the newest among equals).
        if let Some(i) = (0..sets.len()).max_by_key(|&i| (out[i].1, std::cmp::Reverse(i))) {
            out[i].1 = (out[i].1 + left).max(0);
        }
    }
    sets.iter()
        .zip(out)
        .filter(|(s, (_, n))| *n != s.replicas)
        .map(|(_, x)| x)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, replicas: i32, available: i32, created: i64) -> Set {
        Set {
            name: name.into(),
            replicas,
            available,
            created,
        }
    }

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(
            surge_and_unavailable(Some(&pct("25%")), Some(&pct("25%")), 4),
            (1, 1)
        );
        assert_eq!(
            surge_and_unavailable(Some(&pct("25%")), Some(&pct("25%")), 3),
            (1, 0)
        );
        assert_eq!(
            surge_and_unavailable(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            (0, 1)
        );
        assert_eq!(surge_and_unavailable(None, None, 10), (3, 2));
    }

    /// A 4-replica rollout with maxSurge 1, maxUnavailable 1 never has
    /// fewer than 3 available or more than 5 pods, and ends on the new set.
    #[test]
    fn a_rolling_update_keeps_within_its_bounds_to_the_end() {
        let (replicas, surge, unavailable) = (4, 1, 1);
        let mut new = set("new", 0, 0, 2);
        let mut old = vec![set("old", 4, 4, 1)];
        for _ in 0..20 {
            let all: Vec<&Set> = std::iter::once(&new).chain(old.iter()).collect();
            new.replicas = new_rs_size(replicas, surge, &new, &all);
            let total: i32 = new.replicas + old.iter().map(|s| s.replicas).sum::<i32>();
            assert!(total <= replicas + surge, "{total} pods");
            for (name, n) in old_rs_sizes(replicas, unavailable, &new, &old) {
                let s = old.iter_mut().find(|s| s.name == name).unwrap();
                s.replicas = n;
                s.available = s.available.min(n);
            }
            let available = new.available + old.iter().map(|s| s.available).sum::<i32>();
            assert!(available >= replicas - unavailable, "{available} available");
            // The new pods become available.
            new.available = new.replicas;
        }
        assert_eq!(new.replicas, 4);
        assert_eq!(old[0].replicas, 0);
    }

    #[test]
    fn unhealthy_old_pods_go_first_even_without_spare_availability() {
        let new = set("new", 1, 0, 3);
        let old = vec![set("a", 2, 2, 1), set("b", 2, 0, 2)];
        // 5 pods, 3 must stay available and the new one is not yet: one
        // may go, and it is one of b's, which serve nothing.
        let sizes = old_rs_sizes(4, 1, &new, &old);
        assert_eq!(sizes, vec![("b".to_string(), 1)]);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let sets = [set("new", 3, 3, 2), set("old", 6, 6, 1)];
        // 9 + 0 surge → 12: +1 new, +2 old.
        let out = proportional(12, 0, &sets);
        assert_eq!(out, vec![("new".to_string(), 4), ("old".to_string(), 8)]);
        let out = proportional(3, 0, &sets);
        assert_eq!(out, vec![("new".to_string(), 1), ("old".to_string(), 2)]);
    }
}
