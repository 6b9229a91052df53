//! What a write takes from, or gives back to, state shared between objects
//! (cluster IPs, node ports), and the update rules that protect it; the
//! kind's strategy (`kinds`) says what. Field defaults are
//! `api::defaulting`'s, applied earlier by `metadata::prepare_create`.

use serde_json::Value;

use super::kinds::{Reallocation, Reservation};
use super::registry::ResourceDef;
use super::write::Write;
use super::ApiState;
use crate::api::status::ApiError;

/// Take what a new object needs. A dry run takes nothing. If the create
/// then fails, the caller gives the reservation back.
pub async fn reserve(
    state: &ApiState,
    def: &ResourceDef,
    obj: &mut Value,
    dry_run: bool,
) -> Result<Reservation, ApiError> {
    def.strategy.allocate(&state.objects, obj, dry_run).await
}

pub fn on_update(def: &ResourceDef, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    def.strategy.on_update(old, new)
}

/// Take what an update needs, for [`super::write::commit_update_from`].
pub async fn reallocate(
    w: Write<'_>,
    old: &Value,
    new: &mut Value,
) -> Result<Reallocation, ApiError> {
    w.def
        .strategy
        .reallocate(&w.state.objects, old, new, w.dry_run)
        .await
}

/// Give back what a deleted object held.
pub async fn release(state: &ApiState, def: &ResourceDef, deleted: &Value) {
    def.strategy.release(&state.objects, deleted).await;
    super::admission::quota::release_deleted(state, def, deleted).await;
}
