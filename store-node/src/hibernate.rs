//! Hibernating RGs. openraft wakes every replica about five times per heartbeat interval (its
//! tick), whether or not anything happens: an idle store with 1,000 RGs spent 12% of a core on
//! nothing. An RG with nothing to do sleeps instead: its replicas stop ticking (no heartbeats,
//! no election timers) until a write, a read, a step or any Raft message for it arrives.
//!
//! - A **leader** sleeps once nothing touched the RG for `idle_after` and every member holds
//!   every entry it has, committed and applied.
//! - A **follower** sleeps when its leader says, in a [`StoreBeat`], that the RG sleeps at the
//!   same term and last entry the follower has.
//! - **Store beats** stand in for the sleeping RGs' heartbeats: one message per pair of stores
//!   per heartbeat interval, carrying the sender's sleeping RGs and its incarnation.
//! - A peer that falls **silent** for an election timeout wakes the followers it led here (so
//!   they elect a new leader as they would have); a peer that **restarted** (a new
//!   incarnation) wakes every RG the two stores share, so the restarted replicas hear their
//!   leader, or elect one, before anything times out.
//!
//! - A replica **opened at start-up** holds its election until its store's first beat round is
//!   over and the peers have had a heartbeat interval and an election timeout to reach it: its
//!   peers' leases lapsed while they slept, so they would grant its pre-vote, and on a loaded
//!   machine its election timer can run out before its leader's store hears of the restart.
//!   The RG's other replicas still elect without it if its leader is gone.
//!
//! Sleeping is an optimisation only: every safety property is Raft's. A follower woken by a
//! stray message, or a lost beat, costs at most one election.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use proto::v1::{SleepingRg, StoreBeatRequest, StoreBeatResponse};

use crate::rg::types::Raft;
use crate::store::{Replica, Store};

/// Beats carry at most this many sleeping RGs each; a store leading more sends several.
pub const MAX_SLEEPING_PER_BEAT: usize = 50_000;

/// Whether one replica sleeps, and when something last needed it.
#[derive(Default)]
pub struct SleepState {
    asleep: AtomicBool,
    /// Milliseconds since the store started.
    last_active_ms: AtomicU64,
    /// A sleeping follower: when its leader's beat last listed the RG as sleeping.
    listed_at_ms: AtomicU64,
    /// Opened at start-up: elections stay off until [`release_held_elections`] turns them on.
    election_held: AtomicBool,
}

impl SleepState {
    pub fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::Acquire)
    }

    /// Something needed the RG: restarts its idle time without waking it.
    pub fn note(&self, now_ms: u64) {
        self.last_active_ms.fetch_max(now_ms, Ordering::AcqRel);
    }

    /// Something needs the RG: wake it if it sleeps, and restart its idle time.
    pub fn touch(&self, raft: &Raft, now_ms: u64) {
        self.last_active_ms.fetch_max(now_ms, Ordering::AcqRel);
        if self.asleep.swap(false, Ordering::AcqRel) {
            raft.runtime_config().tick(true);
        }
    }

    /// Turns the replica's elections off until its store's peers have heard of the restart
    /// (see the module's notes). For replicas opened at start-up, not offline ones, and only
    /// when RGs may sleep: awake peers' leases refuse an early pre-vote by themselves.
    pub fn hold_election(&self, raft: &Raft) {
        self.election_held.store(true, Ordering::Release);
        raft.runtime_config().elect(false);
    }

    pub fn is_election_held(&self) -> bool {
        self.election_held.load(Ordering::Acquire)
    }

    fn sleep(&self, raft: &Raft) -> bool {
        if self.asleep.swap(true, Ordering::AcqRel) {
            return false;
        }
        raft.runtime_config().tick(false);
        true
    }

    /// Puts an idle leader to sleep unless something touched it since `seen` (its last
    /// activity when it was judged idle): a touch racing the decision wins, either here or, if
    /// it comes after, by finding the replica asleep and waking it.
    fn sleep_unless_touched(&self, raft: &Raft, seen: u64) -> bool {
        if !self.sleep(raft) {
            return false;
        }
        if self.last_active_ms.load(Ordering::Acquire) != seen
            && self.asleep.swap(false, Ordering::AcqRel)
        {
            raft.runtime_config().tick(true);
            return false;
        }
        true
    }
}

