//! The live cluster view, fed by store and RG heartbeats, and store liveness: a store that
//! stops reporting is Disconnected after `disconnected_after_ms` (nothing new is placed on it)
//! and Down after `down_after_ms` (its replicas get repaired). Draining and Tombstone are set
//! by SREs and kept. Pure logic: the caller passes the time, so tests and the simulator control
//! it. What stores report is taken in by `ingest`, disputed leadership is settled in
//! `leadership`, and what jobs did reaches the view through `effects`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use proto::v1::{RegisterStoreRequest, RgHeartbeat, StoreHeartbeatRequest, StoreStats};

use crate::cluster::evidence::{
    self, Disagreement, EvidenceConfig, EvidenceEvent, Ledger, StoreRecord,
};
use crate::cluster::rgs::RgRecord;
use crate::cluster::source::ShapeChanges;
use crate::cluster::view::{ClusterView, RegionInfo, Role, StoreInfo, StoreState};
use crate::error::{McError, Result};
use crate::ids::RegionId;
use crate::ids::{RgId, StoreId};

mod effects;
mod ingest;
mod leadership;

/// How far a heartbeat may move a region's version past the view's (a few jobs' worth).
const MAX_VERSION_STEP: u64 = 16;

/// Longest split key an RG heartbeat may carry.
const MAX_SPLIT_KEY_BYTES: usize = 4 << 10;

#[derive(Clone, Debug)]
pub struct LivenessConfig {
    pub disconnected_after_ms: u64,
    /// `max_store_down_time`.
    pub down_after_ms: u64,
}

impl LivenessConfig {
    /// A store's liveness state after `silent_ms` without a report: Up, then Disconnected
    /// (nothing new is placed on it), then Down (its replicas are repaired). Operator-set
    /// states (Draining, Tombstone) stay. The server's ticker and mcsim both judge by it.
    pub fn next_state(&self, state: StoreState, silent_ms: u64) -> StoreState {
        match state {
            StoreState::Up | StoreState::Disconnected if silent_ms >= self.down_after_ms => {
                StoreState::Down
            }
            StoreState::Up if silent_ms >= self.disconnected_after_ms => StoreState::Disconnected,
            s => s,
        }
    }
}

impl Default for LivenessConfig {
    fn default() -> Self {
        Self {
            disconnected_after_ms: 20_000,
            down_after_ms: 30 * 60_000,
        }
    }
}

#[derive(Default)]
struct Inner {
    view: ClusterView,
    last_seen: HashMap<StoreId, u64>,
    stats: HashMap<StoreId, StoreStats>,
    /// Per RG: (term, conf_ver) of the newest heartbeat applied (older ones are stale), and
    /// when it came (region traffic is reported as bytes since then). Paged by id: two hash
    /// maps of these cost 22 B per cached region at a million regions, this 6.
    rg_seen: crate::cluster::dense::DenseMap<RgSeen>,
    /// Per RG, the fingerprint of the shape the catalog is known to hold (0: not known, as
    /// after a job or step wrote one): an RG heartbeat is persisted only when it differs.
    /// Restored RGs start with the catalog's, so a new leader's first round of heartbeats
    /// writes only the shapes that changed while no leader listened.
    persisted: crate::cluster::dense::DenseMap<u64>,
    next_store_id: StoreId,
    /// Labels as each store reports them (its --labels).
    reported: HashMap<StoreId, BTreeMap<String, String>>,
    /// Labels SREs set, over the reported ones; an empty value removes the label.
    overrides: HashMap<StoreId, BTreeMap<String, String>>,
    /// Draining stores silent for `down_after_ms`: reported once by `tick`, though their state
    /// stays Draining (the operator's intent and liveness are separate).
    silent_draining: BTreeSet<StoreId>,
    /// Stores that report they cannot write, with why.
    unhealthy: HashMap<StoreId, String>,
    /// Stores whose health changed since the ticker last looked: Some(why) fell sick.
    health_events: Vec<(StoreId, Option<String>)>,
    /// Regions by key and the log of route changes, kept in step with `view` by RG.
    routes: crate::cluster::routes::RouteIndex,
    /// The leader a new RG's campaigning store reported in its step outcome, before the
    /// job's effect brings the RG into the view: (leader, term, conf_ver, applied index).
    new_rg_leaders: HashMap<RgId, (StoreId, u64, u64, u64)>,
    /// What stores said that the catalog does not hold.
    ledger: Ledger,
    /// RGs where a voter kept claiming to lead at an older term than the claim taken: one of
    /// the two claims is stale or a lie, and the RG's members are asked which.
    leader_conflicts: std::collections::VecDeque<RgId>,
    conflicted: std::collections::HashSet<RgId>,
    /// RGs whose leader the view took from a heartbeat: (store, term, when). A claim the
    /// members contradict is held against that store only if it made it.
    claims: HashMap<RgId, (StoreId, u64, u64)>,
    /// Per store in maintenance, when its process started (from its last report's uptime; None
    /// until one is heard): a report from a process started later is the store back from the
    /// restart the window was for, and ends it. And windows that ended (expired or the store
    /// came back), for the catalog.
    maintenance_started: HashMap<StoreId, Option<u64>>,
    maintenance_ended: Vec<StoreId>,
    /// (store, RG) → until when the store's claims to lead the RG are not taken: its members
    /// contradicted its last one.
    discredited: HashMap<(StoreId, RgId), u64>,
}

