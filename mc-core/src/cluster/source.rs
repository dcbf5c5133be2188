//! How the job engine reads the view without owning it: the live cluster in the server, a
//! fixed or hand-updated view in tests and the simulator.

use crate::cluster::effect::Effect;
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId, StoreId};

pub fn leader_hint(view: &ClusterView, rg: RgId) -> (Option<StoreId>, Vec<StoreId>) {
    match view.rg(rg) {
        Some(info) => (info.leader, info.members.keys().copied().collect()),
        None => (None, view.stores.keys().copied().collect()),
    }
}

/// Where the engine's executor reads the current view: the live cluster in the server, a
/// fixed or hand-updated view in tests.
pub trait ViewSource: Send + Sync + 'static {
    fn snapshot(&self) -> ClusterView;

    /// An RG's members and a store's address, without copying the whole view (a step's
    /// command needs only these).
    fn rg_members(&self, rg: RgId) -> Vec<StoreId> {
        self.snapshot()
            .rg(rg)
            .map(|r| r.members.keys().copied().collect())
            .unwrap_or_default()
    }

    fn store_address(&self, store: StoreId) -> Option<String> {
        self.snapshot().store(store).map(|s| s.address.clone())
    }

    /// The RG's leader as last known and its members; for an RG the view does not hold yet,
    /// no leader and every store (whom to ask).
    fn leader_hint(&self, rg: RgId) -> (Option<StoreId>, Vec<StoreId>) {
        leader_hint(&self.snapshot(), rg)
    }

    /// Bytes the RG's regions hold (a data-moving step's deadline grows with them).
    fn rg_bytes(&self, rg: RgId) -> u64 {
        self.snapshot().rg_bytes(rg)
    }

    /// The RG's regions.
    fn rg_regions(&self, rg: RgId) -> Vec<RegionId> {
        self.snapshot()
            .rg(rg)
            .map(|r| r.regions.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A job succeeded: a view that waits for heartbeats to learn of new RGs and regions
    /// (ten seconds apart by default) takes in what the job is known to have done, so a DDL
    /// call or a scheduler right after it plans against the cluster as it now is. Returns the
    /// RG shapes that changed, for the catalog.
    fn job_succeeded(&self, _effect: &Effect) -> ShapeChanges {
        ShapeChanges::default()
    }

    /// A step succeeded, and the store that ran it described the RG (members, leader, term,
    /// conf_ver, the regions the step made): the view takes what the step itself made, as the
    /// outcome confirms it (see `cluster::outcome`).
    /// Returns the RG shapes that changed, for the catalog.
    fn step_succeeded(
        &self,
        _rg: RgId,
        _step: &dyn crate::cluster::outcome::StepEffect,
        _ok: &proto::v1::StepOk,
        _from_leader: bool,
    ) -> ShapeChanges {
        ShapeChanges::default()
    }

    /// The shapes a job or step wrote are committed: what the catalog holds of those RGs is
    /// what that write put there, whatever was written for them meanwhile.
    fn shapes_committed(&self, _shapes: &ShapeChanges) {}
}

/// RG shapes to write to the catalog (or delete from it) after a change of the view, so a new
/// MC leader starts from them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShapeChanges {
    pub put: Vec<crate::cluster::rgs::RgRecord>,
    pub deleted: Vec<RgId>,
}

impl ShapeChanges {
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.deleted.is_empty()
    }
}

impl ViewSource for std::sync::RwLock<ClusterView> {
    fn snapshot(&self) -> ClusterView {
        self.read().expect("view lock").clone()
    }
}
