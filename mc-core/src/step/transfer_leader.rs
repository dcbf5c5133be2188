//! TransferLeader: the RG's leader hands leadership to a voter.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Deadline, Seen, StepSpec};
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeader {
    pub rg: RgId,
    pub to: StoreId,
}

impl StepSpec for TransferLeader {
    fn kind(&self) -> StepKind {
        StepKind::TransferLeader
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    /// An election is held.
    fn deadline(&self) -> Deadline {
        Deadline::Fixed(20_000)
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::TransferLeader(pb::TransferLeaderStep {
            to_store_id: self.to,
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        match seen {
            Seen::Leader(leader) => Check::Now(leader.leader_store_id == self.to),
            Seen::Store(_) => Check::Unknown("TransferLeader is a leader step".into()),
        }
    }

    fn simulate(&self, v: &mut ClusterView) {
        v.update_rg(self.rg, |info| info.leader = Some(self.to));
    }
}