/// An RG whose leadership claims conflict, with its members and the claim the view held when
/// it was taken (see `LiveCluster::settle_leader`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConflict {
    pub rg: RgId,
    pub members: Vec<StoreId>,
    pub claim: (Option<StoreId>, u64),
}

/// Conflicting leadership claims kept for the members to settle, and discredited claimants
/// remembered: bounded, whatever a store sends.
const MAX_LEADER_CONFLICTS: usize = 1_024;
const MAX_DISCREDITED: usize = 4_096;

/// See `Inner::rg_seen`; all zeros: never heard from in this term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RgSeen {
    term: u64,
    conf_ver: u64,
    /// The applied index of the newest report taken at (term, conf_ver), and the store that
    /// sent it: only that store's own older reports are older than it.
    applied: u64,
    applied_by: StoreId,
    heard_ms: u64,
}

impl Inner {
    /// (term, conf_ver) of the newest report applied of the RG.
    fn rg_version(&self, rg: RgId) -> Option<(u64, u64)> {
        self.rg_seen.get(rg).map(|s| (s.term, s.conf_ver))
    }

    fn set_rg_version(&mut self, rg: RgId, (term, conf_ver): (u64, u64)) {
        let seen = self.rg_seen.entry(rg);
        if (seen.term, seen.conf_ver) != (term, conf_ver) {
            seen.applied = 0;
        }
        seen.term = term;
        seen.conf_ver = conf_ver;
        self.rg_seen.tidy(rg);
    }

    /// The applied index of `from`'s newest report taken at the RG's (term, conf_ver): a
    /// report of the same store and version with a lower one was built before it. Another
    /// store's number says nothing about it (a voter claiming a huge index would otherwise
    /// silence the real leader for the rest of the term).
    fn rg_applied(&self, rg: RgId, from: StoreId) -> u64 {
        self.rg_seen
            .get(rg)
            .filter(|s| s.applied_by == from)
            .map_or(0, |s| s.applied)
    }

    /// When the RG's last heartbeat was taken in.
    fn rg_heard(&self, rg: RgId) -> Option<u64> {
        self.rg_seen
            .get(rg)
            .map(|s| s.heard_ms)
            .filter(|ms| *ms > 0)
    }

    /// Notes a heartbeat of the RG at `now`; when the one before it came.
    fn hear_rg(&mut self, rg: RgId, now: u64) -> Option<u64> {
        let seen = self.rg_seen.entry(rg);
        let last = std::mem::replace(&mut seen.heard_ms, now);
        self.rg_seen.tidy(rg);
        (last > 0).then_some(last)
    }

