//! One module per job type: its steps, rollback and error contract, and the preconditions it
//! checks before anything is persisted.

pub mod add_replica;
pub mod create_region;
pub mod create_regions;
pub mod create_rg;
pub mod delete_region;
pub mod delete_rg;
pub mod demote_replica;
pub mod destroy_replica;
pub mod drain_store;
pub mod merge_region;
pub mod merge_rg;
pub mod migrate_replica;
pub mod offline_replica;
pub mod offline_rg;
pub mod online_replica;
pub mod online_rg;
pub mod promote_replica;
pub mod remove_replica;
pub mod split_region;
pub mod split_rg;
pub mod transfer_leader;

#[cfg(test)]
pub(crate) mod tests;

mod prelude {
    pub use crate::cluster::{ClusterView, RegionInfo, Role, StoreState};
    pub use crate::error::{McError, Result};
    pub use crate::ids::{RegionId, RgId, StoreId};
    pub use crate::jobs::checks;
    pub use crate::jobs::effect::Effect;
    pub use crate::jobs::plan::{AtomicStep, NewRegion, Plan, PlannedStep};
    pub use crate::step;
}
