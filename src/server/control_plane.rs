//! The scheduler and the controllers, wired to the API: each writes as its
//! own component identity through the loopback client, reads through the
//! shared informers, and acts only while this server holds the leader
//! lease.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::apiserver::{auth, loopback, ApiState};
use super::args::ServerArgs;
use super::components::{self, Components};
use super::{controllers, leader, scheduler};
use crate::cluster::ClusterConfig;

/// What every controller is started with: the API, the shared informers,
/// and whether this server leads.
struct Control {
    state: Arc<ApiState>,
    informers: Arc<controllers::runtime::Informers>,
    leading: tokio::sync::watch::Receiver<bool>,
}

impl Control {
    /// Start controller `name`, writing as `user`, once this server leads.
    fn spawn<F, Fut>(
        &self,
        components: &mut components::Components,
        name: &'static str,
        user: &str,
        agent: &'static str,
        run: F,
    ) where
        F: FnOnce(
                kube::Client,
                Arc<controllers::runtime::Informers>,
                tokio_util::sync::CancellationToken,
            ) -> Fut
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let client = loopback::client(self.state.clone(), auth::component(user), agent);
        let (shared, leading) = (self.informers.clone(), self.leading.clone());
        components.spawn(name, move |life| async move {
            life.ready();
            if lead(leading, &life.cancel).await {
                run(client, shared, life.cancel).await;
            }
            Ok(())
        });
    }
}

/// Wait until this server leads; false when stopped first.
async fn lead(
    mut leading: tokio::sync::watch::Receiver<bool>,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        r = leading.wait_for(|l| *l) => r.is_ok(),
    }
}