    fn effective_labels(&self, store: StoreId) -> BTreeMap<String, String> {
        let mut labels = self.reported.get(&store).cloned().unwrap_or_default();
        for (k, v) in self.overrides.get(&store).into_iter().flatten() {
            if v.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        labels
    }
}

pub struct LiveCluster {
    inner: RwLock<Inner>,
    config: LivenessConfig,
    /// Heartbeats applied since this term began: store, RG and region heartbeats.
    pub heartbeats: [std::sync::atomic::AtomicU64; 3],
    evidence: EvidenceConfig,
}

impl LiveCluster {
    pub fn new(config: LivenessConfig) -> Self {
        let mut view = ClusterView::default();
        view.keep_route_journal();
        Self {
            inner: RwLock::new(Inner {
                next_store_id: 1,
                view,
                ..Default::default()
            }),
            config,
            heartbeats: Default::default(),
            evidence: EvidenceConfig::default(),
        }
    }

    /// How reports that disagree with the catalog are judged (see `cluster::evidence`).
    pub fn with_evidence(mut self, evidence: EvidenceConfig) -> Self {
        self.evidence = evidence;
        self
    }

    /// What the store said that the catalog does not hold, counted.
    pub fn evidence_record(&self, store: StoreId) -> Option<StoreRecord> {
        let inner = self.inner.read().expect("cluster lock");
        inner.ledger.record(store).cloned()
    }

    /// Lies and suspicions since the last call, for alerts.
    pub fn take_evidence_events(&self) -> Vec<EvidenceEvent> {
        self.inner
            .write()
            .expect("cluster lock")
            .ledger
            .take_events()
    }

    /// Takes in a store known from the catalog as if it had just reported, so a new MC leader
    /// gives every store a full liveness period before judging it. Operator-set states
    /// (Draining, Tombstone) are kept; liveness states start over at Up.
    pub fn restore(&self, mut info: StoreInfo, now: u64) {
        if !matches!(info.state, StoreState::Draining | StoreState::Tombstone) {
            info.state = StoreState::Up;
        }
        let mut inner = self.inner.write().expect("cluster lock");
        inner.next_store_id = inner.next_store_id.max(info.id + 1);
        inner.last_seen.insert(info.id, now);
        inner.view.put_store(info);
    }

    /// Takes in an RG known from the catalog, as not heard from in this term: work that
    /// changes its membership waits for its first report, which replaces it whatever its
    /// term.
    /// Takes in the RGs the catalog has tombstones for (deleted, merged away).
    pub fn restore_retired(&self, rgs: impl IntoIterator<Item = RgId>) {
        self.inner
            .write()
            .expect("cluster lock")
            .view
            .retired
            .extend(rgs);
    }

    pub fn restore_rg(&self, record: RgRecord) {
        let mut inner = self.inner.write().expect("cluster lock");
        for region in record.regions {
            inner.view.put_region(region);
        }
        let mut rg = record.rg;
        rg.heard = false;
        let id = rg.id;
        inner.view.put_rg(rg);
        let Inner { view, routes, .. } = &mut *inner;
        routes.sync(view, [id]);
        if let Some(shape) = RgRecord::of(&inner.view, id) {
            *inner.persisted.entry(id) = shape.fingerprint();
        }
    }

    /// The shapes of `rgs` the catalog does not hold yet, each with its fingerprint (for
    /// `shapes_persisted` once written).
    pub fn shapes_to_persist(&self, rgs: &[RgId]) -> Vec<(RgRecord, u64)> {
        let inner = self.inner.read().expect("cluster lock");
        rgs.iter()
            .filter_map(|rg| RgRecord::of(&inner.view, *rg))
            .map(|r| {
                let fp = r.fingerprint();
                (r, fp)
            })
            .filter(|(r, fp)| inner.persisted.get(r.rg.id) != Some(fp))
            .collect()
    }