/// When to sleep and how often to beat.
#[derive(Clone, Copy, Debug)]
pub struct HibernateOptions {
    /// Off: every RG ticks for good (the behaviour before hibernation).
    pub enabled: bool,
    /// A leader sleeps after this long without a write, read, step or Raft message.
    pub idle_after: Duration,
    /// Store beats are sent this often: the Raft heartbeat interval.
    pub beat_interval: Duration,
    /// A peer silent this long is taken for dead: the shortest election timeout.
    pub silent_after: Duration,
    /// The longest election timeout less the shortest: replicas released from a start-up hold
    /// are spread over it, so they do not all campaign on the same tick and split the vote.
    pub election_spread: Duration,
}

struct PeerState {
    last_heard: Instant,
    incarnation: u64,
    /// Followers it led here were woken because it fell silent.
    silent: bool,
}

/// The store's side of hibernation: its incarnation and what it knows of its peers.
pub struct Hibernation {
    pub options: HibernateOptions,
    incarnation: u64,
    started: Instant,
    /// When the first beat round after start-up ended (`now_ms`); `u64::MAX` before.
    first_round_ms: AtomicU64,
    peers: Mutex<HashMap<u64, PeerState>>,
    pub beats_sent: AtomicU64,
    pub beats_received: AtomicU64,
}

impl Hibernation {
    pub fn new(options: HibernateOptions) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            options,
            // Distinct per process start: time and pid.
            incarnation: nanos ^ (u64::from(std::process::id()) << 40) | 1,
            started: Instant::now(),
            first_round_ms: AtomicU64::new(u64::MAX),
            peers: Mutex::default(),
            beats_sent: AtomicU64::new(0),
            beats_received: AtomicU64::new(0),
        }
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A beat from `from`: notes it alive, wakes what a restart of it calls for, and puts to
    /// sleep the followers of RGs it leads that sleep. Only followers whose leader, term and
    /// last entry match sleep; anything else in the beat is ignored.
    pub fn on_beat(&self, store: &Store, req: &StoreBeatRequest) -> StoreBeatResponse {
        self.beats_received.fetch_add(1, Ordering::Relaxed);
        let from = req.from_store_id;
        if self.heard(from, req.incarnation) {
            wake_shared(store, from, "peer restarted");
        }
        if self.options.enabled {
            for s in req.sleeping.iter().take(MAX_SLEEPING_PER_BEAT) {
                let Some(replica) = store.replica(s.rg_id) else {
                    continue;
                };
                if replica.sleep_state().is_asleep() {
                    // Still listed by its leader: the leader lives and sleeps.
                    replica
                        .sleep_state()
                        .listed_at_ms
                        .fetch_max(self.now_ms(), Ordering::AcqRel);
                    continue;
                }
                if replica.is_offline() {
                    continue;
                }
                let m = replica.raft.metrics().borrow_watched().clone();
                let caught_up = m.current_leader == Some(from)
                    && m.current_term == s.term
                    && m.last_log_index == Some(s.last_index)
                    && !m.state.is_leader();
                if caught_up {
                    replica
                        .sleep_state()
                        .listed_at_ms
                        .store(self.now_ms(), Ordering::Release);
                    replica.sleep_state().sleep(&replica.raft);
                }
            }
        }
        StoreBeatResponse {
            error: None,
            incarnation: self.incarnation,
        }
    }

    /// Records that `peer` was heard from; true when it is a new process (a restart). A peer
    /// heard from for the first time counts as restarted: it was down, or not yet up, since
    /// this store started, so its replicas are as new as a restarted one's (at this store's
    /// own start nothing sleeps yet, so the wake costs nothing).
    fn heard(&self, peer: u64, incarnation: u64) -> bool {
        let mut peers = self.peers.lock().expect("peer map lock");
        let now = Instant::now();
        match peers.get_mut(&peer) {
            Some(p) => {
                p.last_heard = now;
                p.silent = false;
                let restarted = incarnation != 0 && p.incarnation != incarnation;
                if incarnation != 0 {
                    p.incarnation = incarnation;
                }
                restarted
            }
            None => {
                peers.insert(
                    peer,
                    PeerState {
                        last_heard: now,
                        incarnation,
                        silent: false,
                    },
                );
                incarnation != 0
            }
        }
    }

    /// Peers not heard from for `silent_after`, once each until heard from again.
    fn newly_silent(&self) -> Vec<u64> {
        let mut peers = self.peers.lock().expect("peer map lock");
        let limit = self.options.silent_after;
        peers
            .iter_mut()
            .filter(|(_, p)| !p.silent && p.last_heard.elapsed() >= limit)
            .map(|(id, p)| {
                p.silent = true;
                *id
            })
            .collect()
    }

    /// Peers this store shares an RG with, and whom it has heard from: for tests and metrics.
    pub fn peers_heard(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .peers
            .lock()
            .expect("peer map lock")
            .keys()
            .copied()
            .collect();
        ids.sort();
        ids
    }
}