/// Start the informers, leader election, the scheduler and the
/// controllers under `components`.
pub(super) fn spawn(
    components: &mut Components,
    state: &Arc<ApiState>,
    args: &ServerArgs,
    data_dir: &Path,
    cluster: &ClusterConfig,
    timing: leader::Timing,
) {
    // One watch per kind for the scheduler and the controllers, stopped
    // after them (components stop in the reverse order of their start).
    let informers_stop = tokio_util::sync::CancellationToken::new();
    let informers = Arc::new(controllers::runtime::Informers::new(
        loopback::client(
            state.clone(),
            auth::component(auth::INFORMERS_USER),
            "skiff-informers",
        ),
        informers_stop.clone(),
    ));
    components.spawn("shared informers", move |life| async move {
        life.ready();
        life.cancel.cancelled().await;
        informers_stop.cancel();
        Ok(())
    });
    // The controllers and the scheduler act only while this server leads.
    let (leading_tx, leading) = tokio::sync::watch::channel(false);
    let electing = loopback::client(
        state.clone(),
        auth::component(auth::LEADER_ELECTION_USER),
        leader::AGENT,
    );
    let me = leader::identity(data_dir);
    components.spawn("leader election", move |life| async move {
        life.ready();
        leader::run(electing, me, timing, leading_tx, life.cancel)
            .await
            .context("leader election")
    });
    let scheduler = scheduler::Scheduler::new(
        loopback::client(
            state.clone(),
            auth::component(auth::SCHEDULER_USER),
            scheduler::AGENT,
        ),
        &informers,
        args.scheduler_policy,
    );
    let l = leading.clone();
    components.spawn("scheduler", move |life| async move {
        scheduler.synced().await;
        life.ready();
        if lead(l, &life.cancel).await {
            scheduler.run(life.cancel).await;
        }
        Ok(())
    });
    let control = Control {
        state: state.clone(),
        informers: informers.clone(),
        leading: leading.clone(),
    };
    control.spawn(
        components,
        "replicaset controller",
        auth::REPLICASET_CONTROLLER_USER,
        controllers::replicaset::AGENT,
        |client, shared, cancel| async move {
            controllers::replicaset::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "deployment controller",
        auth::DEPLOYMENT_CONTROLLER_USER,
        controllers::deployment::AGENT,
        |client, shared, cancel| async move {
            controllers::deployment::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "job controller",
        auth::JOB_CONTROLLER_USER,
        controllers::job::AGENT,
        |client, shared, cancel| async move { controllers::job::run(client, &shared, cancel).await },
    );
    control.spawn(
        components,
        "cronjob controller",
        auth::CRONJOB_CONTROLLER_USER,
        controllers::cronjob::AGENT,
        |client, shared, cancel| async move {
            controllers::cronjob::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "daemonset controller",
        auth::DAEMONSET_CONTROLLER_USER,
        controllers::daemonset::AGENT,
        |client, shared, cancel| async move {
            controllers::daemonset::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "statefulset controller",
        auth::STATEFULSET_CONTROLLER_USER,
        controllers::statefulset::AGENT,
        |client, shared, cancel| async move {
            controllers::statefulset::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "disruption controller",
        auth::DISRUPTION_CONTROLLER_USER,
        controllers::disruption::AGENT,
        |client, shared, cancel| async move {
            controllers::disruption::run(client, &shared, cancel).await
        },
    );
    let node_config = controllers::nodelifecycle::Config {
        grace: args.node_monitor_grace_period,
        eviction_rate: args.node_eviction_rate,
    };
    control.spawn(
        components,
        "node lifecycle controller",
        auth::NODE_CONTROLLER_USER,
        controllers::nodelifecycle::AGENT,
        move |client, shared, cancel| async move {
            controllers::nodelifecycle::run(client, &shared, cancel, node_config).await
        },
    );
    control.spawn(
        components,
        "clusterrole aggregation controller",
        auth::ROLE_AGGREGATION_USER,
        controllers::clusterrole_aggregation::AGENT,
        |client, shared, cancel| async move {
            controllers::clusterrole_aggregation::run(client, &shared, cancel).await
        },
    );
    // Ports of skiff's own on every node, which no load balancer takes.
    let mut reserved: Vec<controllers::servicelb::Reserved> = vec![(
        "TCP".into(),
        i32::from(args.https_listen_port),
        "the API server".into(),
    )];
    if !args.disable_cluster_dns {
        for proto in ["UDP", "TCP"] {
            reserved.push((proto.into(), 53, "the cluster DNS".into()));
        }
    }
    control.spawn(
        components,
        "service load balancer controller",
        auth::SERVICE_LB_USER,
        controllers::servicelb::AGENT,
        move |client, shared, cancel| async move {
            controllers::servicelb::run(client, &shared, cancel, reserved).await
        },
    );
    if !args.disable_cluster_dns {
        let cluster = cluster.clone();
        control.spawn(
            components,
            "cluster DNS controller",
            auth::CLUSTER_DNS_USER,
            controllers::cluster_dns::AGENT,
            move |client, shared, cancel| async move {
                controllers::cluster_dns::run(client, &shared, cancel, cluster).await
            },
        );
    }
    let podgc_config = controllers::podgc::Config {
        quarantine: controllers::podgc::QUARANTINE,
        terminated_threshold: args.terminated_pod_gc_threshold,
    };
    control.spawn(
        components,
        "pod garbage collector",
        auth::POD_GC_USER,
        controllers::podgc::AGENT,
        move |client, shared, cancel| async move {
            controllers::podgc::run(client, &shared, cancel, podgc_config).await
        },
    );
    control.spawn(
        components,
        "endpoint controller",
        auth::ENDPOINT_CONTROLLER_USER,
        controllers::endpoints::AGENT,
        |client, shared, cancel| async move {
            controllers::endpoints::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "replication controller",
        auth::REPLICATION_CONTROLLER_USER,
        controllers::replicaset::AGENT,
        |client, shared, cancel| async move {
            controllers::replicaset::run_replication_controllers(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "ttl-after-finished controller",
        auth::TTL_AFTER_FINISHED_USER,
        controllers::ttl_after_finished::AGENT,
        |client, shared, cancel| async move {
            controllers::ttl_after_finished::run(client, &shared, cancel).await
        },
    );
    control.spawn(
        components,
        "token cleaner",
        auth::TOKEN_CLEANER_USER,
        controllers::token_cleaner::AGENT,
        |client, _, cancel| async move { controllers::token_cleaner::run(client, cancel).await },
    );
    control.spawn(
        components,
        "node password cleaner",
        auth::NODE_PASSWORD_USER,
        controllers::node_password::AGENT,
        |client, shared, cancel| async move {
            controllers::node_password::run(client, &shared, cancel).await
        },
    );
    // Manifests of <data-dir>/server/manifests, applied as an admin.
    let deploy_client = loopback::client(
        state.clone(),
        crate::server::pki::Identity {
            user: controllers::deploy::USER.to_string(),
            groups: vec![crate::server::pki::MASTERS_GROUP.to_string()],
        },
        controllers::deploy::AGENT,
    );
    let deploy_config = controllers::deploy::Config {
        dir: data_dir.join("server").join("manifests"),
        disabled: args.disable.clone(),
    };
    let l = leading.clone();
    components.spawn("manifest deployer", move |life| async move {
        life.ready();
        if lead(l, &life.cancel).await {
            controllers::deploy::run(deploy_client, deploy_config, life.cancel).await;
        }
        Ok(())
    });
    let hpa_config = controllers::hpa::Config {
        sync_period: args.horizontal_pod_autoscaler_sync_period,
        down_window: args.horizontal_pod_autoscaler_downscale_stabilization,
        tuning: controllers::hpa::replicas::Tuning {
            tolerance: args.horizontal_pod_autoscaler_tolerance,
            ..Default::default()
        },
    };
    control.spawn(
        components,
        "horizontal pod autoscaler",
        auth::HPA_CONTROLLER_USER,
        controllers::hpa::AGENT,
        move |client, shared, cancel| async move {
            controllers::hpa::run(client, &shared, cancel, hpa_config).await
        },
    );
}
