//! Online: an offline replica serves again (the undo of Offline).

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Seen, StepSpec, Target};
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Online {
    pub rg: RgId,
    pub store: StoreId,
}

impl StepSpec for Online {
    fn kind(&self) -> StepKind {
        StepKind::Online
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn target(&self) -> Target {
        Target::Store(self.store)
    }

    fn done_if_replica_gone(&self) -> bool {
        true
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::Online(pb::OnlineStep {}))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        match seen {
            Seen::Store(replica) => Check::Now(replica.is_some_and(|r| !r.offline)),
            Seen::Leader(_) => Check::Unknown("Online is a store step".into()),
        }
    }

    fn simulate(&self, v: &mut ClusterView) {
        v.update_rg(self.rg, |info| info.offline = false);
    }
}
