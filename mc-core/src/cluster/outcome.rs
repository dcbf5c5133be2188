//! What a step's outcome may change in the view. The store that ran the MC's step describes
//! the RG after it, but a store is no more trusted in an outcome than in a heartbeat: the
//! change is derived from the step the MC sent (AddLearner adds its store, SplitRegion splits
//! the known range at its key, MergeRg moves the source's regions), and the outcome only
//! confirms it and says what the store alone knows (the new membership version, who leads, the
//! regions' new versions). Members that differ from the view's by more than the step's own
//! store, regions the step does not name, ranges and objects are never taken from it.
//!
//! The view does not know the steps: each step says what it changes through [`StepEffect`],
//! which the step table (`crate::step`) implements.

use std::collections::{BTreeSet, HashMap};

use proto::v1::StepOk;

use crate::cluster::members::Members;
use crate::cluster::view::{ClusterView, RegionInfo, Role};
use crate::ids::{RegionId, RgId, StoreId};

/// How far one step moves a region's version (a split or merge moves it by one).
const MAX_VERSION_STEP: u64 = 16;

/// What a succeeded step may change in the view, as the step itself says.
pub trait StepEffect {
    /// The store whose membership the step changes: the only member difference its outcome
    /// may report.
    fn changed_store(&self) -> Option<StoreId>;
    /// The members of a new RG, when this is its designated leader's bootstrap.
    fn designated_leader_of(&self) -> Option<&[StoreId]>;
    /// The regions the view puts after the step succeeded on `rg`.
    fn regions_after(&self, view: &ClusterView, rg: RgId, ok: &Versions) -> Vec<RegionInfo>;
}

/// What the view takes from one step's outcome.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    /// The RG's members after the step, at this membership version.
    pub members: Option<(Members, u64)>,
    /// Who leads, at this term.
    pub leader: Option<(StoreId, u64)>,
    pub applied_index: u64,
    /// Regions to put, each with the RG that holds it now.
    pub regions: Vec<RegionInfo>,
}

fn role_of(m: &proto::v1::Replica) -> Role {
    if m.role() == proto::v1::ReplicaRole::Learner {
        Role::Learner
    } else {
        Role::Voter
    }
}

/// Regions one outcome may name: as many as one step makes at most, with room to spare. An
/// outcome naming more is not read (it would cost the view's write lock a long pass).
pub const MAX_OUTCOME_REGIONS: usize = 1 << 16;

/// Region id → version, as the outcome reports them, in the outcome's order.
pub struct Versions {
    order: Vec<RegionId>,
    by_id: HashMap<RegionId, u64>,
}

impl Versions {
    pub fn of(ok: &StepOk) -> Self {
        if ok.regions.len() > MAX_OUTCOME_REGIONS {
            return Self {
                order: vec![],
                by_id: HashMap::new(),
            };
        }
        let pairs: Vec<(RegionId, u64)> = ok
            .regions
            .iter()
            .filter_map(|r| Some((r.id, r.epoch.as_ref()?.version)))
            .collect();
        Self {
            order: pairs.iter().map(|(id, _)| *id).collect(),
            by_id: pairs.into_iter().collect(),
        }
    }

    /// The regions the outcome reports a version for, in its order.
    pub fn ids(&self) -> impl Iterator<Item = RegionId> + '_ {
        self.order.iter().copied()
    }
}

/// The version the outcome reports for `region`, if it moved forward by at most one step's
/// worth from `known` (0: a new region).
pub fn reported_version(ok: &Versions, region: RegionId, known: u64) -> Option<u64> {
    let v = *ok.by_id.get(&region)?;
    (v >= known && v <= known.saturating_add(MAX_VERSION_STEP)).then_some(v)
}

