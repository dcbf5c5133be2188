//! Create: a replica of an RG on one store. With `members` it bootstraps a new RG (a seeded
//! replica, metadata only); without, it joins an existing RG and catches up from its leader.

use proto::v1::{self as pb, StepKind, step_command::Step as Command};
use serde::{Deserialize, Serialize};

use super::{CommandContext, LimitClass, NewRegion, Seen, StepSpec, Target};
use crate::cluster::view::{ClusterView, RegionInfo, RgInfo, Role};
use crate::ids::{RegionId, RgId, StoreId};
use crate::step::Check;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    pub rg: RgId,
    pub store: StoreId,
    /// Set: bootstrap a new RG with these members and regions.
    pub members: Vec<StoreId>,
    pub regions: Vec<NewRegion>,
    /// Bootstrap on the designated leader, sent after the other members' Creates: it takes
    /// leadership at once instead of waiting out an election timeout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub campaign: bool,
}

impl StepSpec for Create {
    fn kind(&self) -> StepKind {
        StepKind::Create
    }

    fn rg(&self) -> RgId {
        self.rg
    }

    fn target(&self) -> Target {
        Target::Store(self.store)
    }

    fn limit_class(&self) -> LimitClass {
        if self.members.is_empty() {
            LimitClass::Data(self.store)
        } else {
            LimitClass::Metadata(self.store)
        }
    }

    /// The RG may not exist yet.
    fn needs_rgs(&self) -> Vec<(RgId, &'static str)> {
        vec![]
    }

    fn command(&self, ctx: &dyn CommandContext) -> Result<Command, String> {
        use pb::ReplicaRole::Voter;
        Ok(Command::Create(pb::CreateStep {
            campaign: self.campaign,
            bootstrap: !self.members.is_empty(),
            // A replica that joins an existing RG is told its current members, whose Raft
            // messages it admits before it has caught up with the configuration.
            members: if self.members.is_empty() {
                ctx.rg_members(self.rg)
                    .into_iter()
                    .filter_map(|s| ctx.peer(s, Voter).ok())
                    .collect()
            } else {
                self.members
                    .iter()
                    .map(|s| ctx.peer(*s, Voter))
                    .collect::<Result<_, _>>()?
            },
            regions: self.regions.iter().map(NewRegion::descriptor).collect(),
        }))
    }

    fn check(&self, seen: Seen<'_>, _: &dyn Fn(RgId) -> Vec<RegionId>) -> Check {
        match seen {
            Seen::Store(replica) => Check::Now(replica.is_some()),
            Seen::Leader(_) => Check::Unknown("Create is a store step".into()),
        }
    }

    fn regions_after(
        &self,
        view: &ClusterView,
        rg: RgId,
        ok: &crate::cluster::outcome::Versions,
    ) -> Vec<RegionInfo> {
        super::create_regions::new_regions(view, rg, &self.regions, ok)
    }

    fn simulate(&self, v: &mut ClusterView) {
        // The designated leader's Create goes last and takes leadership at once.
        if self.campaign {
            v.update_rg(self.rg, |info| info.leader = Some(self.store));
        }
        if v.rgs.contains_key(&self.rg) {
            return;
        }
        for r in &self.regions {
            v.put_region(r.info(self.rg, 1));
        }
        v.put_rg(RgInfo {
            term: 0,
            conf_ver: 0,
            applied_index: 0,
            id: self.rg,
            members: self.members.iter().map(|s| (*s, Role::Voter)).collect(),
            leader: self.members.first().copied(),
            regions: self.regions.iter().map(|r| r.id).collect(),
            offline: false,
            // The simulator's view is what its heartbeats said.
            heard: true,
        });
    }
}
