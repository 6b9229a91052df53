//! Ranges handed out one member at a time (service cluster IPs, node ports).
//!
//! A range is a bitmap kept in one store key (`/registry/ranges/<name>`,
//! upstream's RangeAllocation object) and changed only by compare-and-swap
//! on that key's revision: of two creates that pick the same member at the
//! same moment one loses the swap and picks again, so no member is ever
//! handed out twice. Listing the holders and picking a free one at random
//! (what this replaced) let both creates see the member free.
//!
//! The record is created on first use from the objects that already hold
//! members (a data directory from before this file, or the `kubernetes`
//! Service written by bootstrap), also by compare-and-swap.

use base64::Engine as _;
use bytes::Bytes;
use rand::Rng;
use serde_json::{json, Value};

use crate::api::status::ApiError;
use crate::server::apiserver::object_store::Objects;
use crate::server::store::{self, ListOptions};

/// How often a swap lost to other writers is retried before giving up:
/// each round one writer wins, so this bounds waiting behind that many
/// concurrent creates.
const MAX_ROUNDS: usize = 1000;

/// One range of members `0..size`. Made from the cluster's plan when the
/// server starts (`Ranges`), so its addresses follow `--service-cidr` and
/// the rest.
pub struct Range {
    /// Store key of the bitmap.
    pub key: &'static str,
    /// What the members are, for the stored record and messages
    /// (`10.43.0.0/16`, `30000-32767`): a record made for another
    /// description is another plan's (`check_plan`).
    pub describe: String,
    /// What the members are for, and the flag that sets the range.
    pub what: &'static str,
    /// The first member's value (an address as a number, a port): each
    /// kind turns members into values from it.
    pub base: u32,
    pub size: u32,
    /// Members never picked for `Want::Any` (network and broadcast address,
    /// the `kubernetes` Service, cluster DNS); they can still be asked for.
    pub reserved: Vec<u32>,
    /// Prefix of the objects holding members, read once to seed the bitmap.
    pub holders_prefix: &'static str,
    /// The members one stored holder holds.
    pub held_by: fn(&Range, &Value) -> Vec<u32>,
    /// `Want::Any` takes the lowest free member instead of one at random:
    /// node pod CIDRs are handed out in order, so the first node of a
    /// cluster gets 10.42.0.0/24 as under k3s.
    pub in_order: bool,
}

impl Range {
    /// The members `holder` holds.
    pub fn held(&self, holder: &Value) -> Vec<u32> {
        (self.held_by)(self, holder)
    }
}

/// Every range of one cluster's plan. Built once when a server starts and
/// kept for the life of the process (reservations name their range by a
/// `'static` reference).
pub struct Ranges {
    pub cluster_ips: Range,
    pub node_ports: Range,
    pub pod_cidrs: Range,
}

impl Ranges {
    pub fn new(plan: &crate::cluster::ClusterConfig) -> &'static Ranges {
        Box::leak(Box::new(Ranges {
            cluster_ips: super::service::cluster_ip_range(plan),
            node_ports: super::service::node_port_range(plan),
            pod_cidrs: super::node::pod_cidrs(plan),
        }))
    }

    /// The default plan's (k3s's addresses), made once.
    pub fn defaults() -> &'static Ranges {
        static DEFAULTS: std::sync::OnceLock<&'static Ranges> = std::sync::OnceLock::new();
        DEFAULTS.get_or_init(|| Ranges::new(&crate::cluster::ClusterConfig::default()))
    }

    pub fn all(&'static self) -> [&'static Range; 3] {
        [&self.cluster_ips, &self.node_ports, &self.pod_cidrs]
    }
}

/// What one member of a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Any,
    Exactly(u32),
}

/// Why an allocation was refused.
#[derive(Debug)]
pub enum AllocError {
    /// `wants[index]` asked for a member already taken.
    Taken { index: usize, member: u32 },
    /// No free member is left.
    Full,
    /// Reading or writing the record failed.
    Api(ApiError),
}

impl From<ApiError> for AllocError {
    fn from(e: ApiError) -> Self {
        AllocError::Api(e)
    }
}

/// The bitmap of taken members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap(Vec<u8>);

impl Bitmap {
    pub fn new(size: u32) -> Self {
        Bitmap(vec![0; size.div_ceil(8) as usize])
    }

    pub fn taken(&self, m: u32) -> bool {
        self.0
            .get((m / 8) as usize)
            .is_some_and(|b| b & (1 << (m % 8)) != 0)
    }

    pub fn set(&mut self, m: u32, taken: bool) {
        if let Some(b) = self.0.get_mut((m / 8) as usize) {
            if taken {
                *b |= 1 << (m % 8);
            } else {
                *b &= !(1 << (m % 8));
            }
        }
    }

    /// The members taken in one of `self` and `other` (bitmaps of one
    /// range) but not both, ascending, each with whether `self` has it.
    /// A byte at a time: a /16's 65536 members are 8192 comparisons.
    pub fn differences<'a>(&'a self, other: &'a Bitmap) -> impl Iterator<Item = (u32, bool)> + 'a {
        self.0
            .iter()
            .zip(&other.0)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .flat_map(|(i, (&a, &b))| {
                (0..8u32)
                    .filter(move |bit| (a ^ b) & (1 << bit) != 0)
                    .map(move |bit| (i as u32 * 8 + bit, a & (1 << bit) != 0))
            })
    }