/// Wakes every local replica of an RG that `peer` is a member of.
fn wake_shared(store: &Store, peer: u64, why: &str) {
    let now = store.hibernation().now_ms();
    let mut woken = 0;
    for replica in store.replicas() {
        let m = replica.raft.metrics().borrow_watched().clone();
        let member = m
            .membership_config
            .membership()
            .nodes()
            .any(|(id, _)| *id == peer);
        // Leaders here wake (their beats reach the restarted replica), and followers whose
        // leader was the restarted peer (it comes back a follower: they must elect). Other
        // followers sleep on: their leader wakes on its own store and its messages wake them.
        let led_by_peer = m.current_leader == Some(peer) || m.current_leader.is_none();
        if member && replica.sleep_state().is_asleep() && (m.state.is_leader() || led_by_peer) {
            replica.sleep_state().touch(&replica.raft, now);
            if m.state.is_leader() {
                // Reach the restarted replica now, not a heartbeat interval from now.
                let raft = replica.raft.clone();
                tokio::spawn(async move { raft.trigger().heartbeat().await });
            }
            woken += 1;
        }
    }
    if woken > 0 {
        tracing::info!(peer, woken, why, "woke RGs shared with a peer");
    }
}

/// Wakes the local followers whose leader is `peer`: it fell silent, so they must be able to
/// elect another.
fn wake_led_by(store: &Store, peer: u64) {
    let now = store.hibernation().now_ms();
    let mut woken = 0;
    for replica in store.replicas() {
        if replica.sleep_state().is_asleep()
            && replica.raft.metrics().borrow_watched().current_leader == Some(peer)
        {
            replica.sleep_state().touch(&replica.raft, now);
            woken += 1;
        }
    }
    if woken > 0 {
        tracing::info!(peer, woken, "leader store silent: woke its followers here");
    }
}

/// Wakes sleeping followers whose leader's beats stopped listing their RG for an election
/// timeout while its store kept beating: the leader replica stopped (a storage error) or woke
/// and its messages do not arrive. Woken, they elect as they would have.
fn wake_unlisted(store: &Store) {
    let h = store.hibernation();
    let now = h.now_ms();
    let limit = h.options.silent_after.as_millis() as u64;
    let mut woken = 0;
    for replica in store.replicas() {
        let state = replica.sleep_state();
        if !state.is_asleep() || replica.raft.metrics().borrow_watched().state.is_leader() {
            continue;
        }
        if now.saturating_sub(state.listed_at_ms.load(Ordering::Acquire)) >= limit {
            state.touch(&replica.raft, now);
            woken += 1;
        }
    }
    if woken > 0 {
        tracing::info!(
            woken,
            "followers no longer listed by their leader's beats woken"
        );
    }
}

