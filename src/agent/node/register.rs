//! The Node object: registered once (created, or its labels brought up to
//! date when it exists), then its status — capacity, allocatable,
//! conditions, addresses, node info — patched when it changes, and at
//! least every five minutes (kubelet's `nodeStatusReportFrequency`), so
//! that an idle node writes nothing but its Lease.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::host;
use crate::agent::config::AgentConfig;
use crate::net::cidr::Ipv4Cidr;

/// How often an unchanged status is written anyway.
const REPORT_EVERY: Duration = Duration::from_secs(300);
/// The port the node's agent API is announced on (kubelet's).
/// The manager the agent's writes are recorded under (managedFields).
pub const FIELD_MANAGER: &str = "skiff-agent";

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("measuring the node: {0}")]
    Host(#[from] host::HostError),
    #[error("the API server answered a Node without a uid")]
    NoUid,
}

/// The Node as registered.
#[derive(Debug, Clone)]
pub struct Registered {
    pub uid: String,
    /// Its pod subnet (None: the cluster has none left for it).
    pub pod_cidr: Option<Ipv4Cidr>,
}

pub struct NodeKeeper {
    api: Api<Node>,
    config: AgentConfig,
    /// What was last reported, without the heartbeat times, and when.
    reported: Option<(serde_json::Value, Instant)>,
    conditions: Vec<NodeCondition>,
    /// Why the node cannot take pods, when it cannot.
    not_ready: Option<String>,
    /// Pressures stay reported for a while after they end.
    held: super::pressure::Held,
    /// The Node as stored, kept by a watch of its own (kubelet reads its
    /// informer's copy): comparing with it costs no request.
    stored: Option<(
        tokio::sync::watch::Receiver<crate::agent::objects::Seen<Node>>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Drop for NodeKeeper {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.stored {
            task.abort();
        }
    }
}

/// The labels kubelet sets on its own node, and k3s's for a server node.
fn default_labels(config: &AgentConfig) -> BTreeMap<String, String> {
    let arch = host::node_info("", "").architecture;
    let mut labels = BTreeMap::from([
        (
            "kubernetes.io/hostname".to_string(),
            config.node_name.clone(),
        ),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch),
        (
            "node.kubernetes.io/instance-type".to_string(),
            "skiff".to_string(),
        ),
    ]);
    if config.control_plane {
        for role in ["control-plane", "master"] {
            labels.insert(format!("node-role.kubernetes.io/{role}"), "true".into());
        }
    }
    labels
}

impl NodeKeeper {
    pub fn new(client: kube::Client, config: AgentConfig) -> NodeKeeper {
        NodeKeeper {
            api: Api::all(client),
            config,
            reported: None,
            conditions: Vec::new(),
            not_ready: Some("the agent has not started its pod workers yet".into()),
            held: Default::default(),
            stored: None,
        }
    }

