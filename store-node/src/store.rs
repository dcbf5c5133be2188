//! The store: its RocksDB, the replicas it hosts, and what they share (routing index, Raft
//! transport, WAL syncer). Opening a store reopens every hosted replica from RocksDB.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{Config, SnapshotPolicy};
use rocksdb::WriteBatch;
use tokio::sync::mpsc;

use crate::engine::{CF_LOG, CF_META, Engine, keys};
use crate::error::{Result, StoreError};
use crate::rg::log_store::WalSyncer;
use crate::rg::region_index::RegionIndex;
use crate::rg::snapshot;
use crate::rg::state_machine::{RgEvent, RgStateMachine, SmContext, delete_region_data};
use crate::rg::types::{Raft, RegionMeta, ReplicaMeta};
use crate::security::{Identity, Security};
use crate::transport::client::{self, RaftTransport, RgNetworkFactory};
use crate::transport::service::RgRouter;

/// Raft timing and log retention for every RG of the store.
mod events;
mod replicas;

#[derive(Clone, Debug)]
pub struct RaftTuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_after_logs: u64,
    /// Entries kept behind the last snapshot, for followers that lag a little.
    pub logs_to_keep: u64,
    /// An RG nothing touched for this long sleeps (see `hibernate`); 0 never sleeps.
    pub hibernate_after_ms: u64,
}

/// Defaults follow TiKV's (2 s heartbeat, 10 s election timeout): openraft wakes each group
/// about five times per heartbeat interval, so an idle store's CPU is proportional to
/// RGs / heartbeat interval (measured: 1,000 idle RGs cost 33% of a core at 500 ms, 19% at
/// 1 s, 12% at 2 s). Tests pass shorter intervals.
impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 2_000,
            election_min_ms: 10_000,
            election_max_ms: 20_000,
            snapshot_after_logs: 10_000,
            logs_to_keep: 1_000,
            hibernate_after_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub store_id: u64,
    pub data_dir: PathBuf,
    /// The address peers and the MC dial to reach this store.
    pub advertise: String,
    pub raft: RaftTuning,
    /// fsync Raft log writes; off only for benchmarks that say so.
    pub sync: bool,
    /// Snapshot bytes per second sent to one peer; 0 is unlimited.
    pub snapshot_rate: u64,
    /// TLS and the identity this store proves with its certificate.
    pub security: Security,
}

/// The initial members (store id, address) and regions of a new RG.
pub type Seed = (Vec<(u64, String)>, Vec<RegionMeta>);

/// One hosted RG replica.
pub struct Replica {
    pub rg: u64,
    pub raft: Raft,
    offline: AtomicBool,
    sleep: crate::hibernate::SleepState,
}

impl Replica {
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    pub fn sleep_state(&self) -> &crate::hibernate::SleepState {
        &self.sleep
    }
}

pub struct Store {
    store_id: AtomicU64,
    pub engine: Engine,
    syncer: WalSyncer,
    ctx: Arc<SmContext>,
    pub transport: Arc<RaftTransport>,
    replicas: RwLock<HashMap<u64, Arc<Replica>>>,
    raft_config: Arc<Config>,
    options: StoreOptions,
    snapshots_receiving: AtomicU32,
    recv_seq: AtomicU64,
    started: std::time::Instant,
    /// Registrations with an MC since the process started: one per heartbeat session, so a
    /// count that grows while the MC stays up means sessions are being cut.
    pub heartbeat_sessions: AtomicU64,
    /// Steps this process ran to success, by (job, step): a repeat answered from the step
    /// record is not counted, so any count above one is a step executed twice.
    executed: std::sync::Mutex<HashMap<(u64, u32), u32>>,
    /// Serializes adopting a cluster id, so two first MC calls cannot persist two ids.
    cluster_lock: std::sync::Mutex<()>,
    hibernation: Arc<crate::hibernate::Hibernation>,
    /// Client reads and writes served here, for the store heartbeat's rates.
    pub traffic: crate::traffic::Traffic,
    /// Who may read and write rows, as the MC last said.
    pub data_access: crate::access::DataAccessList,
}

