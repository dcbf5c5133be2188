//! Destroy: a replica's data and state are deleted from its store. Its deadline grows with
//! the RG (deleting is much cheaper than moving, but not free).

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Deadline, Seen, StepSpec, Target};
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destroy {
    pub rg: RgId,
    pub store: StoreId,
    /// The RG this one was merged into: the store waits until its replica of that RG holds
    /// the merged regions before it destroys this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<RgId>,
    /// The whole RG is deleted: the store refuses while its replica holds a region.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_if_empty: bool,
}

impl StepSpec for Destroy {
    fn kind(&self) -> StepKind {
        StepKind::Destroy
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn target(&self) -> Target {
        Target::Store(self.store)
    }

    fn deadline(&self) -> Deadline {
        Deadline::MovesData {
            base_ms: 5_000,
            share: 10,
        }
    }

    /// The RG may be gone already (its other replicas destroyed).
    fn needs_rgs(&self) -> Vec<(RgId, &'static str)> {
        vec![]
    }

    fn done_if_replica_gone(&self) -> bool {
        true
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::Destroy(pb::DestroyStep {
            merged_into_rg_id: self.merged_into.unwrap_or(0),
            only_if_empty: self.only_if_empty,
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        match seen {
            Seen::Store(replica) => Check::Now(replica.is_none()),
            Seen::Leader(_) => Check::Unknown("Destroy is a store step".into()),
        }
    }

    fn simulate(&self, v: &mut ClusterView) {
        let gone = v
            .update_rg(self.rg, |info| {
                if info.offline {
                    info.members.remove(&self.store);
                }
                info.offline && info.members.is_empty()
            })
            .unwrap_or(false);
        if gone && let Some(info) = v.remove_rg(self.rg) {
            for r in info.regions {
                v.remove_region(r);
            }
        }
    }
}
