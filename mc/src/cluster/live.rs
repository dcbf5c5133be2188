//! The live cluster view, fed by store and RG heartbeats, and store liveness: a store that
//! stops reporting is Disconnected after `disconnected_after_ms` (nothing new is placed on it)
//! and Down after `down_after_ms` (its replicas get repaired). Draining and Tombstone are set
//! by SREs and kept. Pure logic: the caller passes the time, so tests and the simulator control
//! it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;

use proto::v1::{RegisterStoreRequest, RgHeartbeat, StoreHeartbeatRequest, StoreStats};

use crate::cluster::evidence::{
    self, Disagreement, EvidenceConfig, EvidenceEvent, Ledger, StoreRecord,
};
use crate::cluster::rgs::RgRecord;
use crate::cluster::view::{ClusterView, RegionInfo, Role, ShapeChanges, StoreInfo, StoreState};
use crate::error::{McError, Result};
use crate::ids::RegionId;
use crate::ids::{RgId, StoreId};

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

    /// Registers a store (assigning an id when it has none) and returns its id.
    pub fn register(&self, req: &RegisterStoreRequest, now: u64) -> Result<StoreId> {
        crate::cluster::stores::check_address(&req.address)?;
        crate::cluster::stores::check_labels(&req.labels, req.labels.len())?;
        if req.capacity_bytes > self.evidence.max_store_capacity_bytes {
            return Err(McError::invalid(
                "capacity_bytes",
                format!(
                    "{} is above the largest store this MC takes ({} bytes)",
                    req.capacity_bytes, self.evidence.max_store_capacity_bytes
                ),
            ));
        }
        let mut inner = self.inner.write().expect("cluster lock");
        if let Some(other) = inner
            .view
            .stores
            .values()
            .find(|s| s.address == req.address && s.id != req.store_id && req.store_id != 0)
        {
            return Err(McError::FailedPrecondition {
                subject: format!("address {}", req.address),
                state: format!("registered by store {}", other.id),
                required: "one store per address".into(),
            });
        }
        let id = match req.store_id {
            0 => match inner
                .view
                .stores
                .values()
                .find(|s| s.address == req.address)
            {
                Some(existing) => existing.id,
                None => {
                    let id = inner.next_store_id;
                    inner.next_store_id += 1;
                    id
                }
            },
            id => id,
        };
        inner.next_store_id = inner.next_store_id.max(id + 1);
        let state = match inner.view.stores.get(&id).map(|s| s.state) {
            Some(StoreState::Tombstone) => {
                return Err(McError::FailedPrecondition {
                    subject: format!("store/{id}"),
                    state: "tombstone".into(),
                    required: "a new store id".into(),
                });
            }
            Some(StoreState::Draining) => StoreState::Draining,
            _ => StoreState::Up,
        };
        let reported: BTreeMap<String, String> = req
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        inner.reported.insert(id, reported);
        let labels = inner.effective_labels(id);
        inner.view.put_store(StoreInfo {
            id,
            address: req.address.clone(),
            state,
            labels,
            capacity_bytes: req.capacity_bytes,
        });
        inner.last_seen.insert(id, now);
        Ok(id)
    }

    pub fn store_heartbeat(&self, req: &StoreHeartbeatRequest, now: u64) -> Result<()> {
        self.heartbeats[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut inner = self.inner.write().expect("cluster lock");
        let id = req.store_id;
        match inner.view.stores.get(&id).map(|s| s.state) {
            None => return Err(McError::not_found("store", id)),
            Some(StoreState::Tombstone) => return Err(tombstoned(id)),
            Some(_) => {}
        }
        // Numbers are bounded before anything adds them: a report past them is refused
        // whole, counted against the store, and nothing of it is stored.
        if let Some(stats) = &req.stats
            && let Err(what) = check_stats(stats, self.evidence.max_store_capacity_bytes)
        {
            inner.ledger.lie(&self.evidence, id, &what, now);
            self.judge(&mut inner, id);
            let Disagreement::Number { field, .. } = &what else {
                unreachable!("check_stats finds numbers")
            };
            return Err(McError::invalid(*field, what.to_string()));
        }
        // A store the ledger suspects stays unhealthy whatever it says of itself.
        let sick = if req.unhealthy.is_empty() {
            inner.ledger.suspect(id)
        } else {
            Some(crate::cluster::stores::printable(&req.unhealthy, 512))
        };
        let was_sick = inner.unhealthy.contains_key(&id);
        // Back from the restart its maintenance window was for: the window ends. The report's
        // process started (now − uptime) later than the one the window began with, by more
        // than whole-second uptimes and transit can blur.
        if let Some(stats) = &req.stats
            && let Some(known) = inner.maintenance_started.get_mut(&id)
        {
            let this = now.saturating_sub(stats.uptime_secs.saturating_mul(1_000));
            match *known {
                Some(started) if this > started.saturating_add(2_000) => {
                    inner.view.maintenance.remove(&id);
                    inner.maintenance_started.remove(&id);
                    inner.maintenance_ended.push(id);
                }
                Some(_) => {}
                None => *known = Some(this),
            }
        }
        let capacity = req
            .stats
            .as_ref()
            .map(|s| s.capacity_bytes)
            .filter(|c| *c > 0);
        inner
            .view
            .update_store(id, |store| {
                match (&sick, store.state) {
                    // A store that reports but cannot write is as good as Down for placement
                    // and repair; an operator's Draining or Tombstone stays.
                    (Some(_), StoreState::Up | StoreState::Disconnected) => {
                        store.state = StoreState::Down
                    }
                    (None, StoreState::Disconnected | StoreState::Down) => {
                        store.state = StoreState::Up
                    }
                    _ => {}
                }
                if let Some(c) = capacity {
                    store.capacity_bytes = c;
                }
            })
            .ok_or_else(|| McError::not_found("store", id))?;
        inner.last_seen.insert(id, now);
        if let Some(stats) = &req.stats {
            let mut stats = *stats;
            if let Some(field) = past_capacity(&stats) {
                // A store past its configured quota is full, not lying: kept as full.
                tracing::debug!(store = id, field, "store reports more than its capacity");
                stats.used_bytes = stats.used_bytes.min(stats.capacity_bytes);
                stats.available_bytes = stats
                    .available_bytes
                    .min(stats.capacity_bytes - stats.used_bytes);
            }
            inner.stats.insert(id, stats);
        }
        match sick {
            Some(why) => {
                if !was_sick {
                    inner.health_events.push((id, Some(why.clone())));
                }
                inner.unhealthy.insert(id, why);
            }
            None if was_sick => {
                inner.unhealthy.remove(&id);
                inner.health_events.push((id, None));
            }
            None => {}
        }
        // Replicas of RGs that no longer list this store, or that were merged away or deleted
        // while the store was behind: kept with when first reported.
        let view = &mut inner.view;
        let strays: BTreeSet<RgId> = req
            .hosted_rg_ids
            .iter()
            .copied()
            .filter(|rg| match view.rgs.get(rg) {
                Some(info) => !info.members.contains_key(&id),
                None => view.retired.contains(rg),
            })
            .collect();
        view.strays
            .retain(|(s, rg), _| *s != id || strays.contains(rg));
        for rg in strays {
            view.strays.entry((id, rg)).or_insert(now);
        }
        Ok(())
    }

    /// Takes in one RG heartbeat from its leader, as evidence (see `cluster::evidence`): only
    /// for an RG the catalog knows, from a voter the catalog lists, and only what the store
    /// alone can know — who leads, the term, the applied index, and the sizes, load and split
    /// keys of regions the catalog places in this RG. Members, regions and ranges stay as the
    /// jobs made them. A report of an older (term, conf_ver) than one already taken is stale
    /// and ignored, so a deposed leader cannot roll the view back. Returns whether the report
    /// was taken.
    pub fn rg_heartbeat(&self, from: StoreId, hb: &RgHeartbeat, now: u64) -> Result<bool> {
        self.heartbeats[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.heartbeats[2].fetch_add(
            hb.regions.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut inner = self.inner.write().expect("cluster lock");
        match inner.view.stores.get(&from).map(|s| s.state) {
            None => return Err(McError::not_found("store", from)),
            Some(StoreState::Tombstone) => return Err(tombstoned(from)),
            Some(_) => {}
        }
        inner.last_seen.insert(from, now);
        let config = &self.evidence;
        let rg = hb.rg_id;
        // A store that keeps lying is not heard at all until it is trusted again.
        if inner.ledger.suspect(from).is_some() {
            return Ok(false);
        }
        // Only a leader reports its RG. A stale replica that still believes it leads (a store
        // back from the dead, a replica the MC removed) is ignored, not refused: its store's
        // live RGs report on the same stream.
        if hb.leader_store_id != from {
            return Ok(false);
        }
        let Some(known) = inner.view.rgs.get(&rg) else {
            if !inner.view.retired.contains(&rg) {
                let what = Disagreement::UnknownRg { rg };
                inner.ledger.disagree(config, from, rg, &what, now);
            }
            return Ok(false);
        };
        match known.members.get(&from) {
            None => return Ok(false),
            Some(Role::Learner) => {
                let what = Disagreement::LearnerLeads { rg };
                inner.ledger.disagree(config, from, rg, &what, now);
                return Ok(false);
            }
            Some(Role::Voter) => {}
        }
        let (known_term, known_conf) = inner.rg_version(rg).unwrap_or((known.term, known.conf_ver));
        if (hb.term, hb.conf_ver) < (known_term, known_conf) {
            // Stale, or the claim taken was a lie: the members settle it (`settle_leader`).
            // First come, first asked: a store cannot keep some RGs in conflict to starve
            // the rest.
            if known.leader != Some(from)
                && inner.conflicted.len() < MAX_LEADER_CONFLICTS
                && inner.conflicted.insert(rg)
            {
                inner.leader_conflicts.push_back(rg);
            }
            return Ok(false);
        }
        // A report from before one already taken at the same term and configuration (sent
        // by the same leader, delivered late): the applied index only grows within a term.
        if (hb.term, hb.conf_ver) == (known_term, known_conf)
            && hb.applied_index < inner.rg_applied(rg, from)
        {
            return Ok(false);
        }
        if known.leader != Some(from)
            && inner
                .discredited
                .get(&(from, rg))
                .is_some_and(|until| now < *until)
        {
            return Ok(false);
        }
        let jump = if hb.term > known_term.saturating_add(evidence::MAX_TERM_STEP) {
            Some(Disagreement::TermJump {
                rg,
                known: known_term,
                reported: hb.term,
            })
        } else if hb.conf_ver > known_conf.saturating_add(evidence::MAX_CONF_VER_STEP) {
            Some(Disagreement::ConfVerJump {
                rg,
                known: known_conf,
                reported: hb.conf_ver,
            })
        } else {
            None
        };
        if let Some(what) = jump {
            inner.ledger.lie(config, from, &what, now);
            self.judge(&mut inner, from);
            return Ok(false);
        }
        // From here on the report is taken, as far as it agrees.
        let mut disagreements = Vec::new();
        let reported: BTreeSet<StoreId> = hb.members.iter().map(|m| m.store_id).collect();
        let members: BTreeSet<StoreId> = known.members.keys().copied().collect();
        // One conf change in flight differs by one store; more than that no job made.
        if reported.symmetric_difference(&members).count() > 1 {
            disagreements.push(Disagreement::Members {
                rg,
                reported: reported.iter().copied().collect(),
                known: members.iter().copied().collect(),
            });
        }
        let elapsed_ms = inner
            .hear_rg(rg, now)
            .map(|last| now.saturating_sub(last))
            .filter(|ms| *ms > 0)
            .unwrap_or(1_000);
        let mut seen = 0;
        let mut reported = std::collections::HashSet::new();
        for r in &hb.regions {
            // A region listed twice is counted once (and cannot hide a missing one).
            if !reported.insert(r.region_id) {
                continue;
            }
            let Some(region) = inner.view.region(r.region_id) else {
                disagreements.push(Disagreement::UnknownRegion {
                    rg,
                    region: r.region_id,
                });
                continue;
            };
            if region.rg != rg {
                disagreements.push(Disagreement::RegionOfAnotherRg {
                    rg,
                    region: r.region_id,
                    owner: region.rg,
                });
                continue;
            }
            seen += 1;
            let range = r.range.as_ref();
            let same_range =
                range.is_some_and(|k| k.start == *region.start && k.end == *region.end);
            if range.is_some() && !same_range {
                disagreements.push(Disagreement::Range {
                    rg,
                    region: r.region_id,
                });
            }
            // A region's version moves with the jobs that split, merge or move it; a job whose
            // step outcome was lost (settled by a probe) leaves the view a version behind, and
            // every later region job on it would fail on the epoch. The leader's report of the
            // same range a few versions on is taken (only the RG's own regions, bounded).
            let version = r.epoch.map_or(0, |e| e.version);
            let newer_version = (same_range
                && version > region.version
                && version <= region.version.saturating_add(MAX_VERSION_STEP))
            .then_some(version);
            let mut numbers_ok = true;
            for (field, value, max) in [
                (
                    "regions.size_bytes",
                    r.size_bytes,
                    evidence::MAX_REGION_BYTES,
                ),
                ("regions.keys", r.keys, evidence::MAX_REGION_KEYS),
            ] {
                if value > max {
                    numbers_ok = false;
                    disagreements.push(Disagreement::Number { field, value, max });
                }
            }
            // A split key is a key of the region, past its start, as the catalog holds it.
            let split_key = if r.split_key.len() <= MAX_SPLIT_KEY_BYTES
                && region.contains(&r.split_key)
                && r.split_key.as_slice() != &*region.start
            {
                r.split_key.clone()
            } else {
                Vec::new()
            };
            // Counters come from the network: saturate, bound, never overflow.
            let rate =
                |bytes: u64| (bytes.saturating_mul(1_000) / elapsed_ms).min(evidence::MAX_RATE);
            let load = crate::cluster::view::RegionLoad {
                read_bytes_per_sec: rate(r.read_bytes),
                write_bytes_per_sec: rate(r.write_bytes),
            };
            let (size_bytes, keys) = (r.size_bytes, r.keys);
            inner.view.set_load(r.region_id, load);
            inner.view.set_split_key(r.region_id, split_key);
            if numbers_ok || newer_version.is_some() {
                inner.view.update_region(r.region_id, |info| {
                    if numbers_ok {
                        info.size_bytes = size_bytes;
                        info.keys = keys;
                    }
                    if let Some(v) = newer_version {
                        info.version = v;
                    }
                });
            }
        }
        let known_regions = inner.view.rgs.get(&rg).map_or(0, |r| r.regions.len());
        if seen < known_regions {
            disagreements.push(Disagreement::MissingRegions {
                rg,
                count: known_regions - seen,
            });
        }
        if disagreements.is_empty() {
            inner.ledger.agree(from, rg);
        }
        // One of each kind per report: a report listing the same lie a thousand times is one.
        let mut kinds = BTreeSet::new();
        for what in disagreements.iter().filter(|w| kinds.insert(w.kind())) {
            inner.ledger.disagree(config, from, rg, what, now);
        }
        self.judge(&mut inner, from);
        let version = (hb.term, hb.conf_ver.max(known_conf));
        inner.set_rg_version(rg, version);
        let seen = inner.rg_seen.entry(rg);
        (seen.applied, seen.applied_by) = (hb.applied_index, from);
        // Whose word the view's leader is now, for the members to confirm if it is disputed.
        let previous = inner.view.rg(rg).and_then(|r| r.leader);
        // Kept only for a leader that replaced another: an RG nobody was known to lead has no
        // claim to contradict (and a map entry per RG at a new leader's start would cost 10 B
        // per cached region).
        if previous.is_some_and(|p| p != from) {
            inner.claims.insert(rg, (from, hb.term, now));
        } else if let Some(claim) = inner.claims.get_mut(&rg) {
            claim.1 = hb.term;
        }
        let applied = hb.applied_index;
        inner.view.update_rg(rg, |info| {
            info.leader = Some(from);
            info.heard = true;
            info.term = version.0;
            info.conf_ver = version.1;
            info.applied_index = info.applied_index.max(applied);
        });
        let Inner { view, routes, .. } = &mut *inner;
        routes.sync(view, [rg]);
        Ok(true)
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

    /// RGs with conflicting leadership claims, at most `max`, oldest first: for the caller to
    /// ask the members who leads (`settle_leader`).
    pub fn take_leader_conflicts(&self, max: usize) -> Vec<LeaderConflict> {
        let mut inner = self.inner.write().expect("cluster lock");
        let mut out = Vec::new();
        while out.len() < max {
            let Some(rg) = inner.leader_conflicts.pop_front() else {
                break;
            };
            inner.conflicted.remove(&rg);
            if let Some(info) = inner.view.rg(rg) {
                // Voters only: learners take no part in elections and know least.
                out.push(LeaderConflict {
                    rg,
                    members: info.voters().collect(),
                    claim: (info.leader, info.term),
                });
            }
        }
        out
    }

    /// What the RG's members said leads it (`leader` at `term`), asked while the view held
    /// `conflict.claim`. A claim changed since is left alone (the answers may predate it).
    /// When the view took a claim at a higher term from a store's heartbeat, that claim was a
    /// lie: it counts against the store, whose claims to lead this RG are not taken for
    /// `grace_ms`. The view follows the members.
    pub fn settle_leader(&self, conflict: &LeaderConflict, leader: StoreId, term: u64, now: u64) {
        let rg = conflict.rg;
        let mut inner = self.inner.write().expect("cluster lock");
        let Some(known) = inner.view.rgs.get(&rg) else {
            return;
        };
        if (known.leader, known.term) != conflict.claim
            || known.leader == Some(leader)
            || known.members.get(&leader) != Some(&Role::Voter)
            || known.term > term && !inner.claims.contains_key(&rg)
        {
            return;
        }
        let (claimant, claimed, conf_ver) = (known.leader, known.term, known.conf_ver);
        if let Some(liar) = claimant
            && claimed > term
            && inner
                .claims
                .get(&rg)
                .is_some_and(|(s, t, _)| *s == liar && *t == claimed)
        {
            let what = Disagreement::LeaderClaim {
                rg,
                claimed,
                leader,
                term,
            };
            inner.ledger.lie(&self.evidence, liar, &what, now);
            if inner.discredited.len() >= MAX_DISCREDITED {
                inner.discredited.retain(|_, until| *until > now);
                let stale = self.evidence.grace_ms.saturating_mul(4);
                inner
                    .claims
                    .retain(|_, (_, _, at)| now.saturating_sub(*at) < stale);
            }
            if inner.discredited.len() < MAX_DISCREDITED {
                let until = now.saturating_add(self.evidence.grace_ms);
                inner.discredited.insert((liar, rg), until);
            }
            self.judge(&mut inner, liar);
        }
        inner.claims.remove(&rg);
        let conf_ver = inner.rg_version(rg).map_or(conf_ver, |v| v.1);
        inner.set_rg_version(rg, (term, conf_ver));
        inner.view.update_rg(rg, |info| {
            info.leader = Some(leader);
            info.term = term;
        });
        let Inner { view, routes, .. } = &mut *inner;
        routes.sync(view, [rg]);
    }

    /// Treats a store the ledger suspects as unhealthy: Down for placement and repair (an
    /// operator's Draining or Tombstone stays), with an event for the alerts.
    fn judge(&self, inner: &mut Inner, store: StoreId) {
        let Some(why) = inner.ledger.suspect(store) else {
            return;
        };
        if inner.unhealthy.contains_key(&store) {
            return;
        }
        inner.view.update_store(store, |s| {
            if matches!(s.state, StoreState::Up | StoreState::Disconnected) {
                s.state = StoreState::Down;
            }
        });
        inner.health_events.push((store, Some(why.clone())));
        inner.unhealthy.insert(store, why);
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

impl crate::cluster::view::ViewSource for LiveCluster {
    fn snapshot(&self) -> ClusterView {
        self.view()
    }

    fn rg_members(&self, rg: RgId) -> Vec<StoreId> {
        let inner = self.inner.read().expect("cluster lock");
        inner
            .view
            .rg(rg)
            .map(|r| r.members.keys().copied().collect())
            .unwrap_or_default()
    }

    fn store_address(&self, store: StoreId) -> Option<String> {
        let inner = self.inner.read().expect("cluster lock");
        inner.view.store(store).map(|s| s.address.clone())
    }

    fn leader_hint(&self, rg: RgId) -> (Option<StoreId>, Vec<StoreId>) {
        crate::cluster::view::leader_hint(&self.inner.read().expect("cluster lock").view, rg)
    }

    fn rg_bytes(&self, rg: RgId) -> u64 {
        self.inner.read().expect("cluster lock").view.rg_bytes(rg)
    }

    fn rg_regions(&self, rg: RgId) -> Vec<crate::ids::RegionId> {
        let inner = self.inner.read().expect("cluster lock");
        inner
            .view
            .rg(rg)
            .map(|r| r.regions.iter().copied().collect())
            .unwrap_or_default()
    }

    fn job_succeeded(&self, effect: &crate::jobs::effect::Effect) -> ShapeChanges {
        use crate::jobs::effect::Effect;
        let mut inner = self.inner.write().expect("cluster lock");
        // Which RG records change; a region's RG is looked up before the effect moves it.
        let region_rg = |r: &RegionId| inner.view.region(*r).map(|x| x.rg);
        let touched: Vec<RgId> = match effect {
            Effect::RgCreated { rg, .. }
            | Effect::RgOffline { rg, .. }
            | Effect::RegionCreated { rg, .. }
            | Effect::RegionsCreated { rg, .. } => vec![*rg],
            Effect::RgSplit { rg, new_rg, .. } => vec![*rg, *new_rg],
            Effect::ReplicaAdded { rg, .. }
            | Effect::ReplicaRemoved { rg, .. }
            | Effect::ReplicaMoved { rg, .. }
            | Effect::LeaderMoved { rg, .. } => vec![*rg],
            Effect::RgsMerged { target, .. } => vec![*target],
            Effect::RegionSplit { region, .. }
            | Effect::RegionsMerged { left: region, .. }
            | Effect::RegionDeleted { region } => region_rg(region).into_iter().collect(),
            _ => vec![],
        };
        inner.view.apply_effect(effect);
        // Membership the job made. Its steps' outcomes normally brought it in already; a step
        // whose outcome was learned by a probe did not, and no heartbeat changes members.
        let voter = |members: &mut crate::cluster::members::Members, store: StoreId| {
            if members.get(&store) != Some(&Role::Voter) {
                members.insert(store, Role::Voter);
            }
        };
        match effect {
            Effect::ReplicaAdded {
                rg,
                store,
                voter: true,
            } => {
                inner
                    .view
                    .update_rg(*rg, |info| voter(&mut info.members, *store));
            }
            Effect::ReplicaAdded { rg, store, .. } => {
                inner.view.update_rg(*rg, |info| {
                    if !info.members.contains_key(store) {
                        info.members.insert(*store, Role::Learner);
                    }
                });
            }
            Effect::ReplicaRemoved { rg, store } => {
                inner.view.update_rg(*rg, |info| {
                    info.members.remove(store);
                    if info.leader == Some(*store) {
                        info.leader = None;
                    }
                });
            }
            Effect::ReplicaMoved { rg, from, to } => {
                inner.view.update_rg(*rg, |info| {
                    info.members.remove(from);
                    voter(&mut info.members, *to);
                    if info.leader == Some(*from) {
                        info.leader = None;
                    }
                });
            }
            Effect::LeaderMoved { rg, to } => {
                inner.view.update_rg(*rg, |info| {
                    if info.members.get(to) == Some(&Role::Voter) {
                        info.leader = Some(*to);
                    }
                });
            }
            _ => {}
        }
        if let Effect::RgCreated { rg, .. } = effect
            && let Some((leader, term, conf_ver, applied)) = inner.new_rg_leaders.remove(rg)
            // A heartbeat that brought the RG in first may know a newer leader.
            && inner.rg_version(*rg).is_none_or(|v| v <= (term, conf_ver))
        {
            inner.set_rg_version(*rg, (term, conf_ver));
            inner.view.update_rg(*rg, |info| {
                info.leader = Some(leader);
                info.term = term;
                info.conf_ver = conf_ver;
                info.applied_index = applied;
            });
        }
        let gone = match effect {
            Effect::RgDeleted { rg } => Some(*rg),
            Effect::RgsMerged { source, .. } => Some(*source),
            _ => None,
        };
        {
            let Inner { view, routes, .. } = &mut *inner;
            routes.sync(view, touched.iter().copied().chain(gone));
        }
        // Written by the engine with the job's records: what the catalog holds is no longer
        // known here until a heartbeat writes it again.
        for rg in touched.iter().copied().chain(gone) {
            *inner.persisted.entry(rg) = 0;
            inner.persisted.tidy(rg);
        }
        ShapeChanges {
            put: touched
                .into_iter()
                .filter_map(|rg| RgRecord::of(&inner.view, rg))
                .collect(),
            deleted: match effect {
                Effect::RgDeleted { rg } => vec![*rg],
                Effect::RgsMerged { source, .. } => vec![*source],
                _ => vec![],
            },
        }
    }

    /// A heartbeat's write of a newer shape may have committed before this one: forget what
    /// the catalog holds of these RGs, so the next heartbeat writes the view's shape again.
    fn shapes_committed(&self, shapes: &ShapeChanges) {
        let mut inner = self.inner.write().expect("cluster lock");
        for rg in shapes
            .put
            .iter()
            .map(|r| r.rg.id)
            .chain(shapes.deleted.iter().copied())
        {
            *inner.persisted.entry(rg) = 0;
            inner.persisted.tidy(rg);
        }
    }

    fn step_succeeded(
        &self,
        rg: RgId,
        step: &crate::jobs::plan::AtomicStep,
        ok: &proto::v1::StepOk,
        from_leader: bool,
    ) -> ShapeChanges {
        let mut inner = self.inner.write().expect("cluster lock");
        let mut touched = BTreeSet::new();
        if let crate::jobs::plan::AtomicStep::Create {
            members,
            campaign: true,
            ..
        } = step
            && from_leader
            && members.contains(&ok.leader_store_id)
            && !inner.view.rgs.contains_key(&rg)
        {
            // A new RG's designated leader: the job's effect brings the RG in, led by it.
            inner.new_rg_leaders.insert(
                rg,
                (ok.leader_store_id, ok.term, ok.conf_ver, ok.applied_index),
            );
        }
        let accepted = crate::cluster::outcome::accept(&inner.view, rg, step, ok, from_leader);
        if accepted.members.is_some() || accepted.leader.is_some() {
            let known = inner
                .view
                .rg(rg)
                .map(|r| (r.term, r.conf_ver))
                .unwrap_or_default();
            let (term, conf_ver) = inner.rg_version(rg).unwrap_or(known);
            let term = accepted.leader.map_or(term, |(_, t)| t.max(term));
            let conf_ver = accepted
                .members
                .as_ref()
                .map_or(conf_ver, |(_, c)| conf_ver.max(*c));
            inner.set_rg_version(rg, (term, conf_ver));
            inner.view.update_rg(rg, |info| {
                if let Some((members, conf_ver)) = &accepted.members {
                    info.members = members.clone();
                    info.conf_ver = info.conf_ver.max(*conf_ver);
                }
                if let Some((leader, term)) = accepted.leader {
                    info.leader = Some(leader);
                    info.term = term;
                }
                info.applied_index = info.applied_index.max(accepted.applied_index);
                info.heard = true;
            });
            touched.insert(rg);
        }
        for region in accepted.regions {
            let previous = inner
                .view
                .regions
                .get(&region.id)
                .map(|x| (x.rg, x.size_bytes, x.keys));
            let owner = region.rg;
            if let Some((old, _, _)) = previous
                && old != owner
                && inner
                    .view
                    .update_rg(old, |info| info.regions.remove(&region.id))
                    .is_some()
            {
                touched.insert(old);
            }
            let id = region.id;
            inner.view.put_region(RegionInfo {
                // Sizes come with heartbeats; a step's outcome does not measure them.
                size_bytes: previous.map_or(region.size_bytes, |(_, s, _)| s),
                keys: previous.map_or(region.keys, |(_, _, k)| k),
                ..region
            });
            inner.view.update_rg(owner, |info| info.regions.insert(id));
            touched.insert(owner);
        }
        {
            let Inner { view, routes, .. } = &mut *inner;
            routes.sync(view, touched.iter().copied());
        }
        for rg in &touched {
            *inner.persisted.entry(*rg) = 0;
            inner.persisted.tidy(*rg);
        }
        ShapeChanges {
            put: touched
                .into_iter()
                .filter_map(|rg| RgRecord::of(&inner.view, rg))
                .collect(),
            deleted: vec![],
        }
    }
}

fn tombstoned(store: StoreId) -> McError {
    McError::FailedPrecondition {
        subject: format!("store/{store}"),
        state: "tombstone".into(),
        required: "a store that is part of the cluster (a tombstoned store's reports are refused)"
            .into(),
    }
}

/// The first number of a store's report past any disk or network: capacity above the largest
/// store this MC takes, used or available bytes above that too, rates past any disk. No honest
/// store sends one.
fn check_stats(stats: &StoreStats, max_capacity: u64) -> std::result::Result<(), Disagreement> {
    let checks = [
        ("stats.capacity_bytes", stats.capacity_bytes, max_capacity),
        ("stats.used_bytes", stats.used_bytes, max_capacity),
        ("stats.available_bytes", stats.available_bytes, max_capacity),
        (
            "stats.read_bytes_per_sec",
            stats.read_bytes_per_sec,
            evidence::MAX_RATE,
        ),
        (
            "stats.write_bytes_per_sec",
            stats.write_bytes_per_sec,
            evidence::MAX_RATE,
        ),
    ];
    match checks.into_iter().find(|(_, value, max)| value > max) {
        Some((field, value, max)) => Err(Disagreement::Number { field, value, max }),
        None => Ok(()),
    }
}

/// Used or available bytes above the store's capacity: a store filled past its configured
/// quota. Taken as full (used = capacity, nothing available), not held against the store.
fn past_capacity(stats: &StoreStats) -> Option<&'static str> {
    let capacity = stats.capacity_bytes;
    if capacity == 0 {
        return None;
    }
    if stats.used_bytes > capacity {
        Some("stats.used_bytes")
    } else if stats.available_bytes > capacity {
        Some("stats.available_bytes")
    } else {
        None
    }
}

#[cfg(test)]
#[path = "live_evidence_tests.rs"]
mod evidence_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RgInfo;
    use proto::v1::{KeyRange, RegionEpoch, RegionStats, Replica, ReplicaRole};

    fn reg(id: u64, addr: &str) -> RegisterStoreRequest {
        RegisterStoreRequest {
            store_id: id,
            address: addr.into(),
            labels: [("zone".to_string(), "z1".to_string())].into(),
            capacity_bytes: 1,
            version: "t".into(),
        }
    }

    fn live() -> LiveCluster {
        LiveCluster::new(LivenessConfig {
            disconnected_after_ms: 100,
            down_after_ms: 1_000,
        })
    }

    #[test]
    fn registration_assigns_ids_and_keeps_them_for_an_address() {
        let c = live();
        assert_eq!(c.register(&reg(0, "127.0.0.1:7001"), 0).unwrap(), 1);
        assert_eq!(c.register(&reg(0, "127.0.0.1:7002"), 0).unwrap(), 2);
        assert_eq!(
            c.register(&reg(0, "127.0.0.1:7001"), 5).unwrap(),
            1,
            "a restart without its id gets it back"
        );
        assert_eq!(c.register(&reg(9, "127.0.0.1:7009"), 5).unwrap(), 9);
        assert_eq!(c.register(&reg(0, "127.0.0.1:7010"), 5).unwrap(), 10);
        let err = c.register(&reg(3, "127.0.0.1:7002"), 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "address 127.0.0.1:7002 is registered by store 2; needs one store per address"
        );
        assert_eq!(
            c.register(&reg(0, "nowhere"), 5).unwrap_err().to_string(),
            "invalid argument `address`: `nowhere` is not HOST:PORT (printable, at most 256 bytes)"
        );
        assert_eq!(
            c.view()
                .store(1)
                .unwrap()
                .labels
                .get("zone")
                .map(String::as_str),
            Some("z1")
        );
    }

    #[test]
    fn silent_stores_go_disconnected_then_down_and_come_back_up() {
        let c = live();
        c.register(&reg(1, "127.0.0.1:7001"), 0).unwrap();
        c.register(&reg(2, "127.0.0.1:7002"), 0).unwrap();
        c.set_state(2, StoreState::Draining).unwrap();
        assert!(c.tick(99).is_empty());
        assert_eq!(c.tick(100), vec![(1, StoreState::Disconnected)]);
        assert_eq!(
            c.tick(1_000),
            vec![(1, StoreState::Down), (2, StoreState::Down)],
            "a silent draining store is reported too"
        );
        assert_eq!(
            c.view().store(2).unwrap().state,
            StoreState::Draining,
            "an SRE's state is kept"
        );
        c.store_heartbeat(
            &StoreHeartbeatRequest {
                store_id: 1,
                stats: None,
                sent_unix_ms: 0,
                ..Default::default()
            },
            1_100,
        )
        .unwrap();
        assert_eq!(c.view().store(1).unwrap().state, StoreState::Up);
        let unknown = c.store_heartbeat(
            &StoreHeartbeatRequest {
                store_id: 7,
                stats: None,
                sent_unix_ms: 0,
                ..Default::default()
            },
            1_100,
        );
        assert_eq!(unknown.unwrap_err().to_string(), "store 7 not found");
    }

    /// The shape the jobs made of RG 5: members 1-3, regions 10 [10, 11) and 11 [11, 12).
    fn made(c: &LiveCluster, members: &[u64], regions: &[u64]) {
        c.restore_rg(crate::cluster::rgs::RgRecord {
            schema: crate::cluster::rgs::SCHEMA_VERSION,
            rg: RgInfo {
                id: 5,
                members: members.iter().map(|s| (*s, Role::Voter)).collect(),
                regions: regions.iter().copied().collect(),
                ..Default::default()
            },
            regions: regions
                .iter()
                .map(|r| RegionInfo {
                    id: *r,
                    rg: 5,
                    object: 1,
                    start: vec![*r as u8].into(),
                    end: vec![*r as u8 + 1].into(),
                    version: 2,
                    size_bytes: 0,
                    keys: 0,
                })
                .collect(),
        });
    }

    #[test]
    fn rg_heartbeats_fill_in_the_view_and_stale_ones_are_ignored() {
        let c = live();
        for id in 1..=3 {
            c.register(&reg(id, &format!("127.0.0.1:700{id}")), 0)
                .unwrap();
        }
        made(&c, &[1, 2, 3], &[10]);
        let hb = |term, leader, regions: &[u64]| RgHeartbeat {
            rg_id: 5,
            leader_store_id: leader,
            term,
            conf_ver: 2,
            members: (1..=3)
                .map(|s| Replica {
                    store_id: s,
                    role: ReplicaRole::Voter as i32,
                    offline: false,
                })
                .collect(),
            regions: regions
                .iter()
                .map(|r| RegionStats {
                    region_id: *r,
                    object_id: 1,
                    range: Some(KeyRange {
                        start: vec![*r as u8],
                        end: vec![*r as u8 + 1],
                    }),
                    epoch: Some(RegionEpoch {
                        version: 2,
                        conf_ver: 2,
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert!(c.rg_heartbeat(1, &hb(3, 1, &[10]), 5).unwrap());
        assert!(c.rg_heartbeat(2, &hb(4, 2, &[10]), 6).unwrap());
        assert!(
            !c.rg_heartbeat(1, &hb(3, 1, &[10]), 7).unwrap(),
            "a deposed leader's heartbeat is stale"
        );
        let view = c.view();
        let rg = view.rg(5).unwrap();
        assert_eq!((rg.leader, rg.members.len(), rg.heard), (Some(2), 3, true));
        assert_eq!(rg.regions.iter().copied().collect::<Vec<_>>(), vec![10]);
        assert_eq!(view.region(10).unwrap().version, 2);
        // A store cannot report an RG it does not lead, nor one it is no member of: a maximal
        // term from it would freeze the view of the RG.
        c.register(&reg(4, "127.0.0.1:7004"), 8).unwrap();
        let mut forged = hb(u64::MAX, 4, &[10]);
        forged.members.push(Replica {
            store_id: 4,
            role: ReplicaRole::Voter as i32,
            offline: false,
        });
        assert!(
            !c.rg_heartbeat(4, &forged, 9).unwrap(),
            "no member: ignored"
        );
        assert!(
            !c.rg_heartbeat(1, &hb(u64::MAX, 2, &[10]), 9).unwrap(),
            "not the leader: ignored"
        );
        assert_eq!(c.view().rg(5).unwrap().leader, Some(2), "nothing changed");
        assert!(
            c.rg_heartbeat(2, &hb(5, 2, &[10]), 10).unwrap(),
            "the real leader is still heard"
        );
        // A region's object is the MC's: a report naming another keeps the known one (a
        // leader flipping it would move regions between affinity groups at will).
        let mut renamed = hb(5, 2, &[10]);
        renamed.regions[0].object_id = 99;
        assert!(c.rg_heartbeat(2, &renamed, 10).unwrap());
        assert_eq!(c.view().region(10).unwrap().object, 1);
        // A draining store that goes silent is reported once, and stays Draining.
        c.set_state(3, StoreState::Draining).unwrap();
        let late = 10 + c.config.down_after_ms;
        let reported = c.tick(late);
        assert!(reported.contains(&(3, StoreState::Down)), "{reported:?}");
        assert!(!c.tick(late + 1).contains(&(3, StoreState::Down)), "once");
        assert_eq!(c.view().store(3).unwrap().state, StoreState::Draining);
        assert!(c.is_silent(3));
        assert!(c.rg_heartbeat(3, &hb(5, 3, &[10]), late + 2).unwrap());
        c.tick(late + 3);
        assert!(!c.is_silent(3), "heard from again");
        let err = c.set_state(1, StoreState::Tombstone).unwrap_err();
        assert_eq!(
            err.to_string(),
            "store/1 is holding 1 replicas; needs no replicas (drain it first)"
        );
    }

    #[test]
    fn region_traffic_becomes_rates_and_idle_regions_cost_nothing() {
        let c = live();
        c.register(&reg(1, "127.0.0.1:7001"), 0).unwrap();
        made(&c, &[1], &[10, 11]);
        let hb = |read: u64, write: u64| RgHeartbeat {
            rg_id: 5,
            leader_store_id: 1,
            term: 1,
            members: vec![Replica {
                store_id: 1,
                role: ReplicaRole::Voter as i32,
                offline: false,
            }],
            regions: [(10, read, write), (11, 0, 0)]
                .iter()
                .map(|(r, read, write)| RegionStats {
                    region_id: *r,
                    object_id: 1,
                    range: Some(KeyRange {
                        start: vec![*r as u8],
                        end: vec![*r as u8 + 1],
                    }),
                    read_bytes: *read,
                    write_bytes: *write,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        c.rg_heartbeat(1, &hb(0, 0), 1_000).unwrap();
        assert!(c.view().loads.is_empty());
        // 2 s later: 4 MB read and 1 MB written since the last heartbeat.
        c.rg_heartbeat(1, &hb(4_000_000, 1_000_000), 3_000).unwrap();
        let view = c.view();
        assert_eq!(view.loads.len(), 1, "only the busy region has a load entry");
        assert_eq!(view.loads[&10].read_bytes_per_sec, 2_000_000);
        assert_eq!(view.loads[&10].write_bytes_per_sec, 500_000);
        assert_eq!(view.store_loads()[&1].total(), 2_500_000);
        c.rg_heartbeat(1, &hb(0, 0), 4_000).unwrap();
        assert!(c.view().loads.is_empty(), "idle again");
    }
}
