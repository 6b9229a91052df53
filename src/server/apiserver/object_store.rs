//! Objects on top of the key-value store: JSON in and out, resourceVersion
//! taken from the store's revision, store errors turned into Status errors
//! that name the resource.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::metadata::meta_mut;
use super::registry::ResourceDef;
use crate::api::status::ApiError;
use crate::server::store::{self, Backend, KeyValue, ListOptions, Revision};

#[derive(Clone)]
pub struct Objects {
    pub store: Arc<dyn Backend>,
    /// Memory that reads of many objects may use at once (see scan.rs).
    pub read_budget: super::scan::ReadBudget,
    /// Caches requests are decided on, whose writes wait for them.
    followers: Vec<Arc<Follower>>,
    /// The ranges of the cluster's plan that Services and Nodes take
    /// addresses and ports from.
    pub ranges: &'static super::kinds::alloc::Ranges,
}

/// A cache fed by the store's watch that requests are decided on (the RBAC
/// policy): a write under its prefix is answered only once the cache has
/// applied it, so whoever wrote a RoleBinding may use it in the very next
/// request. (Upstream's informer-fed authorizer lags its writes; clients
/// then see a 403 just after granting themselves something.)
pub struct Follower {
    prefix: String,
    applied: tokio::sync::watch::Sender<Revision>,
    /// Whether a watch feeds the cache now: writes wait only then.
    live: std::sync::atomic::AtomicBool,
}

impl Follower {
    /// How long a write waits for the cache before it is answered anyway
    /// (the cache then catches up on its own).
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn new(prefix: impl Into<String>) -> Self {
        Follower {
            prefix: prefix.into(),
            applied: tokio::sync::watch::Sender::new(0),
            live: Default::default(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cache holds everything up to `rev`.
    pub fn applied(&self, rev: Revision) {
        self.applied.send_if_modified(|cur| {
            let newer = rev > *cur;
            if newer {
                *cur = rev;
            }
            newer
        });
    }

    pub fn set_live(&self, live: bool) {
        self.live.store(live, std::sync::atomic::Ordering::Release);
    }

    /// Wait until the cache has the write of `key` at `rev`, if it follows
    /// that key.
    async fn settle(&self, key: &str, rev: Revision) {
        if !key.starts_with(&self.prefix) || !self.live.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut rx = self.applied.subscribe();
        let caught_up = rx.wait_for(|applied| *applied >= rev);
        if tokio::time::timeout(Self::PATIENCE, caught_up)
            .await
            .is_err()
        {
            tracing::warn!(prefix = %self.prefix, rev, "a cache of the store lags its writes");
        }
    }
}

/// An object as stored, with its revision.
#[derive(Debug, Clone)]
pub struct Stored {
    pub obj: Value,
    pub rev: Revision,
}

pub fn store_error(def: &ResourceDef, name: &str, e: store::Error) -> ApiError {
    match e {
        store::Error::NotFound { .. } => ApiError::not_found(def.group, def.plural, name),
        store::Error::AlreadyExists { .. } => ApiError::already_exists(def.group, def.plural, name),
        store::Error::Conflict { .. } => ApiError::conflict(
            def.group,
            def.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        store::Error::Compacted { requested, compacted } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        store::Error::FutureRevision { requested, current } => {
            let mut e = ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            ));
            e.retry_after_seconds = Some(1);
            e
        }
        store::Error::WatcherLagged => ApiError::expired("the watch fell behind; watch again"),
        store::Error::Closed => ApiError::service_unavailable("the server is shutting down"),
        store::Error::Backend(msg) => {
            tracing::error!(resource = def.plural, name, error = %msg, "storage error");
            ApiError::internal(format!("storage error: {msg}"))
        }
    }
}

/// Decode a stored value and stamp its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        tracing::error!(key = %kv.key, error = %e, "stored object is not valid JSON");
        ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key))
    })?;
    if !obj.is_object() {
        return Err(ApiError::internal(format!(
            "stored object {} is not a JSON object",
            kv.key
        )));
    }
    meta_mut(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    Ok(obj)
}