    /// Notes shapes as written to the catalog, unless the view's shape changed meanwhile (a
    /// step's outcome, whose own write may have landed first): then the next heartbeat writes
    /// it again.
    pub fn shapes_persisted(&self, written: &[(RgId, u64)]) {
        let mut inner = self.inner.write().expect("cluster lock");
        for (rg, fp) in written {
            let now = RgRecord::of(&inner.view, *rg).map(|r| r.fingerprint());
            *inner.persisted.entry(*rg) = if now == Some(*fp) { *fp } else { 0 };
            inner.persisted.tidy(*rg);
        }
    }

    /// Reads the view with its route index (regions by key, the route change log).
    pub fn routes<R>(
        &self,
        f: impl FnOnce(&ClusterView, &crate::cluster::routes::RouteIndex) -> R,
    ) -> R {
        let inner = self.inner.read().expect("cluster lock");
        f(&inner.view, &inner.routes)
    }

    /// Numbers this term's route revisions from `revision` (see `RouteIndex::start_at`).
    pub fn start_routes_at(&self, revision: u64) {
        self.inner
            .write()
            .expect("cluster lock")
            .routes
            .start_at(revision);
    }

    /// Woken with the route revision whenever a route changes.
    pub fn subscribe_routes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.read().expect("cluster lock").routes.subscribe()
    }

    /// RGs whose leader has not reported for `grace_ms` (since `since_ms`, the start of the
    /// term, for those never heard from): leaderless, most likely without a quorum. Each with
    /// its members and how long it has been silent.
    pub fn silent_rgs(
        &self,
        now: u64,
        since_ms: u64,
        grace_ms: u64,
    ) -> Vec<(RgId, Vec<StoreId>, u64)> {
        let inner = self.inner.read().expect("cluster lock");
        inner
            .view
            .rgs
            .values()
            .filter_map(|rg| {
                let last = inner.rg_heard(rg.id).unwrap_or(since_ms);
                let silent = now.saturating_sub(last);
                (silent >= grace_ms && !rg.offline)
                    .then(|| (rg.id, rg.members.keys().copied().collect(), silent))
            })
            .collect()
    }

    /// (RGs known, RGs heard from in this term): a new leader's readiness.
    pub fn readiness(&self) -> (usize, usize) {
        let inner = self.inner.read().expect("cluster lock");
        let heard = inner.view.rgs.values().filter(|r| r.heard).count();
        (inner.view.rgs.len(), heard)
    }

    /// One RG's shape, read without copying the view.
    pub fn rg_record(&self, rg: RgId) -> Option<crate::cluster::rgs::RgRecord> {
        crate::cluster::rgs::RgRecord::of(&self.inner.read().expect("cluster lock").view, rg)
    }

    /// Keeps the view's sets of small and large regions for these sizes.
    pub fn watch(&self, watch: crate::cluster::index::Watch) {
        let unchanged = self
            .inner
            .read()
            .expect("cluster lock")
            .view
            .watched()
            .map(|w| w.0)
            == Some(watch);
        if !unchanged {
            self.inner
                .write()
                .expect("cluster lock")
                .view
                .set_watch(watch);
        }
    }

    /// Gives the view the affinity map to count spread groups by (the write lock only when
    /// the map is a new one: after a DDL).
    pub fn affinity(&self, map: &std::sync::Arc<crate::cluster::affinity::Affinity>) {
        let same = std::sync::Arc::ptr_eq(
            self.inner.read().expect("cluster lock").view.affinity(),
            map,
        );
        if !same {
            self.inner
                .write()
                .expect("cluster lock")
                .view
                .set_affinity(map.clone());
        }
    }

    /// Reads the view in place with when each RG was last heard from (0: never in this term):
    /// what a scheduling round needs, under one lock.
    pub fn read_with_heard<R>(&self, f: impl FnOnce(&ClusterView, &dyn Fn(RgId) -> u64) -> R) -> R {
        let inner = self.inner.read().expect("cluster lock");
        let heard = |rg: RgId| inner.rg_heard(rg).unwrap_or(0);
        f(&inner.view, &heard)
    }