impl Store {
    pub(crate) fn count_executed(&self, job_id: u64, step_seq: u32) {
        *self
            .executed
            .lock()
            .expect("executed lock")
            .entry((job_id, step_seq))
            .or_default() += 1;
    }

    /// How many times this process ran each (job, step) to success since it started.
    pub fn steps_executed(&self) -> HashMap<(u64, u32), u32> {
        self.executed.lock().expect("executed lock").clone()
    }

    /// Opens the store's RocksDB and every replica it hosts.
    pub async fn open(options: StoreOptions) -> Result<Arc<Self>> {
        let engine = Engine::open(&options.data_dir.join("db"), options.sync)?;
        let persisted: Option<u64> = engine.get_meta(keys::STORE_ID)?;
        let configured = match options.security.me() {
            None => options.store_id,
            Some(Identity::Store(n)) if options.store_id == 0 || options.store_id == *n => *n,
            Some(other) => {
                return Err(StoreError::InvalidArgument {
                    field: "store_id",
                    reason: format!(
                        "the certificate names {other}, but this store is configured as store {}",
                        options.store_id
                    ),
                });
            }
        };
        let store_id = match (persisted, configured) {
            (Some(p), 0) => p,
            (Some(p), id) if p != id => {
                return Err(StoreError::InvalidArgument {
                    field: "store_id",
                    reason: format!("data dir belongs to store {p}, not {id}"),
                });
            }
            (_, id) => id,
        };
        if store_id != 0 && persisted.is_none() {
            let mut batch = WriteBatch::default();
            engine.put_meta(&mut batch, keys::STORE_ID, &store_id)?;
            engine.write(batch, true)?;
        }
        // Partial snapshot receives of a crashed run are garbage; the leader sends again.
        let _ = std::fs::remove_dir_all(options.data_dir.join("snapshots").join("recv"));
        // So are snapshot builds a crash interrupted (`{rg}/tmp-…`).
        if let Ok(rgs) = std::fs::read_dir(options.data_dir.join("snapshots")) {
            for dir in rgs.flatten() {
                for build in std::fs::read_dir(dir.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if build.file_name().to_string_lossy().starts_with("tmp-") {
                        let _ = std::fs::remove_dir_all(build.path());
                    }
                }
            }
        }
        let cluster_id: u64 = engine.get_meta(keys::STORE_CLUSTER_ID)?.unwrap_or(0);
        let syncer = crate::rg::log_store::wal_syncer(&engine);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(SmContext {
            engine: engine.clone(),
            regions: Arc::new(RegionIndex::default()),
            events: events_tx,
            snapshot_root: options.data_dir.join("snapshots"),
            applied: Mutex::default(),
            store_id: AtomicU64::new(store_id),
            ranges: tokio::sync::Mutex::new(()),
        });
        let t = &options.raft;
        let config = Config {
            cluster_name: "mc-store".into(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_min_ms,
            election_timeout_max: t.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_after_logs),
            max_in_snapshot_log_to_keep: t.logs_to_keep,
            // Bounds one AppendEntries RPC; with large values a full batch of 300 entries
            // would be hundreds of MiB on the wire. 32 entries of 1 MiB fit the 256 MiB limit.
            max_payload_entries: 32,
            // A replica back from a partition or a restart asks before it campaigns, so it
            // cannot depose a healthy leader by raising the term.
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        let hibernation = Arc::new(crate::hibernate::Hibernation::new(
            crate::hibernate::HibernateOptions {
                enabled: t.hibernate_after_ms > 0,
                idle_after: Duration::from_millis(t.hibernate_after_ms),
                beat_interval: Duration::from_millis(t.heartbeat_ms),
                silent_after: Duration::from_millis(t.election_min_ms),
                election_spread: Duration::from_millis(
                    t.election_max_ms.saturating_sub(t.election_min_ms),
                ),
            },
        ));
        let raft_config = Arc::new(config.validate().map_err(|e| StoreError::InvalidArgument {
            field: "raft",
            reason: e.to_string(),
        })?);
        let data_access = crate::access::DataAccessList::load(&engine)?;
        let store = Arc::new(Self {
            store_id: AtomicU64::new(store_id),
            transport: client::transport(
                store_id,
                options.snapshot_rate,
                options.security.clone(),
                cluster_id,
            ),
            engine,
            syncer,
            ctx,
            replicas: RwLock::default(),
            executed: Default::default(),
            cluster_lock: Default::default(),
            raft_config,
            options,
            snapshots_receiving: AtomicU32::new(0),
            recv_seq: AtomicU64::new(0),
            started: std::time::Instant::now(),
            heartbeat_sessions: AtomicU64::new(0),
            hibernation,
            traffic: Default::default(),
            data_access,
        });
        if store_id != 0 {
            store.open_hosted().await?;
        }
        tokio::spawn(Self::handle_events(Arc::downgrade(&store), events_rx));
        tokio::spawn(crate::hibernate::run(Arc::downgrade(&store)));
        tokio::spawn(crate::hibernate::release_held_at_the_latest(
            Arc::downgrade(&store),
        ));
        Ok(store)
    }

    pub fn id(&self) -> u64 {
        self.store_id.load(Ordering::Acquire)
    }

    /// The cluster this store belongs to; 0 until an MC first commands or registers it.
    pub fn cluster_id(&self) -> u64 {
        self.transport.cluster_id()
    }

    pub fn security(&self) -> &Security {
        &self.options.security
    }

    /// Checks the cluster id a caller sent against this store's, adopting an MC's when the
    /// store has none yet (persisted before anything the call asks is done). A caller of
    /// another cluster is refused by name, so a wiped and re-created MC, or a store moved
    /// between clusters, cannot command or replicate to it.
    pub fn check_cluster(&self, theirs: Option<u64>, caller: &Identity) -> Result<()> {
        let mine = self.cluster_id();
        match (mine, theirs) {
            (0, None) => Ok(()),
            (0, Some(id)) if matches!(caller, Identity::Mc(_)) => self.adopt_cluster_id(id),
            (0, Some(_)) => Ok(()),
            (mine, Some(id)) if id == mine => Ok(()),
            (mine, theirs) => Err(StoreError::ForeignCluster {
                store_id: self.id(),
                mine,
                theirs: theirs.unwrap_or(0),
                caller: caller.to_string(),
            }),
        }
    }

    /// Records the members the MC named when it created a replica joining an existing RG:
    /// their Raft messages are admitted before the replica has caught up with its
    /// configuration. Persisted under the RG's records, so a Destroy removes them; not synced
    /// here, since the Create that follows syncs the WAL (a refused Create leaves them unsynced,
    /// and the MC names them again when it retries).
    pub fn name_peers(&self, rg: u64, peers: Vec<u64>) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.engine
            .put_meta(&mut batch, &keys::rg_record(rg, "named_peers"), &peers)?;
        self.engine.write(batch, false)
    }

