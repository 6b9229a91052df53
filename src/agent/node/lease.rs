//! The node's Lease in `kube-node-lease`: the cheap heartbeat the node
//! controller reads (kubelet renews it every 10 s, a quarter of its 40 s
//! duration), so that the Node object itself is written only when its
//! status changes.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};

pub const NAMESPACE: &str = "kube-node-lease";
/// kubelet's `nodeLeaseDurationSeconds`.
pub const DURATION_SECONDS: i32 = 40;

pub struct LeaseKeeper {
    api: Api<Lease>,
    node: String,
    /// The Node's uid: the Lease is owned by it, so it goes with the Node.
    owner_uid: Option<String>,
    /// The Lease as last written (its resourceVersion makes the next
    /// renewal a compare-and-swap).
    current: Option<Lease>,
}

fn is_conflict_or_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found() || s.code == 409)
}

impl LeaseKeeper {
    pub fn new(client: kube::Client, node: &str) -> LeaseKeeper {
        LeaseKeeper {
            api: Api::namespaced(client, NAMESPACE),
            node: node.to_string(),
            owner_uid: None,
            current: None,
        }
    }

    pub fn set_owner(&mut self, uid: &str) {
        self.owner_uid = Some(uid.to_string());
    }

    fn fill(&self, lease: &mut Lease) {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.node.clone());
        spec.lease_duration_seconds = Some(DURATION_SECONDS);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        if let Some(uid) = &self.owner_uid {
            let owned = lease
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|refs| refs.iter().any(|r| &r.uid == uid));
            if !owned {
                lease.metadata.owner_references = Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: self.node.clone(),
                    uid: uid.clone(),
                    ..Default::default()
                }]);
            }
        }
    }

    /// Renew the Lease (create it when there is none).
    pub async fn renew(&mut self) -> Result<(), kube::Error> {
        let pp = PostParams::default();
        if let Some(mut lease) = self.current.take() {
            self.fill(&mut lease);
            match self.api.replace(&self.node, &pp, &lease).await {
                Ok(l) => {
                    self.current = Some(l);
                    return Ok(());
                }
                // Someone else wrote it, or deleted it: read it again.
                Err(e) if is_conflict_or_gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let written = match self.api.get_opt(&self.node).await? {
            Some(mut lease) => {
                self.fill(&mut lease);
                self.api.replace(&self.node, &pp, &lease).await?
            }
            None => {
                let mut lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.node.clone()),
                        namespace: Some(NAMESPACE.into()),
                        ..Default::default()
                    },
                    spec: None,
                };
                self.fill(&mut lease);
                self.api.create(&pp, &lease).await?
            }
        };
        self.current = Some(written);
        Ok(())
    }
}
