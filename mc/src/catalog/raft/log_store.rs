//! The MC's Raft log in the catalog's RocksDB (column family `raft_log`, keyed by big-endian
//! index), and its vote and purge records (`raft_meta`).
//!
//! Appends are written without waiting for the disk; one syncer thread fsyncs the WAL for
//! every append that arrived meanwhile and only then tells openraft they are flushed. Under
//! load openraft hands over many entries per append, so one fsync covers many job updates
//! (group commit).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::OptionalSend;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::types::{Entry, LogId, TypeConfig, Vote, from_wire, io_err, to_wire};

pub const CF_LOG: &str = "raft_log";
pub const CF_META: &str = "raft_meta";

/// The catalog's group-commit syncer (see `raftkit::wal`).
pub type WalSyncer = raftkit::wal::WalSyncer<TypeConfig>;

/// Fsyncs `db`'s WAL for waiting appends; `sync: false` only for benchmarks that say so.
pub fn wal_syncer(db: &Arc<DB>, sync: bool) -> WalSyncer {
    if !sync {
        return WalSyncer::unsynced();
    }
    // Weak: the DB is closed by whoever drops the catalog, never by this detached thread.
    let db = Arc::downgrade(db);
    WalSyncer::start("catalog-wal-sync", move || match db.upgrade() {
        Some(db) => db.flush_wal(true).map_err(io_err),
        None => Err(io_err("the catalog is closed")),
    })
}

#[derive(Clone)]
pub struct CatalogLogStore {
    db: Arc<DB>,
    syncer: WalSyncer,
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("catalog column family opened at start")
}

pub fn read_meta<T: serde::de::DeserializeOwned>(db: &DB, name: &str) -> io::Result<Option<T>> {
    match db.get_cf(cf(db, CF_META), name).map_err(io_err)? {
        Some(bytes) => Ok(Some(from_wire(&bytes)?)),
        None => Ok(None),
    }
}

pub fn put_meta<T: serde::Serialize>(
    db: &DB,
    batch: &mut WriteBatch,
    name: &str,
    value: &T,
) -> io::Result<()> {
    batch.put_cf(cf(db, CF_META), name, to_wire(value)?);
    Ok(())
}

impl CatalogLogStore {
    pub fn new(db: Arc<DB>, syncer: WalSyncer) -> Self {
        Self { db, syncer }
    }

    async fn write_synced(&self, batch: WriteBatch) -> io::Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts)
        })
        .await
        .map_err(io_err)?
        .map_err(io_err)
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let mut iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (_, value) = item.map_err(io_err)?;
                let entry: Entry = from_wire(&value)?;
                Ok(Some(entry.log_id()))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for CatalogLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let from = start.to_be_bytes();
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(io_err)?;
            let index = u64::from_be_bytes(key[..8].try_into().map_err(io_err)?);
            if !range.contains(&index) {
                break;
            }
            out.push(from_wire(&value)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        read_meta(&self.db, "vote")
    }
}

impl RaftLogStorage<TypeConfig> for CatalogLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = read_meta(&self.db, "purged")?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        put_meta(&self.db, &mut batch, "vote", vote)?;
        self.write_synced(batch).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        put_meta(&self.db, &mut batch, "committed", &committed)?;
        // Not synced: a lost committed id is re-learned from the leader or the next commit.
        self.db.write(batch).map_err(io_err)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(read_meta::<Option<LogId>>(&self.db, "committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log = cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(log, entry.index().to_be_bytes(), to_wire(&entry)?);
        }
        // Readable now; durable once the syncer has fsynced the WAL.
        self.db.write(batch).map_err(io_err)?;
        self.syncer.after_sync(callback);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = match &last_log_id {
            Some(id) => id.index() + 1,
            None => 0,
        };
        let mut batch = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        batch.delete_range_cf(log, from.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(log, u64::MAX.to_be_bytes());
        self.write_synced(batch).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        // The purged id goes in the same batch: entries at or below it are never read again.
        put_meta(&self.db, &mut batch, "purged", &log_id)?;
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            0u64.to_be_bytes(),
            (log_id.index() + 1).to_be_bytes(),
        );
        self.db.write(batch).map_err(io_err)
    }
}
