//! AddLearner: a new member that votes in nothing yet; it receives the whole RG by snapshot or
//! log, so its deadline grows with the RG and it counts as a snapshot to its store.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Deadline, LimitClass, Seen, StepSpec, membership};
use crate::cluster::view::{ClusterView, Role};
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddLearner {
    pub rg: RgId,
    pub store: StoreId,
}

impl StepSpec for AddLearner {
    fn kind(&self) -> StepKind {
        StepKind::AddLearner
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn limit_class(&self) -> LimitClass {
        LimitClass::Snapshot(self.store)
    }

    fn deadline(&self) -> Deadline {
        Deadline::MovesData {
            base_ms: 10_000,
            share: 1,
        }
    }

    fn command(&self, ctx: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::AddLearner(pb::AddLearnerStep {
            learner: Some(ctx.peer(self.store, pb::ReplicaRole::Learner)?),
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        membership(seen, self.store, |role| role.is_some())
    }

    fn changed_store(&self) -> Option<StoreId> {
        Some(self.store)
    }

    fn simulate(&self, v: &mut ClusterView) {
        v.update_rg(self.rg, |info| {
            if !info.members.contains_key(&self.store) {
                info.members.insert(self.store, Role::Learner);
            }
        });
    }
}
