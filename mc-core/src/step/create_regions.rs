//! CreateRegion(s): new regions in an existing RG, through its leader. Several regions go in
//! one Raft command, all or none. Metadata only, so neither is counted per store. The two
//! steps differ only in how the wire names their regions.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, NewRegion, Seen, StepSpec, regions_at_leader};
use crate::cluster::outcome::{Versions, reported_version};
use crate::cluster::view::{ClusterView, RegionInfo};
use crate::ids::{RegionId, RgId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRegion {
    pub rg: RgId,
    pub region: NewRegion,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRegions {
    pub rg: RgId,
    pub regions: Vec<NewRegion>,
}

/// What both steps are: regions to create in an RG.
trait Creates: Send + Sync {
    fn rg(&self) -> RgId;
    fn regions(&self) -> &[NewRegion];
    fn wire(&self) -> pb::CreateRegionStep;
}

impl Creates for CreateRegion {
    fn rg(&self) -> RgId {
        self.rg
    }

    fn regions(&self) -> &[NewRegion] {
        std::slice::from_ref(&self.region)
    }

    fn wire(&self) -> pb::CreateRegionStep {
        pb::CreateRegionStep {
            region: Some(self.region.descriptor()),
            regions: vec![],
        }
    }
}

impl Creates for CreateRegions {
    fn rg(&self) -> RgId {
        self.rg
    }

    fn regions(&self) -> &[NewRegion] {
        &self.regions
    }

    fn wire(&self) -> pb::CreateRegionStep {
        pb::CreateRegionStep {
            region: None,
            regions: self.regions.iter().map(NewRegion::descriptor).collect(),
        }
    }
}

/// The regions a creation puts in the view: in an RG it knows, each not already elsewhere, at
/// the version the outcome reports (or 1).
pub(super) fn new_regions(
    view: &ClusterView,
    rg: RgId,
    regions: &[NewRegion],
    ok: &Versions,
) -> Vec<RegionInfo> {
    if view.rg(rg).is_none() {
        return vec![];
    }
    regions
        .iter()
        .filter(|nr| view.region(nr.id).is_none_or(|r| r.rg == rg))
        .map(|nr| nr.info(rg, reported_version(ok, nr.id, 0).unwrap_or(1).max(1)))
        .collect()
}

impl<T: Creates> StepSpec for T {
    /// On the wire both are a CreateRegion.
    fn kind(&self) -> StepKind {
        StepKind::CreateRegion
    }

    fn rg(&self) -> RgId {
        Creates::rg(self)
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::CreateRegion(self.wire()))
    }

    /// All or none: the first is as good as all.
    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        let first = self.regions().first().map(|r| r.id);
        regions_at_leader(seen, |has| first.is_some_and(has))
    }

    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        new_regions(view, rg, self.regions(), ok)
    }

    fn simulate(&self, v: &mut ClusterView) {
        let rg = Creates::rg(self);
        if !v.rgs.contains_key(&rg) {
            return;
        }
        let regions = self.regions();
        v.update_rg(rg, |info| info.regions.extend(regions.iter().map(|r| r.id)));
        for region in regions {
            v.put_region(region.info(rg, 1));
        }
    }
}
