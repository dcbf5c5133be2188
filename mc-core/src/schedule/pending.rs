//! Work the view does not show yet. A job that is running, or that succeeded a moment ago but
//! whose effect no heartbeat has reported (views lag by a heartbeat interval, more when
//! heartbeats are late), still changes where replicas and leaders will be. Schedulers that
//! count replicas or leaders per store count these pending effects too, and RGs whose finished
//! job the view does not reflect yet are left alone — otherwise a stale view makes the balancer
//! move the same imbalance over and over (the simulator's stale-view scenario showed 14 times
//! the needed moves).

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::ClusterView;
use crate::ids::{RgId, StoreId};
use crate::jobs::JobSpec;
use crate::jobs::effect::Effect;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// Replicas each store will gain (+) or lose (−) once pending work shows.
    pub replicas: BTreeMap<StoreId, i64>,
    /// Leaders likewise.
    pub leaders: BTreeMap<StoreId, i64>,
    /// RGs whose finished job the view does not reflect yet.
    pub settling: BTreeSet<RgId>,
}

impl Pending {
    /// From the jobs running now and the ones that succeeded at the given times. A success
    /// is shown once the view heard of its RG after it (`heard(rg)`: when the view last took
    /// in that RG's heartbeat), or shows its effect, or is older than `settle_ms`.
    pub fn of(
        view: &ClusterView,
        running: &[JobSpec],
        succeeded: &[(u64, JobSpec)],
        now_ms: u64,
        settle_ms: u64,
        heard: &dyn Fn(RgId) -> u64,
    ) -> Self {
        let mut p = Pending::default();
        for spec in running {
            p.add(view, &spec.effect());
        }
        for (at, spec) in succeeded {
            let effect = spec.effect();
            let Some(rg) = effect.moves_in() else {
                continue;
            };
            if heard(rg) >= *at
                || now_ms.saturating_sub(*at) > settle_ms
                || reflected(view, &effect)
            {
                continue;
            }
            p.add(view, &effect);
            p.settling.insert(rg);
        }
        p
    }

    fn add(&mut self, view: &ClusterView, effect: &Effect) {
        let Some(rg) = effect.moves_in().and_then(|rg| view.rg(rg)) else {
            return;
        };
        let has = |s: &StoreId| rg.members.contains_key(s);
        match effect {
            Effect::ReplicaMoved { from, to, .. } => {
                if has(from) {
                    *self.replicas.entry(*from).or_default() -= 1;
                }
                if !has(to) {
                    *self.replicas.entry(*to).or_default() += 1;
                }
            }
            Effect::ReplicaAdded { store, .. } if !has(store) => {
                *self.replicas.entry(*store).or_default() += 1;
            }
            Effect::ReplicaRemoved { store, .. } if has(store) => {
                *self.replicas.entry(*store).or_default() -= 1;
            }
            Effect::LeaderMoved { to, .. } if rg.leader != Some(*to) => {
                *self.leaders.entry(*to).or_default() += 1;
                if let Some(l) = rg.leader {
                    *self.leaders.entry(l).or_default() -= 1;
                }
            }
            _ => {}
        }
    }
}

/// Whether the view already shows what the job did.
fn reflected(view: &ClusterView, effect: &Effect) -> bool {
    let Some(rg) = effect.moves_in().and_then(|rg| view.rg(rg)) else {
        return true;
    };
    match effect {
        Effect::ReplicaMoved { from, to, .. } => {
            rg.members.contains_key(to) && !rg.members.contains_key(from)
        }
        Effect::ReplicaAdded { store, .. } => rg.members.contains_key(store),
        Effect::ReplicaRemoved { store, .. } => !rg.members.contains_key(store),
        Effect::LeaderMoved { to, .. } => rg.leader == Some(*to),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{RgInfo, Role};

    #[test]
    fn running_and_unreported_moves_count_until_the_view_hears_of_them() {
        let mut view = ClusterView::default();
        view.put_rg(RgInfo {
            id: 1,
            members: [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)].into(),
            leader: Some(1),
            ..Default::default()
        });
        let moved = JobSpec::MigrateReplica {
            rg: 1,
            from: 1,
            to: 4,
        };
        // Running: store 1 will lose a replica, store 4 gain one; not settling (it is locked).
        let p = Pending::of(&view, std::slice::from_ref(&moved), &[], 100, 1_000, &|_| 0);
        assert_eq!((p.replicas[&1], p.replicas[&4]), (-1, 1));
        assert!(p.settling.is_empty());
        // Finished at 100, last heard of at 50: the view is stale, so it still counts, and
        // the RG is left alone.
        let done = [(100, moved.clone())];
        let p = Pending::of(&view, &[], &done, 200, 1_000, &|_| 50);
        assert_eq!(p.replicas[&4], 1);
        assert!(p.settling.contains(&1));
        // Heard of after it finished: whatever the view shows is the truth.
        let p = Pending::of(&view, &[], &done, 200, 1_000, &|_| 150);
        assert_eq!(p, Pending::default());
        // Too old: assumed overtaken.
        let p = Pending::of(&view, &[], &done, 2_000, 1_000, &|_| 50);
        assert_eq!(p, Pending::default());
    }
}
