//! Checkers and balancers that propose jobs, each decision with its reasons and scores in the
//! scheduling log. A scheduler is a pure function of its context — the cluster view, the
//! affinity groups from the catalog, the RGs jobs hold, the config — to decisions, so the
//! simulator drives the same code in virtual time; `coordinator` turns decisions into jobs.

pub mod affinity_keeper;
pub mod balance_leader;
pub mod balance_replica;
pub mod config;
pub mod coordinator;
pub mod hot_region;
pub mod merge_checker;
pub mod pending;
pub mod placement;
pub mod placement_checker;
pub mod replica_checker;
pub mod split_checker;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::cluster::{ClusterView, StoreState};
use crate::ids::{ObjectId, RegionId, RgId, StoreId};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
pub use config::ScheduleConfig;

/// What a scheduler sees.
pub struct Ctx<'a> {
    pub view: &'a ClusterView,
    pub now_ms: u64,
    pub config: &'a ScheduleConfig,
    /// RGs that jobs hold locks on: left alone until those end.
    pub busy: &'a BTreeSet<RgId>,
    /// Affinity groups and placement rules of the data objects, from the catalog.
    pub objects: &'a ObjectPlacement,
    /// When the coordinator first saw each region (young regions are not merged).
    pub first_seen: &'a HashMap<RegionId, u64>,
    /// Effects of running and just-finished jobs the view does not show yet.
    pub pending: &'a pending::Pending,
}

impl Ctx<'_> {
    /// Replicas per Up store, counting pending moves as done.
    pub fn replica_counts(&self) -> BTreeMap<StoreId, usize> {
        let mut counts = up_store_counts(self.view);
        for (s, d) in &self.pending.replicas {
            if let Some(n) = counts.get_mut(s) {
                *n = (*n as i64 + d).max(0) as usize;
            }
        }
        counts
    }

    pub fn group_of(&self, object: ObjectId) -> ObjectId {
        self.objects
            .affinity
            .get(&object)
            .copied()
            .unwrap_or(object)
    }

    /// Labels every replica of the RG must carry: those of every object with a region in it.
    pub fn required_labels(&self, rg: RgId) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.objects.labels.is_empty() {
            return out;
        }
        if let Some(info) = self.view.rg(rg) {
            for r in info.regions.iter().filter_map(|r| self.view.region(*r)) {
                if let Some(l) = self.objects.labels.get(&r.object) {
                    out.extend(l.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        out
    }

    /// Whether `store` may hold a replica of `rg` by the objects' label rules.
    pub fn allowed(&self, rg: RgId, store: StoreId) -> bool {
        let required = self.required_labels(rg);
        required.is_empty()
            || self
                .view
                .store(store)
                .is_some_and(|s| placement::matches_labels(s, &required))
    }

    /// Every member of the RG is on an Up store: nothing to repair first.
    pub fn healthy(&self, rg: RgId) -> bool {
        self.view.rg(rg).is_some_and(|info| {
            info.members.keys().all(|s| {
                self.view
                    .store(*s)
                    .is_some_and(|x| matches!(x.state, StoreState::Up | StoreState::Draining))
            })
        })
    }
}

/// What the schedulers need of the object tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectPlacement {
    /// Object → root of its affinity group; objects not listed are their own group.
    pub affinity: BTreeMap<ObjectId, ObjectId>,
    /// Objects whose replicas must be on stores with these labels (DDL placement hints).
    pub labels: BTreeMap<ObjectId, BTreeMap<String, String>>,
}

/// One decision: a job to propose, or why nothing was proposed.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Propose {
        spec: JobSpec,
        reason: String,
        /// The inputs: scores, counts, thresholds.
        scores: Vec<(String, f64)>,
    },
    Skip {
        subject: String,
        reason: String,
    },
}

pub trait Scheduler: Send + Sync {
    /// Stable: used in config keys, the scheduling log and the CLI.
    fn name(&self) -> &'static str;
    fn priority(&self) -> Priority;
    fn default_interval_ms(&self) -> u64;
    fn run(&self, ctx: &Ctx) -> Vec<Decision>;
}

/// Every scheduler, in the order they run in a tick (repair first).
pub fn all() -> Vec<Box<dyn Scheduler>> {
    vec![
        Box::new(replica_checker::ReplicaChecker),
        Box::new(placement_checker::PlacementChecker),
        Box::new(split_checker::SplitChecker),
        Box::new(merge_checker::MergeChecker),
        Box::new(affinity_keeper::AffinityKeeper),
        Box::new(balance_replica::BalanceReplica),
        Box::new(balance_leader::BalanceLeader),
        Box::new(hot_region::HotRegion),
    ]
}

/// Stores that may receive replicas, with their current replica counts.
pub fn up_store_counts(view: &ClusterView) -> BTreeMap<StoreId, usize> {
    let counts = placement::replica_counts(view);
    view.stores
        .values()
        .filter(|s| s.state == StoreState::Up)
        .map(|s| (s.id, counts.get(&s.id).copied().unwrap_or(0)))
        .collect()
}

/// RGs led by each Up store (zero for stores leading none).
pub fn up_leader_counts(view: &ClusterView) -> BTreeMap<StoreId, usize> {
    let mut leaders: BTreeMap<StoreId, usize> = view
        .stores
        .values()
        .filter(|s| s.state == StoreState::Up)
        .map(|s| (s.id, 0))
        .collect();
    for rg in view.rgs.values() {
        if let Some(n) = rg.leader.and_then(|l| leaders.get_mut(&l)) {
            *n += 1;
        }
    }
    leaders
}

#[cfg(test)]
mod tests;
