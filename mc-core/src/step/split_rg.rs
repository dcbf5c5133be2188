//! SplitRg: some of an RG's regions move to a new RG with the same members, in one Raft
//! command on every replica; the parent's leader campaigns for the new RG as it applies.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Deadline, Seen, StepSpec, regions_at_leader};
use crate::cluster::outcome::{Versions, reported_version};
use crate::cluster::view::{ClusterView, RegionInfo, RgInfo};
use crate::ids::{RegionId, RgId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRg {
    pub rg: RgId,
    pub new_rg: RgId,
    pub regions: Vec<RegionId>,
}

impl StepSpec for SplitRg {
    fn kind(&self) -> StepKind {
        StepKind::SplitRg
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn deadline(&self) -> Deadline {
        Deadline::Fixed(30_000)
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::SplitRg(pb::SplitRgStep {
            new_rg_id: self.new_rg,
            region_ids: self.regions.clone(),
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        regions_at_leader(seen, |has| self.regions.iter().all(|r| !has(*r)))
    }

    /// The parent's regions named by the step, at the versions the outcome reports; the new
    /// RG comes in with the job's effect.
    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        self.regions
            .iter()
            .filter_map(|id| {
                let r = view.region(*id).filter(|r| r.rg == rg)?;
                let version = reported_version(ok, *id, r.version)?;
                Some(RegionInfo {
                    version,
                    ..r.clone()
                })
            })
            .collect()
    }

    fn simulate(&self, v: &mut ClusterView) {
        let parent = v.update_rg(self.rg, |info| {
            for r in &self.regions {
                info.regions.remove(r);
            }
            (info.members.clone(), info.leader)
        });
        let Some((members, leader)) = parent else {
            return;
        };
        for r in &self.regions {
            v.update_region(*r, |x| x.rg = self.new_rg);
        }
        v.put_rg(RgInfo {
            term: 0,
            conf_ver: 0,
            applied_index: 0,
            id: self.new_rg,
            members,
            leader,
            regions: self.regions.iter().copied().collect(),
            offline: false,
            heard: true,
        });
    }
}