    /// The labels this agent wants on its Node.
    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = default_labels(&self.config);
        labels.extend(self.config.labels.clone());
        labels
    }

    /// Create the Node, or bring the labels of the one that exists up to
    /// date (labels others added stay; its taints are its own now, as
    /// kubelet's `--register-with-taints` applies at creation only).
    /// A new Node asks for `proposed` as its pod CIDR (the subnet the
    /// node's bridge already has), else the server picks one; one that
    /// exists keeps its own, or is given one by the server on this write.
    pub async fn register(&self, proposed: Option<Ipv4Cidr>) -> Result<Registered, RegisterError> {
        match self.create_or_label(proposed).await {
            // Taken by another node meanwhile: the server picks.
            Err(RegisterError::Api(kube::Error::Api(s))) if s.code == 422 && proposed.is_some() => {
                tracing::info!(node = %self.config.node_name, "the pod CIDR the node's bridge has is another node's now: {}", s.message);
                self.create_or_label(None).await
            }
            other => other,
        }
    }

    async fn create_or_label(
        &self,
        proposed: Option<Ipv4Cidr>,
    ) -> Result<Registered, RegisterError> {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.config.node_name.clone()),
                labels: Some(self.labels()),
                annotations: Some(BTreeMap::from([(
                    "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                    "true".to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.config.taints.is_empty()).then(|| self.config.taints.clone()),
                pod_cidr: proposed.map(|c| c.to_string()),
                pod_cidrs: proposed.map(|c| vec![c.to_string()]),
                ..Default::default()
            }),
            status: None,
        };
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let written = match self.api.create(&pp, &node).await {
            Ok(n) => n,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let patch = serde_json::json!({ "metadata": { "labels": self.labels() } });
                self.api
                    .patch(
                        &self.config.node_name,
                        &PatchParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..Default::default()
                        },
                        &Patch::Merge(&patch),
                    )
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Registered {
            uid: written.metadata.uid.ok_or(RegisterError::NoUid)?,
            pod_cidr: written
                .spec
                .and_then(|s| s.pod_cidr)
                .and_then(|c| c.parse().ok()),
        })
    }

    /// Say whether the node can take pods (None: it can).
    pub fn set_not_ready(&mut self, why: Option<String>) {
        self.not_ready = why;
    }

    /// Measure the node and patch its status when it changed or is due;
    /// whether it was written.
    pub async fn report(&mut self) -> Result<bool, RegisterError> {
        let root = self.config.root.clone();
        let capacity = host::measure_capacity(&root)?;
        let allocatable = host::allocatable(
            &capacity,
            &self.config.kube_reserved,
            &self.config.system_reserved,
        );
        let signals = host::measure_signals(&root)?;
        let pressure = self.held.apply(host::pressure(&signals), Instant::now());
        let conditions = host::conditions(
            pressure,
            self.not_ready.as_deref(),
            &self.conditions,
            chrono::Utc::now(),
        );
        let status = NodeStatus {
            capacity: Some(host::quantities(&capacity)),
            allocatable: Some(host::quantities(&allocatable)),
            conditions: Some(conditions.clone()),
            addresses: Some(
                std::iter::once(NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.config.node_ip.to_string(),
                })
                .chain(self.config.external_ips.iter().map(|ip| NodeAddress {
                    type_: "ExternalIP".into(),
                    address: ip.to_string(),
                }))
                .chain(std::iter::once(NodeAddress {
                    type_: "Hostname".into(),
                    address: self.config.node_name.clone(),
                }))
                .collect(),
            ),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(self.config.kubelet_port),
                }),
            }),
            node_info: Some(host::node_info(
                env!("CARGO_PKG_VERSION"),
                crate::server::apiserver::discovery::KUBE_GIT_VERSION,
            )),
            ..Default::default()
        };
        let key = without_heartbeats(&status);
        let due = match &self.reported {
            Some((last, at)) => *last != key || at.elapsed() >= REPORT_EVERY,
            None => true,
        };
        // Compared with the Node as stored, too (as kubelet does): a
        // condition someone else changed (Ready=Unknown, written by the
        // node lifecycle controller) is put right at once.
        if !due && !self.stored_conditions_differ(&conditions) {
            return Ok(false);
        }
        let patch = serde_json::json!({ "status": status });
        self.api
            .patch_status(
                &self.config.node_name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                // Strategic: conditions merge by type, so those others
                // write (NetworkUnavailable, …) stay.
                &Patch::Strategic(&patch),
            )
            .await?;
        self.conditions = conditions;
        self.reported = Some((key, Instant::now()));
        Ok(true)
    }
}

impl NodeKeeper {
    /// Whether the stored Node shows one of `ours` with another status. A
    /// Node not seen yet says nothing.
    fn stored_conditions_differ(&mut self, ours: &[NodeCondition]) -> bool {
        use crate::agent::objects::{follow, Seen};
        let (rx, _) = self.stored.get_or_insert_with(|| {
            let (tx, rx) = tokio::sync::watch::channel(Seen::Unknown);
            let task = tokio::spawn(follow(self.api.clone(), self.config.node_name.clone(), tx));
            (rx, task)
        });
        let Seen::Present(node) = &*rx.borrow() else {
            return false;
        };
        let stored = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        ours.iter().any(|c| {
            stored
                .iter()
                .find(|s| s.type_ == c.type_)
                .is_none_or(|s| s.status != c.status)
        })
    }
}

/// The status as compared between reports: heartbeat times change every
/// time and are no reason to write.
fn without_heartbeats(status: &NodeStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    v
}
