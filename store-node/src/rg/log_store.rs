//! The Raft log of one RG replica, in the store's shared `raft_log` column family.
//!
//! Appends are written without waiting for the disk and made durable by the store-wide
//! [`WalSyncer`], which fsyncs once for every append that arrived meanwhile: with many RGs
//! appending at once, one fsync covers them all (group commit). openraft is told an append is
//! flushed only after that fsync.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, entry::RaftEntry};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::codec::{self, io_err};
use crate::engine::{CF_LOG, Engine, keys};
use crate::rg::types::{Entry, LogId, TypeConfig, Vote};

/// The store-wide group-commit syncer, shared by every RG (see `raftkit::wal`).
pub type WalSyncer = raftkit::wal::WalSyncer<TypeConfig>;

/// Fsyncs the store's WAL for waiting appends of any RG.
pub fn wal_syncer(engine: &Engine) -> WalSyncer {
    if !engine.sync() {
        return WalSyncer::unsynced();
    }
    // Weak: this detached thread must never be the one that closes the DB.
    let engine = engine.downgrade();
    WalSyncer::start("wal-sync", move || match engine.upgrade() {
        Some(engine) => engine.flush_wal().map_err(io_err),
        None => Err(io_err("the store is closed")),
    })
}

#[derive(Clone)]
pub struct RgLogStore {
    rg: u64,
    engine: Engine,
    syncer: WalSyncer,
}

impl RgLogStore {
    pub fn new(rg: u64, engine: Engine, syncer: WalSyncer) -> Self {
        Self { rg, engine, syncer }
    }

    fn read_record<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        self.engine
            .get_meta(&keys::rg_record(self.rg, name))
            .map_err(io_err)
    }

    async fn write_blocking(&self, batch: WriteBatch, sync: bool) -> io::Result<()> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.write(batch, sync))
            .await
            .map_err(io_err)?
            .map_err(io_err)
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let end = keys::log_key(self.rg, u64::MAX);
        let mut iter = self.engine.db().iterator_cf(
            self.engine.cf(CF_LOG),
            IteratorMode::From(&end, Direction::Reverse),
        );
        match iter.next() {
            Some(item) => {
                let (key, value) = item.map_err(io_err)?;
                if key[..8] != self.rg.to_be_bytes() {
                    return Ok(None);
                }
                let entry: Entry = codec::from_wire(&value).map_err(io_err)?;
                Ok(Some(entry.log_id()))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for RgLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let from = keys::log_key(self.rg, start);
        let iter = self.engine.db().iterator_cf(
            self.engine.cf(CF_LOG),
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(io_err)?;
            if key[..8] != self.rg.to_be_bytes() {
                break;
            }
            let index = keys::log_index(&key);
            if !range.contains(&index) {
                break;
            }
            out.push(codec::from_wire(&value).map_err(io_err)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_record("vote")
    }
}

impl RaftLogStorage<TypeConfig> for RgLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_record("purged")?;
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
        self.engine
            .put_meta(&mut batch, &keys::rg_record(self.rg, "vote"), vote)
            .map_err(io_err)?;
        self.write_blocking(batch, true).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        self.engine
            .put_meta(
                &mut batch,
                &keys::rg_record(self.rg, "committed"),
                &committed,
            )
            .map_err(io_err)?;
        // Not synced: a lost committed id is re-learned from the leader.
        self.engine.write(batch, false).map_err(io_err)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.read_record::<Option<LogId>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.engine.cf(CF_LOG);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = codec::to_wire(&entry).map_err(io_err)?;
            batch.put_cf(cf, keys::log_key(self.rg, entry.index()), value);
        }
        // Readable now; durable once the syncer has fsynced the WAL.
        self.engine.write(batch, false).map_err(io_err)?;
        self.syncer.after_sync(callback);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = match &last_log_id {
            Some(id) => id.index() + 1,
            None => 0,
        };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.engine.cf(CF_LOG),
            keys::log_key(self.rg, from),
            keys::log_key(self.rg, u64::MAX),
        );
        batch.delete_cf(self.engine.cf(CF_LOG), keys::log_key(self.rg, u64::MAX));
        self.write_blocking(batch, true).await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        // The purged id is written first in the same batch: entries at or below it are ignored.
        self.engine
            .put_meta(&mut batch, &keys::rg_record(self.rg, "purged"), &log_id)
            .map_err(io_err)?;
        batch.delete_range_cf(
            self.engine.cf(CF_LOG),
            keys::log_key(self.rg, 0),
            keys::log_key(self.rg, log_id.index() + 1),
        );
        self.write_blocking(batch, false).await
    }
}
