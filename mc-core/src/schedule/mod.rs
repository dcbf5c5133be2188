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
pub mod maintenance;
pub mod merge_checker;
pub mod pending;
pub mod placement_checker;
pub mod replica_checker;
pub mod round;
pub mod split_checker;
pub mod stores;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::{ClusterView, RgInfo, StoreState};
use crate::ids::{ObjectId, RgId, StoreId};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
pub use config::ScheduleConfig;

/// What a scheduler sees.
pub struct Ctx<'a> {
    pub view: &'a ClusterView,
    pub now_ms: u64,
    pub config: &'a ScheduleConfig,
    /// RGs that jobs hold locks on, or whose finished job the view does not show yet: left
    /// alone until those end.
    pub busy: &'a BTreeSet<RgId>,
    /// Affinity groups and placement rules of the data objects, from the catalog.
    pub objects: &'a ObjectPlacement,
    /// Effects of running and just-finished jobs the view does not show yet.
    pub pending: &'a pending::Pending,
    /// The RGs a checker looks at in this run: those whose shape changed since its last run
    /// and those it asked to see again. `None`: every RG (a first run, a change of config,
    /// stores or placement rules, a change log that no longer reaches back).
    pub scope: Option<&'a BTreeSet<RgId>>,
    /// RGs this run could not decide now and wants to see again: at the next run (0) or at
    /// a time (a region too young to merge).
    pub revisit: RefCell<Vec<(RgId, u64)>>,
}

impl<'a> Ctx<'a> {
    /// A context that looks at every RG, with nothing busy or pending: for tests and benches.
    pub fn full(
        view: &'a ClusterView,
        now_ms: u64,
        config: &'a ScheduleConfig,
        objects: &'a ObjectPlacement,
    ) -> Self {
        static NOTHING: BTreeSet<RgId> = BTreeSet::new();
        static NONE_PENDING: std::sync::OnceLock<pending::Pending> = std::sync::OnceLock::new();
        Self {
            view,
            now_ms,
            config,
            busy: &NOTHING,
            objects,
            pending: NONE_PENDING.get_or_init(Default::default),
            scope: None,
            revisit: RefCell::default(),
        }
    }

    /// The RGs in scope, in id order.
    pub fn rgs_in_scope(&self) -> Box<dyn Iterator<Item = &'a RgInfo> + 'a> {
        let view = self.view;
        match self.scope {
            None => Box::new(view.rgs.values()),
            Some(scope) => Box::new(scope.iter().filter_map(move |id| view.rg(*id))),
        }
    }

    /// Whether a job holds the RG, its last job's effect is not in the view yet, or it was
    /// not heard from in this term: such an RG is left alone. A busy RG is seen again at the
    /// next run; an unheard one when its first report changes it.
    pub fn leave_alone(&self, rg: &RgInfo) -> bool {
        if self.busy.contains(&rg.id) {
            self.revisit(rg.id);
            return true;
        }
        !rg.heard
    }

    /// Looks at `rg` again at the next run.
    pub fn revisit(&self, rg: RgId) {
        self.revisit.borrow_mut().push((rg, 0));
    }

    /// Looks at `rg` again at `at_ms`.
    pub fn revisit_at(&self, rg: RgId, at_ms: u64) {
        self.revisit.borrow_mut().push((rg, at_ms));
    }

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
        self.objects.affinity.root_of(object)
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
                .is_some_and(|s| crate::placement::matches_labels(s, &required))
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectPlacement {
    /// Object → root of its affinity group, shared with the view (`ClusterView::set_affinity`),
    /// which keeps the groups spread over RGs by it.
    pub affinity: std::sync::Arc<crate::cluster::affinity::Affinity>,
    /// Objects whose replicas must be on stores with these labels (DDL placement hints).
    pub labels: BTreeMap<ObjectId, BTreeMap<String, String>>,
    /// A new number whenever the rules of objects that already existed change (a label, a
    /// group): a round then looks at every RG again. New objects do not change it: their
    /// regions reach the view as changes of their RGs.
    pub version: u64,
}

impl ObjectPlacement {
    pub fn new(
        affinity: BTreeMap<ObjectId, ObjectId>,
        labels: BTreeMap<ObjectId, BTreeMap<String, String>>,
    ) -> Self {
        Self {
            affinity: std::sync::Arc::new(crate::cluster::affinity::Affinity::new(affinity)),
            labels,
            version: 0,
        }
    }

    /// Whether `self` changes the group or the labels of an object `existed` says was there
    /// when `old` was built (objects created since bring their regions as RG changes).
    pub fn changes_rules_of(
        &self,
        old: &ObjectPlacement,
        existed: &dyn Fn(ObjectId) -> bool,
    ) -> bool {
        let differs = |o: ObjectId| {
            existed(o)
                && (self.affinity.root_of(o) != old.affinity.root_of(o)
                    || self.labels.get(&o) != old.labels.get(&o))
        };
        self.affinity.moved(&old.affinity).into_iter().any(existed)
            || old
                .labels
                .keys()
                .chain(self.labels.keys())
                .any(|o| differs(*o))
    }

    /// The objects of the affinity group rooted at `root`.
    pub fn members(&self, root: ObjectId) -> Vec<ObjectId> {
        self.affinity.members(root).collect()
    }
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
    /// Checkers look at the RGs in `ctx.scope` (`Ctx::rgs_in_scope`); balancers at the
    /// whole cluster, through the view's per-store index. A scheduler may keep what it needs
    /// between runs (the merge checker: when it first saw each candidate region).
    fn run(&mut self, ctx: &Ctx) -> Vec<Decision>;

    /// Whether a run depends only on the view, the busy RGs, the pending effects, the config
    /// and the object placement (not on the time): then a run that proposed nothing is not
    /// repeated until one of those changed (see `Round::plan`). Balancers say yes; checkers
    /// that age what they see or wait out a grace period say no.
    fn same_inputs_same_result(&self) -> bool {
        false
    }
}

/// Every scheduler, in the order they run in a tick (repair first).
pub fn all() -> Vec<Box<dyn Scheduler>> {
    vec![
        Box::new(replica_checker::ReplicaChecker),
        Box::new(placement_checker::PlacementChecker),
        Box::new(split_checker::SplitChecker),
        Box::new(merge_checker::MergeChecker::default()),
        Box::new(affinity_keeper::AffinityKeeper),
        Box::new(balance_replica::BalanceReplica),
        Box::new(balance_leader::BalanceLeader),
        Box::new(hot_region::HotRegion),
        Box::new(maintenance::Maintenance),
    ]
}

/// Stores that may receive replicas, with their current replica counts (from the view's
/// index: one look per store).
pub fn up_store_counts(view: &ClusterView) -> BTreeMap<StoreId, usize> {
    view.stores
        .values()
        .filter(|s| s.state == StoreState::Up && !view.maintenance.contains_key(&s.id))
        .map(|s| (s.id, view.replica_count(s.id)))
        .collect()
}

/// RGs led by each Up store (zero for stores leading none).
/// Proposals among `out`: the per-run cap counts these, never skips (a run that logged four
/// skips must still propose).
pub fn proposed(out: &[Decision]) -> usize {
    out.iter()
        .filter(|d| matches!(d, Decision::Propose { .. }))
        .count()
}

pub fn up_leader_counts(view: &ClusterView) -> BTreeMap<StoreId, usize> {
    view.stores
        .values()
        .filter(|s| s.state == StoreState::Up && !view.maintenance.contains_key(&s.id))
        .map(|s| (s.id, view.leader_count(s.id)))
        .collect()
}

#[cfg(test)]
mod tests;