    /// The first free, unreserved member at or after `start`, wrapping:
    /// a random start spreads members out as upstream's random scan does.
    pub fn free_from(&self, range: &Range, start: u32) -> Option<u32> {
        (0..range.size)
            .map(|i| (start + i) % range.size)
            .find(|m| !self.taken(*m) && !range.reserved.contains(m))
    }
}

/// Take `wants` from `bitmap`, all or none: the members given, in order.
pub fn take(
    range: &Range,
    bitmap: &mut Bitmap,
    wants: &[Want],
    mut start: impl FnMut() -> u32,
) -> Result<Vec<u32>, AllocError> {
    let mut got = Vec::with_capacity(wants.len());
    // Members asked for by name first, so `Any` never takes one of them.
    for (index, w) in wants.iter().enumerate() {
        if let Want::Exactly(m) = *w {
            if m >= range.size || bitmap.taken(m) {
                return Err(AllocError::Taken { index, member: m });
            }
            bitmap.set(m, true);
        }
    }
    for w in wants {
        let m = match *w {
            Want::Exactly(m) => m,
            Want::Any => {
                let m = bitmap
                    .free_from(range, start() % range.size.max(1))
                    .ok_or(AllocError::Full)?;
                bitmap.set(m, true);
                m
            }
        };
        got.push(m);
    }
    Ok(got)
}

fn corrupt(range: &Range, why: impl std::fmt::Display) -> ApiError {
    tracing::error!(key = range.key, error = %why, "range allocation record is corrupt");
    ApiError::internal(format!(
        "the allocation record {} is corrupt ({why}): restore the data directory from a backup",
        range.key
    ))
}

pub(super) fn store_err(range: &Range, e: store::Error) -> ApiError {
    match e {
        store::Error::Closed => ApiError::service_unavailable("the server is shutting down"),
        e => {
            tracing::error!(key = range.key, error = %e, "range allocation storage error");
            ApiError::internal(format!("storage error on {}: {e}", range.key))
        }
    }
}

pub(super) fn decode(range: &Range, value: &[u8]) -> Result<Bitmap, ApiError> {
    let v: Value = serde_json::from_slice(value).map_err(|e| corrupt(range, e))?;
    // A record of another plan's range (another server on the same store
    // started with other flags): its members mean other addresses, so it
    // is never read as this one's, nor overwritten (as upstream's
    // AllocationBitmap refuses a range that does not match).
    let stored = v.get("range").and_then(Value::as_str);
    if stored != Some(range.describe.as_str()) {
        tracing::error!(key = range.key, stored, wanted = %range.describe, "range allocation record is for another range");
        return Err(ApiError::internal(format!(
            "the allocation record {} is for {} and this server allocates {}: every server of a cluster must run with the same {}",
            range.key,
            stored.unwrap_or("no range"),
            range.describe,
            range.what
        )));
    }
    let data = v
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(range, "no data"))?;
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| corrupt(range, e))?;
    bytes.resize(Bitmap::new(range.size).0.len(), 0);
    Ok(Bitmap(bytes))
}

pub(super) fn encode(range: &Range, bitmap: &Bitmap) -> Bytes {
    let v = json!({
        "kind": "RangeAllocation",
        "apiVersion": "v1",
        "range": range.describe,
        "data": base64::engine::general_purpose::STANDARD.encode(&bitmap.0),
    });
    Bytes::from(v.to_string())
}

/// The bitmap and its revision; `None` revision: no record yet (a seeded
/// bitmap from the holders is returned).
async fn read(objects: &Objects, range: &Range) -> Result<(Bitmap, Option<i64>), ApiError> {
    if let Some(kv) = objects
        .store
        .get(range.key, None)
        .await
        .map_err(|e| store_err(range, e))?
    {
        return Ok((decode(range, &kv.value)?, Some(kv.mod_revision)));
    }
    let mut bitmap = Bitmap::new(range.size);
    let res = objects
        .list_raw(range.holders_prefix, ListOptions::default())
        .await
        .map_err(|e| store_err(range, e))?;
    for kv in res.items {
        if let Ok(v) = serde_json::from_slice::<Value>(&kv.value) {
            for m in range.held(&v) {
                bitmap.set(m, true);
            }
        }
    }
    Ok((bitmap, None))
}

