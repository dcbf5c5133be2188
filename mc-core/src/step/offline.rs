//! Offline: a replica stops serving. Alone it hands leadership away first; with `whole_rg`
//! the RG's leader stays, offline, so no write lands while the RG is merged or deleted.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Deadline, Seen, StepSpec, Target};
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offline {
    pub rg: RgId,
    pub store: StoreId,
    pub whole_rg: bool,
}

impl StepSpec for Offline {
    fn kind(&self) -> StepKind {
        StepKind::Offline
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn target(&self) -> Target {
        Target::Store(self.store)
    }

    /// An election may be needed.
    fn deadline(&self) -> Deadline {
        Deadline::Fixed(20_000)
    }

    fn done_if_replica_gone(&self) -> bool {
        true
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::Offline(pb::OfflineStep {
            transfer_leader_to: 0,
            whole_rg: self.whole_rg,
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        match seen {
            Seen::Store(replica) => {
                Check::Now(replica.is_some_and(|r| r.offline && (self.whole_rg || !r.is_leader)))
            }
            Seen::Leader(_) => Check::Unknown("Offline is a store step".into()),
        }
    }

    fn simulate(&self, v: &mut ClusterView) {
        // A replica the RG does not list (a stray) going offline leaves the RG as it is.
        v.update_rg(self.rg, |info| {
            if !info.members.contains_key(&self.store) {
                return;
            }
            if self.whole_rg {
                info.offline = true;
            } else if info.leader == Some(self.store) {
                let next = info.voters().find(|s| *s != self.store);
                info.leader = next;
            }
        });
    }
}
