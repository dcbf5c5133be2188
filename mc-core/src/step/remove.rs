//! Remove: a member leaves the RG's configuration (its replica is destroyed apart).

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Seen, StepSpec, membership};
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remove {
    pub rg: RgId,
    pub store: StoreId,
}

impl StepSpec for Remove {
    fn kind(&self) -> StepKind {
        StepKind::Remove
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::Remove(pb::RemoveStep {
            store_id: self.store,
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        membership(seen, self.store, |role| role.is_none())
    }

    fn changed_store(&self) -> Option<StoreId> {
        Some(self.store)
    }

    fn simulate(&self, v: &mut ClusterView) {
        v.update_rg(self.rg, |info| {
            info.members.remove(&self.store);
            if info.leader == Some(self.store) {
                let next = info.voters().next();
                info.leader = next;
            }
        });
    }
}
