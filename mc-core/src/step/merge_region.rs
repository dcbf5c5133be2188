//! MergeRegion: two adjacent regions of one RG become the left one, fenced by both versions.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Seen, StepSpec, epoch, regions_at_leader};
use crate::cluster::outcome::{Versions, reported_version};
use crate::cluster::view::{ClusterView, RegionInfo};
use crate::ids::{RegionId, RgId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRegion {
    pub rg: RgId,
    pub left: RegionId,
    pub right: RegionId,
    pub left_version: u64,
    pub right_version: u64,
}

impl StepSpec for MergeRegion {
    fn kind(&self) -> StepKind {
        StepKind::MergeRegion
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::MergeRegion(pb::MergeRegionStep {
            left_region_id: self.left,
            right_region_id: self.right,
            left_epoch: epoch(self.left_version),
            right_epoch: epoch(self.right_version),
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        regions_at_leader(seen, |has| has(self.left) && !has(self.right))
    }

    /// The left region grown to the right one's end, once the outcome moved its version.
    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        let in_rg = |id| view.region(id).filter(|r| r.rg == rg);
        match (in_rg(self.left), in_rg(self.right)) {
            (Some(l), Some(r)) if *l.end == *r.start => reported_version(ok, self.left, l.version)
                .map(|version| RegionInfo {
                    end: r.end.clone(),
                    version,
                    ..l.clone()
                })
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }

    fn simulate(&self, v: &mut ClusterView) {
        if let Some(r) = v.remove_region(self.right) {
            v.update_region(self.left, |l| {
                l.end = r.end;
                l.size_bytes += r.size_bytes;
                l.keys += r.keys;
                l.version += 1;
            });
            v.update_rg(self.rg, |info| info.regions.remove(&self.right));
        }
    }
}
