//! The catalog replicated by openraft: every write is one entry in the MC group's Raft log,
//! applied to RocksDB on every MC. One MC is a one-member group; three or five give HA.
//!
//! Only the leader writes (its engine is the only one running); a write on a follower is
//! refused with [`McError::NotLeader`] naming the leader, and the API layer forwards client
//! calls there. Reads are served from the local state machine: on the leader they see every
//! write it has acknowledged, because a write returns only after it is applied.

pub mod log_store;
pub mod network;
pub mod service;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options};

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};
use log_store::{CF_LOG, CF_META, CatalogLogStore};
use state_machine::CatalogStateMachine;
use types::CatalogCommand;

/// The MC group's Raft node.
pub type Raft = openraft::Raft<types::TypeConfig, state_machine::CatalogStateMachine>;

#[derive(Clone, Debug)]
pub struct CatalogOptions {
    /// This MC's id in the group.
    pub id: u64,
    /// Every member of the group, this MC included: id → address (Raft and API share it).
    pub members: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    /// `false` only for benchmarks that say so.
    pub sync: bool,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// A snapshot is built after this many entries, and the log is purged up to it except
    /// for the last `logs_to_keep` entries (so a briefly lagging MC catches up from the log).
    pub snapshot_after_logs: u64,
    pub logs_to_keep: u64,
    /// TLS with this MC's certificate: peers take Raft messages only from members.
    pub security: infra::security::Security,
}

impl CatalogOptions {
    /// A one-member group.
    pub fn single(id: u64, address: String, data_dir: PathBuf) -> Self {
        Self {
            id,
            members: BTreeMap::from([(id, address)]),
            data_dir,
            sync: true,
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 800,
            snapshot_after_logs: 100_000,
            logs_to_keep: 10_000,
            security: infra::security::Security::plaintext(),
        }
    }
}

pub struct RaftCatalog {
    id: u64,
    raft: Raft,
    db: Arc<DB>,
}

fn err(e: impl std::fmt::Display) -> McError {
    McError::Catalog(e.to_string())
}

/// A RocksDB error: corruption is not something a retry gets past.
fn db_err(e: rocksdb::Error) -> McError {
    match e.kind() {
        rocksdb::ErrorKind::Corruption => McError::corrupt("the catalog's RocksDB", e),
        _ => McError::Catalog(e.to_string()),
    }
}

impl RaftCatalog {
    /// Opens (or creates) this MC's replica of the catalog and joins the group. A fresh
    /// group is initialized with `members` by every member alike: the initial membership entry
    /// is the same on all of them, so it does not matter which starts first.
    pub async fn open(options: CatalogOptions) -> Result<Arc<Self>> {
        if !options.members.contains_key(&options.id) {
            return Err(McError::invalid(
                "peers",
                format!("the members do not include this MC ({})", options.id),
            ));
        }
        std::fs::create_dir_all(&options.data_dir).map_err(err)?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        let cfs = ["default", CF_LOG, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = Arc::new(
            DB::open_cf_descriptors(&db_opts, options.data_dir.join("db"), cfs).map_err(err)?,
        );
        let syncer = log_store::wal_syncer(&db, options.sync);
        let log_store = CatalogLogStore::new(log_store::CatalogLog::new(db.clone()), syncer);
        let sm = CatalogStateMachine::open(db.clone(), options.data_dir.join("snapshot.bin"))
            .map_err(err)?;
        sm.remove_stale_checkpoints();
        let config = Config {
            cluster_name: "mc".into(),
            heartbeat_interval: options.heartbeat_ms,
            election_timeout_min: options.election_min_ms,
            election_timeout_max: options.election_max_ms,
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_after_logs),
            max_in_snapshot_log_to_keep: options.logs_to_keep,
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| McError::invalid("raft", e.to_string()))?,
        );
        let raft = Raft::new(
            options.id,
            config,
            network::transport(options.id, options.security.clone()),
            log_store,
            sm,
        )
        .await
        .map_err(err)?;
        let members: BTreeMap<u64, BasicNode> = options
            .members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        // A restarted one-member group leads again at once, in the term it had: the RocksDB
        // lock guarantees the earlier incarnation is gone, so there is nobody to fence.
        match raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(err(format!("initialize the MC group: {e}"))),
        }
        Ok(Arc::new(Self {
            id: options.id,
            raft,
            db,
        }))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn service(&self) -> service::McRaftService {
        service::McRaftService::new(self.id, self.raft.clone())
    }

    /// The current term and, when known, the leader's id and address.
    pub fn leader(&self) -> (u64, Option<(u64, String)>) {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .get_node(&id)
                .map(|n| (id, n.addr.clone()))
        });
        (metrics.current_term, leader)
    }

    /// The term this MC leads in, or None when it does not lead.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        (metrics.state == ServerState::Leader && metrics.current_leader == Some(self.id))
            .then_some(metrics.current_term)
    }

    /// Waits until this MC leads (a one-member group leads within moments of opening).
    pub async fn wait_leading(&self, timeout: std::time::Duration) -> Result<u64> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(term) = self.leading_term() {
                return Ok(term);
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(self.not_leader()),
            }
        }
    }

    /// A one-member catalog in `dir`, leading: for tools, benchmarks and tests that need the
    /// server's catalog without a server.
    pub async fn open_single(dir: &std::path::Path) -> Result<Arc<Self>> {
        let catalog = Self::open(CatalogOptions::single(
            1,
            "127.0.0.1:1".into(),
            dir.to_path_buf(),
        ))
        .await?;
        catalog
            .wait_leading(std::time::Duration::from_secs(10))
            .await?;
        Ok(catalog)
    }

    fn not_leader(&self) -> McError {
        let (term, leader) = self.leader();
        McError::NotLeader { term, leader }
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }

    /// The RocksDB handle, weakly: it is closed, and its directory unlocked, once this has
    /// nothing left to upgrade (the catalog, its Raft tasks and its WAL syncer all let go).
    pub(crate) fn storage(&self) -> std::sync::Weak<DB> {
        Arc::downgrade(&self.db)
    }
}

impl CatalogStore for RaftCatalog {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(db_err)
    }

    async fn write(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        crate::catalog::keys::check_write(batch.ops.iter().map(|(k, _)| k.as_slice()))?;
        match self.raft.client_write(CatalogCommand::Write(batch)).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(self.not_leader())
            }
            Err(e) => Err(err(e)),
        }
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(db_err)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item.map_err(db_err)?;
            if &*k >= end || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