/// Decode a stored object of `def` as its API shows it.
pub fn decode_as(def: &ResourceDef, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj = decode(kv)?;
    def.from_stored(&mut obj);
    Ok(obj)
}

/// Encode an object of `def` in its stored form.
pub fn encode_as(def: &ResourceDef, obj: &Value) -> Result<Bytes, ApiError> {
    if !def.converts() {
        return encode(obj);
    }
    let mut stored = obj.clone();
    def.to_stored(&mut stored);
    encode(&stored)
}

/// Encode for storage: the revision is the store's, never part of the value.
pub fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    let mut obj = obj.clone();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))
}

/// The largest object the store takes, as its stored JSON (managedFields
/// included): etcd's default request limit, which bounds upstream's objects.
/// Without it a 3 MiB body of labels was stored as twice that, since
/// managedFields repeats every key.
pub const MAX_OBJECT_BYTES: usize = 1_572_864;

/// 413 for an object whose stored form would exceed [`MAX_OBJECT_BYTES`].
pub fn check_size(def: &ResourceDef, name: &str, stored_len: usize) -> Result<(), ApiError> {
    if stored_len <= MAX_OBJECT_BYTES {
        return Ok(());
    }
    Err(ApiError::new(
        413,
        "RequestEntityTooLarge",
        format!(
            "Request entity too large: {} {name:?} would be stored as {stored_len} bytes (managedFields included); the limit is {MAX_OBJECT_BYTES} bytes: make the object smaller (fewer or shorter labels, annotations, data)",
            crate::api::status::qualified_resource(def.group, def.plural),
        ),
    ))
}

/// The same 413 before any of the costly work of a write (validation,
/// managedFields) is done: an object that is already over the limit
/// without its managedFields can only grow. A 3 MiB body of labels cost
/// the server 310 MB of memory on its way to the final check; refused
/// here it costs what decoding it did.
pub fn check_size_early(def: &ResourceDef, name: &str, obj: &Value) -> Result<(), ApiError> {
    let whole = encoded_len(obj);
    if whole <= MAX_OBJECT_BYTES {
        return Ok(());
    }
    let managed = obj
        .pointer("/metadata/managedFields")
        .map_or(0, |m| encoded_len(m) + "\"managedFields\":,".len());
    check_size(def, name, whole.saturating_sub(managed))
}

/// How long `v`'s compact JSON is, without building it.
pub(super) fn encoded_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail; a Value always serializes.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// What a dry run would store: the same size check as a real write,
/// counted without building the text.
pub fn check_dry_run(def: &ResourceDef, name: &str, obj: &Value) -> Result<(), ApiError> {
    check_size(def, name, stored_len(obj))
}

/// The length of [`encode`]'s output: the compact JSON less the
/// `resourceVersion` entry it leaves out (and that entry's comma).
fn stored_len(obj: &Value) -> usize {
    let whole = encoded_len(obj);
    let meta = obj.get("metadata").and_then(Value::as_object);
    let Some((meta, rv)) = meta.and_then(|m| Some((m, m.get("resourceVersion")?))) else {
        return whole;
    };
    let comma = usize::from(meta.len() > 1);
    whole.saturating_sub("\"resourceVersion\":".len() + encoded_len(rv) + comma)
}

pub fn stamp(mut obj: Value, rev: Revision) -> Value {
    meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
    obj
}

/// The `resourceVersion` a client sent, if any ("" counts as none).
pub fn parse_rv(s: Option<&str>) -> Result<Option<Revision>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<Revision>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resource version {v:?}: must be an integer"
            ))
        }),
    }
}

impl Objects {
    pub fn new(store: Arc<dyn Backend>) -> Self {
        Objects {
            store,
            read_budget: super::scan::ReadBudget::default(),
            followers: Vec::new(),
            ranges: super::kinds::alloc::Ranges::defaults(),
        }
    }

    /// These objects, taking addresses from `plan`'s ranges (made anew:
    /// a server makes its own once, see `with_ranges`).
    pub fn with_plan(self, plan: &crate::cluster::ClusterConfig) -> Self {
        self.with_ranges(super::kinds::alloc::Ranges::new(plan))
    }

