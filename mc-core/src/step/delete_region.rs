//! DeleteRegion: a region and its data leave the RG (a DROP or TRUNCATE), fenced by its
//! version.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Seen, StepSpec, epoch, regions_at_leader};
use crate::cluster::view::ClusterView;
use crate::ids::{RegionId, RgId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRegion {
    pub rg: RgId,
    pub region: RegionId,
    pub version: u64,
}

impl StepSpec for DeleteRegion {
    fn kind(&self) -> StepKind {
        StepKind::DeleteRegion
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    /// As the undo of a creation: the job still holds the region and shares its RG, so no
    /// merge can have moved it away; not there means the creation never landed. (A forward
    /// DeleteRegion answered NotFound cannot assume that.)
    fn undo_done_if_region_gone(&self) -> bool {
        true
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::DeleteRegion(pb::DeleteRegionStep {
            region_id: self.region,
            expected_epoch: epoch(self.version),
            delete_data: true,
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        regions_at_leader(seen, |has| !has(self.region))
    }

    fn simulate(&self, v: &mut ClusterView) {
        v.remove_region(self.region);
        v.update_rg(self.rg, |info| info.regions.remove(&self.region));
    }
}
