//! The step table: every atomic step the MC sends a store, each its own type in its own file
//! with everything the MC needs to know about it: where it goes, which limit it counts
//! against, how long it may take, the command on the wire, how the probe tells whether it
//! landed, what its outcome may change in the view, and what it does in the simulator.
//!
//! The planner builds steps, the engine classifies their outcomes, the executor sends them,
//! the probe checks them, the limits and deadlines bound them, and mcsim applies them: all of
//! them read a step's meaning from here, through [`StepSpec`].
//!
//! Steps are persisted inside job records (JSON, tagged by `step`): variants are appended,
//! never renamed, and a field added to a step needs a serde default.

mod add_learner;
mod create;
mod create_regions;
mod delete_region;
mod demote;
mod destroy;
mod merge_region;
mod merge_rg;
mod offline;
mod online;
mod promote;
mod remove;
mod split_region;
mod split_rg;
mod transfer_leader;

pub use add_learner::AddLearner;
pub use create::Create;
pub use create_regions::{CreateRegion, CreateRegions};
pub use delete_region::DeleteRegion;
pub use demote::Demote;
pub use destroy::Destroy;
pub use merge_region::MergeRegion;
pub use merge_rg::MergeRg;
pub use offline::Offline;
pub use online::Online;
pub use promote::Promote;
pub use remove::Remove;
pub use split_region::SplitRegion;
pub use split_rg::SplitRg;
pub use transfer_leader::TransferLeader;

use proto::v1 as pb;
use proto::v1::StepKind;
use proto::v1::step_command::Step as Command;
use serde::{Deserialize, Serialize};

pub use crate::cluster::effect::NewRegion;
use crate::cluster::outcome::{StepEffect, Versions};
use crate::cluster::view::{ClusterView, RegionInfo};
use crate::ids::{RegionId, RgId, StoreId};

/// Where a step is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The store holding the replica the step is about.
    Store(StoreId),
    /// Whichever store leads the RG when the step is sent (re-resolved on NotLeader).
    Leader(RgId),
    /// Nothing is sent: the engine waits for the job's children.
    Children,
}

/// Which per-store limit a step counts against (see `jobs::limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitClass {
    /// Sent to whichever store leads: not counted per store.
    Leader,
    /// Moves or drops data on this store: its steps per minute.
    Data(StoreId),
    /// Changes only metadata on this store: counted apart, so a DDL burst is not throttled
    /// like a rebalance.
    Metadata(StoreId),
    /// This store receives the RG by snapshot: a data step, and a snapshot in flight.
    Snapshot(StoreId),
}

/// How long a step may take on the store (see `jobs::deadline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// The policy's floor.
    Floor,
    /// At least this long (an election, a merge waiting for applies).
    Fixed(u64),
    /// This long plus the time to move the RG's bytes, divided by `share` (a delete is much
    /// cheaper than a move, but still grows with the data).
    MovesData { base_ms: u64, share: u64 },
}

/// What the probe saw on the stores, for a step to judge whether it landed.
pub enum Seen<'a> {
    /// The step's own store, fenced: its replica of the RG, if it has one.
    Store(Option<&'a pb::ReplicaStatus>),
    /// Every member fenced and the RG's leader found: its status.
    Leader(&'a pb::ReplicaStatus),
}

/// A step's answer to "did it land?". The probe decides how far each kind can be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// As seen now, and it holds: the step's effect is there or it is not.
    Now(bool),
    /// From the leader's regions: "not landed" holds only once the leader's log is applied.
    Regions(bool),
    /// From the leader's membership: holds only once it is applied and not joint.
    Membership(bool),
    /// The stores cannot tell.
    Unknown(String),
}

/// What the executor knows of the live cluster that a step's command needs.
pub trait CommandContext {
    /// A member as the command names it: its store, address and role.
    fn peer(&self, store: StoreId, role: pb::ReplicaRole) -> Result<pb::ReplicaPeer, String>;
    /// The RG's members as the view knows them.
    fn rg_members(&self, rg: RgId) -> Vec<StoreId>;
    /// For a merge: the last index in any member's log of the source RG, and those members
    /// (gathered by the executor before it builds the command, see [`StepSpec::reads_log_of`]).
    fn source_log(&self) -> Option<&SourceLog>;
}

/// The end of a source RG's log across its members, as the executor read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLog {
    pub rg: RgId,
    pub last_index: u64,
    pub members: Vec<StoreId>,
}

/// Everything the MC knows about one kind of atomic step.
pub trait StepSpec: Send + Sync {
    fn kind(&self) -> StepKind;

    /// The RG named in the step's envelope.
    fn rg(&self) -> RgId;

    fn target(&self) -> Target {
        Target::Leader(self.rg())
    }

    fn limit_class(&self) -> LimitClass {
        match self.target() {
            Target::Store(s) => LimitClass::Data(s),
            _ => LimitClass::Leader,
        }
    }

    fn deadline(&self) -> Deadline {
        Deadline::Floor
    }

    /// The RGs that must still exist for a resumed job to send this step, with the field
    /// that names each.
    fn needs_rgs(&self) -> Vec<(RgId, &'static str)> {
        vec![(self.rg(), "rg_id")]
    }

    /// A NotFound("rg") answer means the goal is reached: a replica that is not there is
    /// already what the step wanted.
    fn done_if_replica_gone(&self) -> bool {
        false
    }

    /// As an undo step, a NotFound("region") answer means the goal is reached.
    fn undo_done_if_region_gone(&self) -> bool {
        false
    }

    /// The RG whose log end the command needs (a merge's source): the executor reads it from
    /// every member first and hands it over as [`CommandContext::source_log`].
    fn reads_log_of(&self) -> Option<RgId> {
        None
    }

