//! SplitRegion: a region splits at a key into two in the same RG, fenced by the region's
//! version so a split planned on a stale view is refused.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Seen, StepSpec, epoch, regions_at_leader};
use crate::cluster::RegionLoad;
use crate::cluster::outcome::{Versions, reported_version};
use crate::cluster::view::{ClusterView, RegionInfo};
use crate::ids::{RegionId, RgId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRegion {
    pub rg: RgId,
    pub region: RegionId,
    pub at: Vec<u8>,
    pub new_region: RegionId,
    pub version: u64,
}

impl StepSpec for SplitRegion {
    fn kind(&self) -> StepKind {
        StepKind::SplitRegion
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn command(&self, _: &dyn CommandContext) -> Result<Command, String> {
        Ok(Command::SplitRegion(pb::SplitRegionStep {
            region_id: self.region,
            split_key: self.at.clone(),
            new_region_id: self.new_region,
            expected_epoch: epoch(self.version),
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        regions_at_leader(seen, |has| has(self.new_region))
    }

    /// The known range split at the step's key; only versions come from the outcome.
    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        let Some(left) = view.region(self.region).filter(|r| r.rg == rg) else {
            return vec![];
        };
        if !left.contains(&self.at)
            || self.at.as_slice() == &*left.start
            || view.region(self.new_region).is_some()
        {
            return vec![];
        }
        let version = reported_version(ok, self.region, left.version).unwrap_or(left.version + 1);
        vec![
            RegionInfo {
                end: self.at.clone().into(),
                version,
                ..left.clone()
            },
            RegionInfo {
                id: self.new_region,
                start: self.at.clone().into(),
                version: reported_version(ok, self.new_region, 0).unwrap_or(version),
                size_bytes: 0,
                keys: 0,
                ..left.clone()
            },
        ]
    }

    fn simulate(&self, v: &mut ClusterView) {
        let Some(old) = v.region(self.region).cloned() else {
            return;
        };
        let right = RegionInfo {
            keys: old.keys / 2,
            id: self.new_region,
            rg: self.rg,
            object: old.object,
            start: self.at.clone().into(),
            end: old.end.clone(),
            version: old.version + 1,
            size_bytes: old.size_bytes / 2,
        };
        v.put_region(RegionInfo {
            end: self.at.clone().into(),
            version: old.version + 1,
            size_bytes: old.size_bytes - right.size_bytes,
            keys: old.keys - right.keys,
            ..old
        });
        v.put_region(right);
        v.set_split_key(self.region, Vec::new());
        // Each half takes half the traffic.
        if let Some(load) = v.loads.get(&self.region).copied() {
            let half = RegionLoad {
                read_bytes_per_sec: load.read_bytes_per_sec / 2,
                write_bytes_per_sec: load.write_bytes_per_sec / 2,
            };
            v.set_load(self.region, half);
            v.set_load(self.new_region, half);
        }
        v.update_rg(self.rg, |info| info.regions.insert(self.new_region));
    }
}