    /// Joins cluster `id` when the store has none yet (0 is no id); a different id than the
    /// store's is refused.
    pub fn adopt_cluster_id(&self, id: u64) -> Result<()> {
        let _one_at_a_time = self.cluster_lock.lock().expect("cluster id lock");
        match self.cluster_id() {
            _ if id == 0 => Ok(()),
            0 => {
                let mut batch = WriteBatch::default();
                self.engine
                    .put_meta(&mut batch, keys::STORE_CLUSTER_ID, &id)?;
                self.engine.write(batch, true)?;
                self.transport.set_cluster_id(id);
                tracing::info!(cluster_id = %format!("{id:016x}"), "store joined its cluster");
                Ok(())
            }
            mine if mine == id => Ok(()),
            mine => Err(StoreError::ForeignCluster {
                store_id: self.id(),
                mine,
                theirs: id,
                caller: "the MC".into(),
            }),
        }
    }

    pub fn advertise(&self) -> &str {
        &self.options.advertise
    }

    /// How long a client's read or write may wait on Raft (a quorum, an election, the local
    /// apply) before it is answered Unavailable: twice the longest election timeout, at least
    /// five seconds. Without a bound a leader that lost its quorum holds every caller forever.
    pub fn client_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.raft_config.election_timeout_max * 2).max(5_000))
    }

    pub fn hibernation(&self) -> &Arc<crate::hibernate::Hibernation> {
        &self.hibernation
    }

    /// Something needs the RG here (a client call, a step, a Raft message): wakes it if it
    /// sleeps and restarts its idle time.
    ///
    /// A sleeping follower with a leader elsewhere only notes the activity: ticking again,
    /// its election timer would start from the last message it took before it fell asleep and
    /// it would campaign at once against a live leader. It wakes when that leader's next
    /// message arrives (see [`Store::wake`]), or when the leader's store falls silent.
    pub fn touch(&self, replica: &Replica) {
        let now = self.hibernation.now_ms();
        if replica.sleep.is_asleep() && follows_another(replica, self.id()) {
            replica.sleep.note(now);
        } else {
            replica.sleep.touch(&replica.raft, now);
        }
    }

    /// A Raft message for the RG arrived and was taken in: wakes its replica here.
    pub fn wake(&self, replica: &Replica) {
        replica
            .sleep
            .touch(&replica.raft, self.hibernation.now_ms());
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Why this store cannot do its job, if it cannot: its storage failed a write or an fsync
    /// (a full disk, an I/O error), or an RG's Raft stopped on such an error. Reported in
    /// every store heartbeat; the MC treats the store as Down for placement and repair.
    pub fn unhealthy(&self) -> Option<String> {
        if let Some(failure) = self.engine.failure() {
            return Some(failure);
        }
        use openraft::async_runtime::WatchReceiver;
        self.replicas().iter().find_map(|r| {
            match &r.raft.metrics().borrow_watched().running_state {
                Ok(()) => None,
                Err(fatal) => Some(format!("RG {} stopped: {fatal}", r.rg)),
            }
        })
    }

    pub fn regions(&self) -> &Arc<RegionIndex> {
        &self.ctx.regions
    }

    pub fn snapshots_receiving(&self) -> u32 {
        self.snapshots_receiving.load(Ordering::Relaxed)
    }

    /// Adopts the id the MC assigned at first registration.
    pub async fn assign_id(&self, id: u64) -> Result<()> {
        let current = self.id();
        if current == id {
            return Ok(());
        }
        if current != 0 {
            return Err(StoreError::InvalidArgument {
                field: "store_id",
                reason: format!("store already has id {current}"),
            });
        }
        let mut batch = WriteBatch::default();
        self.engine.put_meta(&mut batch, keys::STORE_ID, &id)?;
        self.engine.write(batch, true)?;
        self.store_id.store(id, Ordering::Release);
        self.ctx.store_id.store(id, Ordering::Release);
        self.transport.set_id(id);
        Ok(())
    }

    pub fn replica(&self, rg: u64) -> Option<Arc<Replica>> {
        self.replicas
            .read()
            .expect("replica map lock")
            .get(&rg)
            .cloned()
    }

    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        let mut all: Vec<_> = self
            .replicas
            .read()
            .expect("replica map lock")
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|r| r.rg);
        all
    }

    /// Waits until the local state machine of `rg` has applied `index`.
    pub async fn wait_applied(&self, rg: u64, index: u64, timeout: Duration) -> Result<()> {
        let mut watch = self.ctx.applied_watch(rg);
        match tokio::time::timeout(timeout, watch.wait_for(|i| *i >= index)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::DeadlineExceeded(format!(
                "RG {rg} did not apply index {index}"
            ))),
        }
    }

    pub fn applied_index(&self, rg: u64) -> u64 {
        *self.ctx.applied_watch(rg).borrow()
    }

    pub async fn shutdown(&self) {
        let replicas: Vec<_> = self
            .replicas
            .write()
            .expect("replica map lock")
            .drain()
            .map(|(_, r)| r)
            .collect();
        for replica in replicas {
            let _ = replica.raft.shutdown().await;
        }
        let _ = self.engine.flush_wal();
    }
}

