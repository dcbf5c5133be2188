//! CreateRegion(s): new regions in an existing RG, through its leader. Several regions go in
//! one Raft command, all or none. Metadata only, so neither is counted per store.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, NewRegion, Seen, StepSpec};
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

/// The regions a creation puts in the view: in an RG it knows, each not already elsewhere.
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
        .map(|nr| RegionInfo {
            id: nr.id,
            rg,
            object: nr.object,
            start: nr.start.clone().into(),
            end: nr.end.clone().into(),
            version: reported_version(ok, nr.id, 0).unwrap_or(1).max(1),
            size_bytes: 0,
            keys: 0,
        })
        .collect()
}

/// Adds regions to an RG of the simulated view.
fn simulate_new(v: &mut ClusterView, rg: RgId, regions: &[NewRegion]) {
    if !v.rgs.contains_key(&rg) {
        return;
    }
    v.update_rg(rg, |info| info.regions.extend(regions.iter().map(|r| r.id)));
    for region in regions {
        v.put_region(RegionInfo {
            id: region.id,
            rg,
            object: region.object,
            start: region.start.clone().into(),
            end: region.end.clone().into(),
            version: 1,
            size_bytes: 0,
            keys: 0,
        });
    }
}

/// A region is created once the leader holds it.
fn check_created(seen: Seen<'_>, first: Option<&NewRegion>) -> Check {
    match seen {
        Seen::Leader(leader) => {
            Check::Regions(first.is_some_and(|nr| leader.regions.iter().any(|r| r.id == nr.id)))
        }
        Seen::Store(_) => Check::Unknown("CreateRegion is a leader step".into()),
    }
}

impl StepSpec for CreateRegion {
    fn kind(&self) -> StepKind {
        StepKind::CreateRegion
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::CreateRegion(pb::CreateRegionStep {
            region: Some(self.region.descriptor()),
            regions: vec![],
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        check_created(seen, Some(&self.region))
    }

    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        new_regions(view, rg, std::slice::from_ref(&self.region), ok)
    }

    fn simulate(&self, v: &mut ClusterView) {
        simulate_new(v, self.rg, std::slice::from_ref(&self.region));
    }
}

impl StepSpec for CreateRegions {
    /// On the wire it is a CreateRegion carrying several regions.
    fn kind(&self) -> StepKind {
        StepKind::CreateRegion
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::CreateRegion(pb::CreateRegionStep {
            region: None,
            regions: self.regions.iter().map(NewRegion::descriptor).collect(),
        }))
    }

    /// All or none: one is as good as all.
    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        check_created(seen, self.regions.first())
    }

    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        new_regions(view, rg, &self.regions, ok)
    }

    fn simulate(&self, v: &mut ClusterView) {
        simulate_new(v, self.rg, &self.regions);
    }
}