    /// These objects, taking addresses from `ranges`.
    pub fn with_ranges(mut self, ranges: &'static super::kinds::alloc::Ranges) -> Self {
        self.ranges = ranges;
        self
    }

    /// These objects, whose writes wait for `follower` (see [`Follower`]).
    pub fn followed_by(mut self, follower: Arc<Follower>) -> Self {
        self.followers.push(follower);
        self
    }

    async fn settle(&self, kv: &KeyValue) {
        for f in &self.followers {
            f.settle(&kv.key, kv.mod_revision).await;
        }
    }

    pub async fn get(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError> {
        let key = def.key(ns, name);
        match self.store.get(&key, None).await {
            Ok(Some(kv)) => Ok(Some(Stored {
                obj: decode_as(def, &kv)?,
                rev: kv.mod_revision,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(store_error(def, name, e)),
        }
    }

    pub async fn must_get(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Stored, ApiError> {
        self.get(def, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(def.group, def.plural, name))
    }

    pub async fn create(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
    ) -> Result<Value, ApiError> {
        let value = encode_as(def, obj)?;
        check_size(def, name, value.len())?;
        let kv = self
            .store
            .create(&def.key(ns, name), value)
            .await
            .map_err(|e| store_error(def, name, e))?;
        self.settle(&kv).await;
        Ok(stamp(obj.clone(), kv.mod_revision))
    }

    pub async fn update(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        expected: Revision,
    ) -> Result<Value, ApiError> {
        self.write_update(def, ns, name, obj, expected, false).await
    }

    /// An update that only renews a Lease (`Backend::renew`).
    pub async fn renew(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        expected: Revision,
    ) -> Result<Value, ApiError> {
        self.write_update(def, ns, name, obj, expected, true).await
    }

    async fn write_update(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        expected: Revision,
        renewal: bool,
    ) -> Result<Value, ApiError> {
        let value = encode_as(def, obj)?;
        check_size(def, name, value.len())?;
        let key = def.key(ns, name);
        let written = if renewal {
            self.store.renew(&key, value, expected).await
        } else {
            self.store.update(&key, value, expected).await
        };
        let kv = written.map_err(|e| store_error(def, name, e))?;
        self.settle(&kv).await;
        Ok(stamp(obj.clone(), kv.mod_revision))
    }

    pub async fn delete(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        expected: Option<Revision>,
    ) -> Result<Value, ApiError> {
        let kv = self
            .store
            .delete(&def.key(ns, name), expected)
            .await
            .map_err(|e| store_error(def, name, e))?;
        self.settle(&kv).await;
        decode_as(def, &kv)
    }

    pub async fn list_raw(
        &self,
        prefix: &str,
        opts: ListOptions,
    ) -> Result<crate::server::store::ListResult, store::Error> {
        self.store.list(prefix, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_len_is_the_encoded_length() {
        for obj in [
            json!({"metadata": {"name": "a", "resourceVersion": "12", "labels": {"x": "é\""}}}),
            json!({"metadata": {"resourceVersion": "12"}, "data": {"k": "v"}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": 3}),
            json!({"kind": "ConfigMap"}),
        ] {
            assert_eq!(stored_len(&obj), encode(&obj).unwrap().len(), "{obj}");
        }
    }
    use crate::server::apiserver::registry::Registry;

    #[test]
    fn early_size_check_counts_the_object_without_its_managed_fields() {
        let reg = Registry::builtin();
        let def = reg.find("", "v1", "configmaps").unwrap();
        let data = "x".repeat(MAX_OBJECT_BYTES - 200);
        let managed = json!([{"manager": "m".repeat(MAX_OBJECT_BYTES)}]);
        let under =
            json!({"metadata": {"name": "a", "managedFields": managed}, "data": {"d": data}});
        assert!(check_size_early(def, "a", &under).is_ok());
        assert_eq!(
            encoded_len(&under),
            serde_json::to_vec(&under).unwrap().len()
        );
        let over = json!({"metadata": {"name": "a"}, "data": {"d": "x".repeat(MAX_OBJECT_BYTES)}});
        let e = check_size_early(def, "a", &over).unwrap_err();
        assert_eq!((e.code, e.reason), (413, "RequestEntityTooLarge"));
    }
}