/// Write `bitmap` if the record is still at `rev`: false when another
/// writer got there first.
pub(super) async fn swap(
    objects: &Objects,
    range: &Range,
    bitmap: &Bitmap,
    rev: Option<i64>,
) -> Result<bool, ApiError> {
    let value = encode(range, bitmap);
    let res = match rev {
        Some(rev) => objects.store.update(range.key, value, rev).await,
        None => objects.store.create(range.key, value).await,
    };
    match res {
        Ok(_) => Ok(true),
        Err(store::Error::Conflict { .. } | store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(store_err(range, e)),
    }
}

fn contended(range: &Range) -> ApiError {
    let mut e = ApiError::service_unavailable(format!(
        "too many concurrent allocations from {}: try again",
        range.describe
    ));
    e.retry_after_seconds = Some(1);
    e
}

/// Take `wants` from the range, all or none. A dry run only checks that
/// they could be taken now and records nothing.
pub async fn allocate(
    objects: &Objects,
    range: &Range,
    wants: &[Want],
    dry_run: bool,
) -> Result<Vec<u32>, AllocError> {
    if wants.is_empty() {
        return Ok(Vec::new());
    }
    for _ in 0..MAX_ROUNDS {
        let (mut bitmap, rev) = read(objects, range).await?;
        let got = take(range, &mut bitmap, wants, || {
            if range.in_order {
                0
            } else {
                rand::rng().random_range(0..range.size)
            }
        })?;
        if dry_run || swap(objects, range, &bitmap, rev).await? {
            return Ok(got);
        }
    }
    Err(AllocError::Api(contended(range)))
}

/// Give members back (a holder was deleted, or its create failed).
/// Nothing recorded yet means nothing to give back.
pub async fn release(objects: &Objects, range: &Range, members: &[u32]) -> Result<(), ApiError> {
    if members.is_empty() {
        return Ok(());
    }
    for _ in 0..MAX_ROUNDS {
        let Some(kv) = objects
            .store
            .get(range.key, None)
            .await
            .map_err(|e| store_err(range, e))?
        else {
            return Ok(());
        };
        let mut bitmap = decode(range, &kv.value)?;
        if members.iter().all(|m| !bitmap.taken(*m)) {
            return Ok(());
        }
        for m in members {
            bitmap.set(*m, false);
        }
        if swap(objects, range, &bitmap, Some(kv.mod_revision)).await? {
            return Ok(());
        }
    }
    Err(contended(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Range {
        Range {
            key: "/registry/ranges/test",
            describe: "0-9".into(),
            what: "tests",
            base: 0,
            size: 10,
            reserved: vec![0],
            holders_prefix: "/registry/none/",
            held_by: |_, _| Vec::new(),
            in_order: false,
        }
    }

    #[test]
    fn differences_are_the_members_set_in_one_bitmap_only() {
        let size = 1000;
        let (mut a, mut b) = (Bitmap::new(size), Bitmap::new(size));
        for m in [0, 7, 8, 9, 500, 999] {
            a.set(m, true);
        }
        for m in [7, 9, 10, 501, 998] {
            b.set(m, true);
        }
        let by_bits: Vec<(u32, bool)> = (0..size)
            .filter(|&m| a.taken(m) != b.taken(m))
            .map(|m| (m, a.taken(m)))
            .collect();
        let got: Vec<(u32, bool)> = a.differences(&b).collect();
        assert_eq!(got, by_bits);
        assert_eq!(
            got,
            [
                (0, true),
                (8, true),
                (10, false),
                (500, true),
                (501, false),
                (998, false),
                (999, true)
            ]
        );
        assert_eq!(a.differences(&a.clone()).count(), 0);
    }

    #[test]
    fn take_is_all_or_nothing_and_skips_reserved() {
        let small = small();
        let mut b = Bitmap::new(small.size);
        let got = take(&small, &mut b, &[Want::Any, Want::Exactly(3)], || 9).unwrap();
        // 9 free; named 3 taken first, so Any starting at 9 gets 9.
        assert_eq!(got, vec![9, 3]);
        // Any wraps past the reserved 0.
        let got = take(&small, &mut b, &[Want::Any], || 9).unwrap();
        assert_eq!(got, vec![1]);
        let before = b.clone();
        let err = take(&small, &mut b.clone(), &[Want::Any, Want::Exactly(3)], || 0);
        assert!(matches!(
            err,
            Err(AllocError::Taken {
                index: 1,
                member: 3
            })
        ));
        assert_eq!(b, before);
        // The reserved member can be asked for by name.
        assert_eq!(
            take(&small, &mut b, &[Want::Exactly(0)], || 0).unwrap(),
            vec![0]
        );
        for _ in 0..6 {
            take(&small, &mut b, &[Want::Any], || 5).unwrap();
        }
        assert!(matches!(
            take(&small, &mut b, &[Want::Any], || 5),
            Err(AllocError::Full)
        ));
    }

    #[test]
    fn bitmap_record_round_trips() {
        let small = small();
        let mut b = Bitmap::new(small.size);
        b.set(7, true);
        let back = decode(&small, &encode(&small, &b)).unwrap();
        assert!(back.taken(7) && !back.taken(6));
        assert_eq!(decode(&small, b"{}").unwrap_err().code, 500);
        // Another range's record is refused, not resized.
        let other = Range {
            describe: "0-19".into(),
            size: 20,
            ..small
        };
        let e = decode(&other, &encode(&self::small(), &b)).unwrap_err();
        assert!(e.message.contains("is for 0-9"), "{}", e.message);
    }
}
