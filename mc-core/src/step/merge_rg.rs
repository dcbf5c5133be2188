//! MergeRg: an offline source RG's regions move into a target RG with the same members. The
//! command carries the last index in any source member's log, so the merge takes every write
//! the source accepted, and the members seen hosting it (the store refuses if the target's
//! members differ by the time it applies).

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{Check, CommandContext, Deadline, Seen, StepSpec, Target, regions_at_leader};
use crate::cluster::outcome::{MAX_OUTCOME_REGIONS, Versions, reported_version};
use crate::cluster::view::{ClusterView, RegionInfo};
use crate::ids::{RegionId, RgId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRg {
    pub source: RgId,
    pub target: RgId,
}

impl StepSpec for MergeRg {
    fn kind(&self) -> StepKind {
        StepKind::MergeRg
    }

    /// Sent to the target's leader.
    fn rg(&self) -> RgId {
        self.target
    }

    fn target(&self) -> Target {
        Target::Leader(self.target)
    }

    /// The merge waits for the source replicas to finish applying.
    fn deadline(&self) -> Deadline {
        Deadline::Fixed(30_000)
    }

    fn needs_rgs(&self) -> Vec<(RgId, &'static str)> {
        vec![(self.source, "source_rg_id"), (self.target, "target_rg_id")]
    }

    fn reads_log_of(&self) -> Option<RgId> {
        Some(self.source)
    }

    fn command(&self, ctx: &dyn CommandContext) -> Result<Command, String> {
        let log = ctx
            .source_log()
            .filter(|l| l.rg == self.source)
            .ok_or_else(|| format!("RG {}'s log end was not read", self.source))?;
        Ok(Command::MergeRg(pb::MergeRgStep {
            source_rg_id: self.source,
            source_applied_index: log.last_index,
            expected_members: log.members.clone(),
        }))
    }

    fn check(&self, seen: Seen<'_>, regions_of: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        let moved = regions_of(self.source);
        if moved.is_empty() {
            return Check::Unknown(format!("RG {}'s regions are not known", self.source));
        }
        regions_at_leader(seen, |has| moved.iter().all(|r| has(*r)))
    }

    /// The source's regions the target's outcome names, now in the target.
    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo> {
        if rg != self.target {
            return vec![];
        }
        ok.ids()
            .take(MAX_OUTCOME_REGIONS)
            .filter_map(|id| {
                let known = view.region(id).filter(|r| r.rg == self.source)?;
                let version = reported_version(ok, id, known.version)?;
                Some(RegionInfo {
                    rg: self.target,
                    version,
                    ..known.clone()
                })
            })
            .collect()
    }

    fn simulate(&self, v: &mut ClusterView) {
        let moved: Vec<RegionId> = v
            .update_rg(self.source, |s| {
                std::mem::take(&mut s.regions).into_iter().collect()
            })
            .unwrap_or_default();
        for r in &moved {
            v.update_region(*r, |x| x.rg = self.target);
        }
        v.update_rg(self.target, |t| t.regions.extend(moved));
    }
}