    /// The command on the wire.
    fn command(&self, ctx: &dyn CommandContext) -> Result<Command, String>;

    /// Whether the step landed, from what the probe saw. `regions_of` gives the regions the
    /// view puts in an RG.
    fn check(&self, seen: Seen<'_>, regions_of: &dyn Fn(RgId) -> Vec<RegionId>) -> Check;

    /// The store whose membership the step changes: the only member difference its outcome
    /// may report.
    fn changed_store(&self) -> Option<StoreId> {
        None
    }

    /// The regions the view takes from the step's outcome on `rg`: derived from the step,
    /// with only their versions from the outcome (see `cluster::outcome`).
    fn regions_after(&self, _view: &ClusterView, _rg: RgId, _ok: &Versions) -> Vec<RegionInfo> {
        vec![]
    }

    /// What the step does when it succeeds in the simulator, which keeps no stores: the view
    /// changes as the stores' next reports would change it.
    fn simulate(&self, view: &mut ClusterView);
}

/// One instruction to one store. Persisted: variants are appended, never renamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum AtomicStep {
    Create(Create),
    AddLearner(AddLearner),
    Promote(Promote),
    Demote(Demote),
    Offline(Offline),
    Online(Online),
    Remove(Remove),
    Destroy(Destroy),
    TransferLeader(TransferLeader),
    CreateRegion(CreateRegion),
    SplitRegion(SplitRegion),
    MergeRegion(MergeRegion),
    DeleteRegion(DeleteRegion),
    SplitRg(SplitRg),
    MergeRg(MergeRg),
    /// A parent job's step: nothing is sent, the engine waits for the job's children.
    WaitChildren,
    CreateRegions(CreateRegions),
}

/// An expected region epoch as a step names it (only the version is checked).
pub(crate) fn epoch(version: u64) -> Option<pb::RegionEpoch> {
    Some(pb::RegionEpoch {
        version,
        conf_ver: 0,
    })
}

/// A membership step's check: the role the leader's applied configuration gives `store`.
fn membership(
    seen: Seen<'_>,
    store: StoreId,
    landed: impl FnOnce(Option<pb::ReplicaRole>) -> bool,
) -> Check {
    match seen {
        Seen::Leader(leader) => Check::Membership(landed(
            leader
                .members
                .iter()
                .find(|m| m.store_id == store)
                .map(|m| m.role()),
        )),
        Seen::Store(_) => Check::Unknown("a membership step is a leader step".into()),
    }
}

/// A region step's check: which regions the leader holds.
fn regions_at_leader(
    seen: Seen<'_>,
    landed: impl FnOnce(&dyn Fn(RegionId) -> bool) -> bool,
) -> Check {
    match seen {
        Seen::Leader(leader) => {
            Check::Regions(landed(&|id| leader.regions.iter().any(|r| r.id == id)))
        }
        Seen::Store(_) => Check::Unknown("a region step is a leader step".into()),
    }
}

/// `$body` with `$s` bound to the step's own type, for every step sent to a store.
macro_rules! each_step {
    ($self:expr, $s:ident => $body:expr, children => $children:expr) => {
        match $self {
            AtomicStep::Create($s) => $body,
            AtomicStep::AddLearner($s) => $body,
            AtomicStep::Promote($s) => $body,
            AtomicStep::Demote($s) => $body,
            AtomicStep::Offline($s) => $body,
            AtomicStep::Online($s) => $body,
            AtomicStep::Remove($s) => $body,
            AtomicStep::Destroy($s) => $body,
            AtomicStep::TransferLeader($s) => $body,
            AtomicStep::CreateRegion($s) => $body,
            AtomicStep::SplitRegion($s) => $body,
            AtomicStep::MergeRegion($s) => $body,
            AtomicStep::DeleteRegion($s) => $body,
            AtomicStep::SplitRg($s) => $body,
            AtomicStep::MergeRg($s) => $body,
            AtomicStep::CreateRegions($s) => $body,
            AtomicStep::WaitChildren => $children,
        }
    };
}

impl AtomicStep {
    /// Destroy the replica of `rg` on `store`.
    pub fn destroy(rg: RgId, store: StoreId) -> Self {
        AtomicStep::Destroy(Destroy {
            rg,
            store,
            merged_into: None,
            only_if_empty: false,
        })
    }

    /// Destroy the replica of `rg` on `store` only if it holds no region (DeleteRg).
    pub fn destroy_empty(rg: RgId, store: StoreId) -> Self {
        AtomicStep::Destroy(Destroy {
            rg,
            store,
            merged_into: None,
            only_if_empty: true,
        })
    }

    /// The step's own table entry; None for a parent's WaitChildren, which is not sent.
    pub fn spec(&self) -> Option<&dyn StepSpec> {
        each_step!(self, s => Some(s as &dyn StepSpec), children => None)
    }

    pub fn kind(&self) -> StepKind {
        self.spec().map_or(StepKind::WaitChildren, |s| s.kind())
    }

    pub fn target(&self) -> Target {
        self.spec().map_or(Target::Children, |s| s.target())
    }

    /// The RG named in the step's envelope.
    pub fn rg(&self) -> Option<RgId> {
        self.spec().map(|s| s.rg())
    }
}

/// The view takes a step's outcome through this, without knowing the steps.
impl StepEffect for AtomicStep {
    fn changed_store(&self) -> Option<StoreId> {
        self.spec().and_then(|s| s.changed_store())
    }

    fn designated_leader_of(&self) -> Option<&[StoreId]> {
        match self {
            AtomicStep::Create(c) if c.campaign => Some(&c.members),
            _ => None,
        }
    }

    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        self.spec()
            .map(|s| s.regions_after(view, rg, ok))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