    /// Reads the view in place: for answers that need a few records of a large view.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterView) -> R) -> R {
        f(&self.inner.read().expect("cluster lock").view)
    }

    /// A consistent copy of the view, for planning.
    pub fn view(&self) -> ClusterView {
        self.inner.read().expect("cluster lock").view.clone()
    }

    /// One store, without copying the view.
    pub fn store(&self, store: StoreId) -> Option<StoreInfo> {
        self.inner
            .read()
            .expect("cluster lock")
            .view
            .stores
            .get(&store)
            .cloned()
    }

    /// When the last heartbeat of the RG was taken in.
    pub fn rg_heard(&self, rg: RgId) -> Option<u64> {
        self.inner.read().expect("cluster lock").rg_heard(rg)
    }

    pub fn last_seen(&self, store: StoreId) -> Option<u64> {
        self.inner
            .read()
            .expect("cluster lock")
            .last_seen
            .get(&store)
            .copied()
    }

    pub fn stats(&self, store: StoreId) -> Option<StoreStats> {
        self.inner
            .read()
            .expect("cluster lock")
            .stats
            .get(&store)
            .cloned()
    }

    /// Puts `store` in maintenance until `until_ms`, or ends its window (None).
    pub fn set_maintenance(&self, store: StoreId, until_ms: Option<u64>) -> Result<()> {
        let mut inner = self.inner.write().expect("cluster lock");
        if !inner.view.stores.contains_key(&store) {
            return Err(McError::not_found("store", store));
        }
        match until_ms {
            Some(until) => {
                inner.view.maintenance.insert(store, until);
                // The running process's start, from its last report (if heard in this term).
                let started = inner
                    .stats
                    .get(&store)
                    .zip(inner.last_seen.get(&store))
                    .map(|(s, seen)| seen.saturating_sub(s.uptime_secs.saturating_mul(1_000)));
                inner.maintenance_started.insert(store, started);
            }
            None => {
                inner.view.maintenance.remove(&store);
                inner.maintenance_started.remove(&store);
            }
        }
        Ok(())
    }

    /// Windows that ended since the last call (expired, or the store reported again after it
    /// was away): for the catalog to forget.
    pub fn take_maintenance_ended(&self) -> Vec<StoreId> {
        std::mem::take(&mut self.inner.write().expect("cluster lock").maintenance_ended)
    }

    /// Moves silent stores to Disconnected, then Down. Returns the stores that changed, and
    /// once each Draining store that went silent (reported as Down, its state kept).
    pub fn tick(&self, now: u64) -> Vec<(StoreId, StoreState)> {
        let mut inner = self.inner.write().expect("cluster lock");
        inner.ledger.tick(&self.evidence, now);
        inner.discredited.retain(|_, until| *until > now);
        let mut changed = Vec::new();
        let last_seen = inner.last_seen.clone();
        let expired: Vec<StoreId> = inner
            .view
            .maintenance
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(s, _)| *s)
            .collect();
        for store in expired {
            inner.view.maintenance.remove(&store);
            inner.maintenance_started.remove(&store);
            inner.maintenance_ended.push(store);
        }
        let maintenance = &inner.view.maintenance;
        let moves: Vec<(StoreId, StoreState)> = inner
            .view
            .stores
            .values()
            .filter_map(|store| {
                let silent = now.saturating_sub(last_seen.get(&store.id).copied().unwrap_or(0));
                let mut next = self.config.next_state(store.state, silent);
                // A store in maintenance is away on purpose: never Down, never repaired.
                if next == StoreState::Down && maintenance.contains_key(&store.id) {
                    next = StoreState::Disconnected;
                }
                (next != store.state).then_some((store.id, next))
            })
            .collect();

        for (id, next) in moves {
            inner.view.update_store(id, |s| s.state = next);
            changed.push((id, next));
        }
        let draining: Vec<(StoreId, u64)> = inner
            .view
            .stores
            .values()
            .filter(|s| s.state == StoreState::Draining)
            .map(|s| {
                (
                    s.id,
                    now.saturating_sub(last_seen.get(&s.id).copied().unwrap_or(0)),
                )
            })
            .collect();
        for (id, silent) in draining {
            if silent >= self.config.down_after_ms {
                if inner.silent_draining.insert(id) {
                    changed.push((id, StoreState::Down));
                }
            } else if silent < self.config.disconnected_after_ms {
                inner.silent_draining.remove(&id);
            }
        }
        changed
    }

    /// Stores whose health changed since the last call: `Some(why)` when one reported it
    /// cannot write, `None` when it is well again. For alerts.
    pub fn take_health_events(&self) -> Vec<(StoreId, Option<String>)> {
        std::mem::take(&mut self.inner.write().expect("cluster lock").health_events)
    }

    /// Why the store reported it cannot write, while it does.
    pub fn unhealthy(&self, store: StoreId) -> Option<String> {
        self.inner
            .read()
            .expect("cluster lock")
            .unhealthy
            .get(&store)
            .cloned()
    }

    /// Not heard from lately: Disconnected, Down, or a Draining store silent past
    /// `down_after_ms`.
    pub fn is_silent(&self, store: StoreId) -> bool {
        let inner = self.inner.read().expect("cluster lock");
        inner.silent_draining.contains(&store)
            || inner
                .view
                .stores
                .get(&store)
                .is_some_and(|s| matches!(s.state, StoreState::Disconnected | StoreState::Down))
    }

    /// Merges SRE-set labels over a store's (an empty value removes one); returns the store's
    /// overrides and its labels now.
    pub fn set_labels(
        &self,
        store: StoreId,
        labels: &BTreeMap<String, String>,
    ) -> Result<(BTreeMap<String, String>, StoreInfo)> {
        let mut inner = self.inner.write().expect("cluster lock");
        if !inner.view.stores.contains_key(&store) {
            return Err(McError::not_found("store", store));
        }
        if !inner.reported.contains_key(&store)
            && let Some(info) = inner.view.stores.get(&store)
        {
            // Restored from the catalog and not heard from yet: its last labels stand in.
            let known = info.labels.clone();
            inner.reported.insert(store, known);
        }
        let overrides = inner.overrides.entry(store).or_default();
        for (k, v) in labels {
            overrides.insert(k.clone(), v.clone());
        }
        let overrides = overrides.clone();
        let effective = inner.effective_labels(store);
        let info = inner
            .view
            .update_store(store, |info| {
                info.labels = effective;
                info.clone()
            })
            .expect("checked");
        Ok((overrides, info))
    }

    /// SRE-set labels known from the catalog.
    pub fn restore_label_overrides(&self, store: StoreId, overrides: BTreeMap<String, String>) {
        self.inner
            .write()
            .expect("cluster lock")
            .overrides
            .insert(store, overrides);
    }

    /// Puts back a state an operator's change replaced, when persisting the change failed.
    pub fn revert_state(&self, store: StoreId, state: StoreState) {
        let mut inner = self.inner.write().expect("cluster lock");
        inner.view.update_store(store, |info| info.state = state);
    }

    /// SRE-set states: Draining, Tombstone (only for a store that holds nothing), or Up.
    pub fn set_state(&self, store: StoreId, state: StoreState) -> Result<()> {
        let mut inner = self.inner.write().expect("cluster lock");
        let holds = inner.view.replica_count(store);
        if !inner.view.stores.contains_key(&store) {
            return Err(McError::not_found("store", store));
        }
        match state {
            StoreState::Tombstone if holds > 0 => Err(McError::FailedPrecondition {
                subject: format!("store/{store}"),
                state: format!("holding {holds} replicas"),
                required: "no replicas (drain it first)".into(),
            }),
            StoreState::Draining | StoreState::Tombstone | StoreState::Up => {
                inner.view.update_store(store, |info| info.state = state);
                Ok(())
            }
            other => Err(McError::invalid(
                "state",
                format!("{other:?} is set by liveness, not by an operator"),
            )),
        }
    }
}

#[cfg(test)]
#[path = "live_evidence_tests.rs"]
mod evidence_tests;

#[cfg(test)]
mod tests;
