//! ClusterRole aggregation (upstream's clusterrole-aggregation-controller):
//! a ClusterRole with an `aggregationRule` holds the rules of every other
//! ClusterRole its selectors pick, so `admin`, `edit` and `view` grow with
//! the roles labelled `rbac.authorization.k8s.io/aggregate-to-*` (an
//! operator's CRDs become visible to `view`, say). An empty selector picks
//! nothing here (it would pull `cluster-admin` into the role).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use super::podutil;
use super::runtime::{Informer, Informers, Passes};

pub const AGENT: &str = "skiff-clusterrole-aggregation-controller";
const PERIOD: Duration = Duration::from_secs(60);

/// The rules `role` should hold: those of the roles its selectors pick, in
/// the order of their names, each once.
pub fn aggregate(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let selectors = rule.cluster_role_selectors.as_deref().unwrap_or_default();
    let mut picked: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|other| other.metadata.name != role.metadata.name)
        .filter(|other| {
            selectors.iter().any(|sel| {
                let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                !empty && podutil::selects(Some(sel), other.metadata.labels.as_ref())
            })
        })
        .collect();
    picked.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for r in picked.iter().flat_map(|o| o.rules.iter().flatten()) {
        if !rules.contains(r) {
            rules.push(r.clone());
        }
    }
    Some(rules)
}

pub async fn run(client: kube::Client, informers: &Informers, cancel: CancellationToken) {
    let roles: Arc<Informer<ClusterRole>> = informers.get::<ClusterRole>();
    let mut passes = Passes::every(PERIOD);
    passes.on(&roles);
    roles.synced().await;
    let api: Api<ClusterRole> = Api::all(client);
    loop {
        let all = roles.list_all();
        for role in &all {
            let Some(want) = aggregate(role, &all) else {
                continue;
            };
            if role.rules.as_deref().unwrap_or_default() == want.as_slice() {
                continue;
            }
            let mut next = (**role).clone();
            next.rules = Some(want);
            let name = role.metadata.name.clone().unwrap_or_default();
            // Over the version read: a newer one comes back through the
            // informer and is aggregated again.
            if let Err(e) = api.replace(&name, &PostParams::default(), &next).await {
                tracing::debug!(controller = AGENT, role = %name, "{e}");
            }
        }
        if !passes.next(&cancel).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn role(v: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn a_role_holds_the_rules_its_selectors_pick() {
        let view = role(json!({"metadata": {"name": "view"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg-view": "true"}}]}}));
        let a = role(
            json!({"metadata": {"name": "b-pods", "labels": {"agg-view": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        );
        let b = role(
            json!({"metadata": {"name": "a-crd", "labels": {"agg-view": "true"}},
            "rules": [{"apiGroups": ["x.io"], "resources": ["widgets"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        );
        let other = role(json!({"metadata": {"name": "admin-only"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}));
        let all = vec![view.clone(), a, b, other];
        let rules = aggregate(&view, &all).unwrap();
        let resources: Vec<String> = rules
            .iter()
            .map(|r| r.resources.clone().unwrap_or_default().join(","))
            .collect();
        assert_eq!(
            resources,
            ["widgets", "pods"],
            "by role name, each rule once"
        );
        // An empty selector picks nothing.
        let greedy = role(json!({"metadata": {"name": "greedy"},
            "aggregationRule": {"clusterRoleSelectors": [{}]}}));
        assert_eq!(aggregate(&greedy, &all), Some(Vec::new()));
        assert_eq!(aggregate(&all[1], &all), None, "not an aggregated role");
    }
}