impl RgRouter for Store {
    fn store_id(&self) -> u64 {
        self.id()
    }

    fn raft(&self, rg: u64) -> Option<Raft> {
        self.replica(rg).map(|r| r.raft.clone())
    }

    fn named_peers(&self, rg: u64) -> Vec<u64> {
        self.engine
            .get_meta(&keys::rg_record(rg, "named_peers"))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn snapshot_recv_dir(&self, rg: u64) -> PathBuf {
        // Outside the RG's own snapshot directory, which snapshot builds prune.
        let seq = self.recv_seq.fetch_add(1, Ordering::Relaxed);
        self.ctx
            .snapshot_root
            .join("recv")
            .join(format!("{rg}-{seq}"))
    }

    fn snapshot_started(&self) {
        self.snapshots_receiving.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot_finished(&self) {
        self.snapshots_receiving.fetch_sub(1, Ordering::Relaxed);
    }

    fn touch(&self, rg: u64) {
        if let Some(replica) = self.replica(rg) {
            self.wake(&replica);
        }
    }

    fn store_beat(
        &self,
        beat: &proto::v1::StoreBeatRequest,
    ) -> Option<proto::v1::StoreBeatResponse> {
        Some(self.hibernation.on_beat(self, beat))
    }
}

/// Waits until the replica has a snapshot at or past `index`, triggering a build and again
/// after each one that ends short (openraft ignores a trigger while a build runs). Gives up
/// after a build that does not finish in 5 s; callers retry.
pub async fn snapshot_covering(raft: &Raft, rg: u64, index: u64) -> Result<()> {
    loop {
        let before = snapshot_index(raft);
        if before >= index {
            return Ok(());
        }
        raft.trigger()
            .snapshot()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        raft.wait(Some(Duration::from_secs(5)))
            .metrics(
                |m| m.snapshot.as_ref().map_or(0, |s| s.index()) > before,
                "a newer snapshot",
            )
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "RG {rg} has no snapshot past index {index} yet: {e}"
                ))
            })?;
    }
}

