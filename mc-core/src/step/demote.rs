//! Demote: a voter becomes a learner (before it is removed, so the quorum shrinks first).

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Seen, StepSpec, membership};
use crate::cluster::view::{ClusterView, Role};
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demote {
    pub rg: RgId,
    pub store: StoreId,
}

impl StepSpec for Demote {
    fn kind(&self) -> StepKind {
        StepKind::Demote
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::Demote(pb::DemoteStep {
            store_id: self.store,
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        membership(seen, self.store, |role| {
            role == Some(pb::ReplicaRole::Learner)
        })
    }

    fn changed_store(&self) -> Option<StoreId> {
        Some(self.store)
    }

    fn simulate(&self, v: &mut ClusterView) {
        v.update_rg(self.rg, |info| {
            if let Some(r) = info.members.get_mut(&self.store) {
                *r = Role::Learner;
            }
        });
    }
}