/// Whether a leader may sleep: nothing in flight, every member holds every entry.
fn quiescent(replica: &Replica, me: u64) -> bool {
    let metrics = replica.raft.metrics();
    let m = metrics.borrow_watched();
    if m.current_leader != Some(me) || !m.state.is_leader() {
        return false;
    }
    let last = m.last_log_index;
    let committed = m.local_committed.as_ref().map(|l| l.index);
    let applied = m.last_applied.as_ref().map(|l| l.index);
    if last.is_none() || committed != last || applied != last {
        return false;
    }
    // A membership change in flight (joint or not yet committed) keeps the RG awake.
    let membership = m.membership_config.membership();
    if membership.get_joint_config().len() > 1 {
        return false;
    }
    let Some(replication) = m.replication.as_ref() else {
        return false;
    };
    membership.nodes().all(|(id, _)| {
        *id == me
            || replication
                .get(id)
                .is_some_and(|p| p.as_ref().map(|l| l.index) == last)
    })
}

/// Runs until the store is dropped: puts idle leaders to sleep, sends store beats, wakes the
/// followers of silent peers. Holds the store only while it works, never while it waits.
pub async fn run(store: Weak<Store>) {
    let Some(h) = store.upgrade().map(|s| s.hibernation().clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(h.options.beat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        if store.id() == 0 {
            continue;
        }
        if h.options.enabled {
            put_idle_leaders_to_sleep(&store);
        }
        for peer in h.newly_silent() {
            wake_led_by(&store, peer);
        }
        wake_unlisted(&store);
        release_held_elections(&store);
        send_beats(&store).await;
        let _ = h.first_round_ms.compare_exchange(
            u64::MAX,
            h.now_ms(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Ends one replica's start-up hold; true if it was held.
fn release(replica: &Replica) -> bool {
    if !replica
        .sleep_state()
        .election_held
        .swap(false, Ordering::AcqRel)
    {
        return false;
    }
    if !replica.is_offline() {
        replica.raft.runtime_config().elect(true);
        // Taken offline between the check and the switch: its step turned elections off
        // before this turned them on.
        if replica.is_offline() {
            replica.raft.runtime_config().elect(false);
        }
    }
    true
}

/// A safety net under the start-up hold: a replica still held this long after the store
/// started (the beat task stopped, say) is released, so no replica is left unable to elect.
pub async fn release_held_at_the_latest(store: Weak<Store>) {
    let Some(h) = store.upgrade().map(|s| s.hibernation().clone()) else {
        return;
    };
    let o = h.options;
    let round = o.beat_interval.max(Duration::from_millis(200));
    tokio::time::sleep((round + o.beat_interval + o.silent_after + o.election_spread) * 4).await;
    let Some(store) = store.upgrade() else {
        return;
    };
    let released = store.replicas().iter().filter(|r| release(r)).count();
    if released > 0 {
        tracing::warn!(
            released,
            "replicas still held at start-up's latest: released"
        );
    }
}

/// Turns elections back on for the replicas opened at start-up once the first beat round is
/// over (every peer told of the new incarnation, or its beat timed out) and a heartbeat
/// interval and an election timeout have passed since: time for a woken leader to reach them.
fn release_held_elections(store: &Store) {
    let h = store.hibernation();
    let round = h.first_round_ms.load(Ordering::Acquire);
    let wait = (h.options.beat_interval + h.options.silent_after).as_millis() as u64;
    let now = h.now_ms();
    let spread = (h.options.election_spread.as_millis() as u64).max(1);
    let mut released = 0;
    for replica in store.replicas() {
        let state = replica.sleep_state();
        if !state.is_election_held() {
            continue;
        }
        // A sole voter needs nobody's vote: it leads at once, as before it stopped. (The
        // membership is known once the replica's first metrics are out.)
        let voters = replica
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        // A fixed spot in the spread per (store, RG): the RG's replicas differ in it.
        let jitter =
            (replica.rg ^ store.id().rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % spread;
        let waited = round != u64::MAX && now >= round.saturating_add(wait + jitter);
        if voters != 1 && !waited {
            continue;
        }
        if release(&replica) {
            released += 1;
        }
    }
    if released > 0 {
        tracing::debug!(released, "replicas opened at start-up may elect");
    }
}

fn put_idle_leaders_to_sleep(store: &Store) {
    let h = store.hibernation();
    let now = h.now_ms();
    let idle = h.options.idle_after.as_millis() as u64;
    let me = store.id();
    let mut slept = 0;
    for replica in store.replicas() {
        let state = replica.sleep_state();
        let seen = state.last_active_ms.load(Ordering::Acquire);
        if state.is_asleep() || replica.is_offline() || now.saturating_sub(seen) < idle {
            continue;
        }
        if quiescent(&replica, me) && state.sleep_unless_touched(&replica.raft, seen) {
            slept += 1;
        }
    }
    if slept > 0 {
        tracing::debug!(slept, "idle RGs went to sleep");
    }
}

/// One beat to every peer store this store shares an RG with, carrying the sleeping RGs it
/// leads that the peer holds.
async fn send_beats(store: &Arc<Store>) {
    crate::failpoint::reach("store.beat.send", "").await;
    let me = store.id();
    let mut peers: BTreeMap<u64, (String, Vec<SleepingRg>)> = BTreeMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    for replica in store.replicas() {
        let m = replica.raft.metrics().borrow_watched().clone();
        let sleeping = replica.sleep_state().is_asleep()
            && m.current_leader == Some(me)
            && m.state.is_leader();
        for (id, node) in m.membership_config.membership().nodes() {
            if *id == me {
                continue;
            }
            let entry = peers
                .entry(*id)
                .or_insert_with(|| (node.addr.clone(), Vec::new()));
            seen.insert(*id);
            if sleeping {
                entry.1.push(SleepingRg {
                    rg_id: replica.rg,
                    term: m.current_term,
                    last_index: m.last_log_index.unwrap_or(0),
                });
            }
        }
    }
    let h = store.hibernation();
    let timeout = h.options.beat_interval.max(Duration::from_millis(200));
    // A peer sharing more sleeping RGs than one beat carries gets several beats.
    let beats: Vec<(u64, String, Vec<SleepingRg>)> = peers
        .into_iter()
        .flat_map(|(peer, (addr, sleeping))| {
            let mut chunks: Vec<Vec<SleepingRg>> = sleeping
                .chunks(MAX_SLEEPING_PER_BEAT)
                .map(<[SleepingRg]>::to_vec)
                .collect();
            if chunks.is_empty() {
                chunks.push(Vec::new());
            }
            chunks.into_iter().map(move |c| (peer, addr.clone(), c))
        })
        .collect();
    let sends = beats.into_iter().map(|(peer, addr, sleeping)| {
        let store = store.clone();
        async move {
            let request = StoreBeatRequest {
                from_store_id: me,
                to_store_id: peer,
                incarnation: store.hibernation().incarnation(),
                sleeping,
            };
            let Ok(mut client) = store
                .transport
                .client(&addr, crate::transport::client::Lane::Control)
            else {
                return;
            };
            let mut request = store.transport.request(request);
            request.set_timeout(timeout);
            store
                .hibernation()
                .beats_sent
                .fetch_add(1, Ordering::Relaxed);
            if let Ok(reply) = client.store_beat(request).await {
                let reply = reply.into_inner();
                if reply.error.is_none() && store.hibernation().heard(peer, reply.incarnation) {
                    wake_shared(&store, peer, "peer restarted");
                }
            }
        }
    });
    futures::future::join_all(sends).await;
}