/// The index of the replica's latest snapshot (0 with none).
pub fn snapshot_index(raft: &Raft) -> u64 {
    openraft::async_runtime::WatchReceiver::borrow_watched(&raft.metrics())
        .snapshot
        .as_ref()
        .map_or(0, |s| s.index())
}

/// Whether the replica is a follower that knows a leader on another store.
fn follows_another(replica: &Replica, me: u64) -> bool {
    use openraft::async_runtime::WatchReceiver;
    let metrics = replica.raft.metrics();
    let m = metrics.borrow_watched();
    !m.state.is_leader() && m.current_leader.is_some_and(|l| l != me)
}

#[cfg(test)]
mod tests {
    use super::replicas::uncovered;
    use super::*;

    fn r(start: &str, end: &str) -> RegionMeta {
        RegionMeta {
            id: 1,
            object_id: 1,
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            version: 1,
        }
    }

    fn pieces(v: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(String, String)> {
        v.into_iter()
            .map(|(a, b)| {
                (
                    String::from_utf8_lossy(&a).to_string(),
                    String::from_utf8_lossy(&b).to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_destroy_deletes_only_what_no_other_rg_holds() {
        assert_eq!(
            pieces(uncovered(&r("a", "z"), &[])),
            [("a".into(), "z".into())]
        );
        let others = [r("c", "f"), r("e", "h"), r("x", "zz"), r("0", "1")];
        assert_eq!(
            pieces(uncovered(&r("a", "z"), &others)),
            [("a".into(), "c".into()), ("h".into(), "x".into())]
        );
        assert!(uncovered(&r("d", "g"), &others).is_empty(), "covered whole");
    }
}