/// What `view` takes from the outcome `ok` of `step` on `rg`. `from_leader`: the step ran on
/// the RG's leader (a store step only counts if its store said it leads).
pub fn accept(
    view: &ClusterView,
    rg: RgId,
    step: &dyn StepEffect,
    ok: &StepOk,
    from_leader: bool,
) -> Accepted {
    let mut out = Accepted::default();
    if let Some(known) = view.rg(rg) {
        let mut members = known.members.clone();
        // Newer membership versions only; elections between the step and its outcome do not
        // make it older (a heartbeat may have taken a newer term meanwhile).
        if from_leader && !ok.members.is_empty() && ok.conf_ver >= known.conf_ver {
            let reported: Members = ok
                .members
                .iter()
                .map(|m| (m.store_id, role_of(m)))
                .collect();
            let ids = |m: &Members| {
                m.iter()
                    .map(|(s, r)| (*s, *r == Role::Learner))
                    .collect::<BTreeSet<_>>()
            };
            let (was, now) = (ids(&known.members), ids(&reported));
            let differs: BTreeSet<StoreId> =
                was.symmetric_difference(&now).map(|(s, _)| *s).collect();
            let ours = differs.is_empty()
                || (differs.len() == 1 && differs.first().copied() == step.changed_store());
            if ours {
                members = reported.clone();
                out.members = Some((reported, ok.conf_ver));
            }
        }
        if from_leader
            && ok.leader_store_id != 0
            && ok.term >= known.term
            && members.get(&ok.leader_store_id) == Some(&Role::Voter)
        {
            out.leader = Some((ok.leader_store_id, ok.term));
        }
        if from_leader {
            out.applied_index = ok.applied_index;
        }
    }
    out.regions = step.regions_after(view, rg, &Versions::of(ok));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RgInfo;
    use crate::step::{self, AtomicStep};
    use proto::v1::{KeyRange, Region, RegionEpoch, Replica, ReplicaRole};

    fn view() -> ClusterView {
        let mut v = ClusterView::default();
        for (rg, regions) in [(1u64, vec![10u64, 11]), (2, vec![20])] {
            v.put_rg(RgInfo {
                id: rg,
                members: [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)]
                    .into_iter()
                    .collect(),
                leader: Some(1),
                regions: regions.iter().copied().collect(),
                term: 5,
                conf_ver: 3,
                heard: true,
                ..Default::default()
            });
            for (i, id) in regions.iter().enumerate() {
                v.put_region(RegionInfo {
                    id: *id,
                    rg,
                    object: 7,
                    start: vec![rg as u8, i as u8].into(),
                    end: vec![rg as u8, i as u8 + 1].into(),
                    version: 2,
                    size_bytes: 0,
                    keys: 0,
                });
            }
        }
        v
    }

    fn ok(members: &[(u64, bool)], conf_ver: u64, regions: &[(u64, u64, u64)]) -> StepOk {
        StepOk {
            leader_store_id: 1,
            term: 5,
            conf_ver,
            members: members
                .iter()
                .map(|(s, learner)| Replica {
                    store_id: *s,
                    role: if *learner {
                        ReplicaRole::Learner
                    } else {
                        ReplicaRole::Voter
                    } as i32,
                    offline: false,
                })
                .collect(),
            regions: regions
                .iter()
                .map(|(id, rg, version)| Region {
                    id: *id,
                    rg_id: *rg,
                    object_id: 99,
                    range: Some(KeyRange {
                        start: b"\x00".to_vec(),
                        end: vec![],
                    }),
                    epoch: Some(RegionEpoch {
                        version: *version,
                        conf_ver: 0,
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_membership_step_changes_only_its_own_store() {
        let v = view();
        let add = AtomicStep::AddLearner(step::AddLearner { rg: 1, store: 4 });
        let grown = ok(&[(1, false), (2, false), (3, false), (4, true)], 4, &[]);
        let a = accept(&v, 1, &add, &grown, true);
        assert_eq!(a.members.map(|(m, c)| (m.len(), c)), Some((4, 4)));
        // The same outcome for a step about another store, or a follower's: not taken.
        let other = AtomicStep::AddLearner(step::AddLearner { rg: 1, store: 5 });
        assert!(accept(&v, 1, &other, &grown, true).members.is_none());
        assert!(accept(&v, 1, &add, &grown, false).members.is_none());
        // Members no step made (a store alone): not taken, whatever the step.
        let alone = ok(&[(1, false)], 9, &[]);
        let offline = AtomicStep::Offline(step::Offline {
            rg: 1,
            store: 1,
            whole_rg: false,
        });
        assert!(accept(&v, 1, &offline, &alone, true).members.is_none());
        // An older membership version is stale.
        assert!(
            accept(
                &v,
                1,
                &add,
                &ok(&[(1, false), (2, false), (3, false), (4, true)], 2, &[]),
                true
            )
            .members
            .is_none()
        );
    }

    #[test]
    fn regions_come_from_the_step_and_only_their_versions_from_the_outcome() {
        let v = view();
        // A split names its halves; ranges and objects are the view's, cut at the step's key.
        let split = AtomicStep::SplitRegion(step::SplitRegion {
            rg: 1,
            region: 10,
            at: vec![1, 0, 5],
            new_region: 12,
            version: 2,
        });
        let a = accept(&v, 1, &split, &ok(&[], 3, &[(10, 1, 3), (12, 1, 3)]), true);
        assert_eq!(a.regions.len(), 2);
        assert_eq!(&*a.regions[0].end, &[1, 0, 5]);
        assert_eq!((a.regions[1].id, a.regions[1].object), (12, 7));
        assert_eq!(a.regions[0].version, 3);
        // A region of another RG, or one the step does not name, is not moved by an outcome.
        let grab = ok(&[], 3, &[(20, 1, 3), (11, 1, 3)]);
        let a = accept(&v, 1, &split, &grab, true);
        assert!(a.regions.iter().all(|r| r.id == 10 || r.id == 12), "{a:?}");
        // A merge of RGs moves only the source's regions into the target.
        let merge = AtomicStep::MergeRg(step::MergeRg {
            source: 2,
            target: 1,
        });
        let a = accept(&v, 1, &merge, &ok(&[], 3, &[(20, 1, 3), (11, 1, 9)]), true);
        assert_eq!(
            a.regions.iter().map(|r| (r.id, r.rg)).collect::<Vec<_>>(),
            vec![(20, 1)]
        );
        // A version that jumps is not one step's.
        let far = ok(&[], 3, &[(10, 1, 1_000)]);
        let rg_split = AtomicStep::SplitRg(step::SplitRg {
            rg: 1,
            new_rg: 3,
            regions: vec![10],
        });
        assert!(accept(&v, 1, &rg_split, &far, true).regions.is_empty());
    }
}
