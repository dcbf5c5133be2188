//! A Raft log in RocksDB, for any group: entries in a column family under keys that sort by
//! index, the vote and the purged and committed ids as records of the group. Where the keys
//! and records live is the group's [`LogSpace`]: the MC's catalog keeps its log alone in a
//! column family, a store keeps every RG's log in one, each under its RG's prefix.
//!
//! Appends are written without waiting for the disk and made durable by the [`WalSyncer`],
//! which fsyncs once for every append that arrived meanwhile (group commit); openraft is told
//! an append is flushed only after that fsync. A vote and a truncation are synced before they
//! are acknowledged.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftTypeConfig};
use rocksdb::{ColumnFamily, DB, Direction, IteratorMode, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wal::WalSyncer;
use crate::wire::{from_wire, io_err, to_wire};

/// Where one group's log lives.
pub trait LogSpace: Clone + Send + Sync + 'static {
    fn db(&self) -> &DB;
    fn log_cf(&self) -> &ColumnFamily;
    /// The key of this group's entry at `index`; keys sort by index.
    fn log_key(&self, index: u64) -> Vec<u8>;
    /// The index a key names, or None if it is not this group's.
    fn index_of(&self, key: &[u8]) -> Option<u64>;
    /// A record of this group (`vote`, `purged`, `committed`).
    fn read_record<T: DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>>;
    fn put_record<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        name: &str,
        value: &T,
    ) -> io::Result<()>;
    /// Writes `batch`, waiting for the disk if `sync`. Blocks.
    fn write(&self, batch: WriteBatch, sync: bool) -> io::Result<()>;
}

/// The Raft log of one group.
pub struct RocksLog<C: RaftTypeConfig, S> {
    space: S,
    syncer: WalSyncer<C>,
}

impl<C: RaftTypeConfig, S: Clone> Clone for RocksLog<C, S> {
    fn clone(&self) -> Self {
        Self {
            space: self.space.clone(),
            syncer: self.syncer.clone(),
        }
    }
}

impl<C, S> RocksLog<C, S>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
    S: LogSpace,
{
    pub fn new(space: S, syncer: WalSyncer<C>) -> Self {
        Self { space, syncer }
    }

    async fn write_blocking(&self, batch: WriteBatch, sync: bool) -> io::Result<()> {
        let space = self.space.clone();
        tokio::task::spawn_blocking(move || space.write(batch, sync))
            .await
            .map_err(io_err)?
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogIdOf<C>>> {
        let end = self.space.log_key(u64::MAX);
        let mut iter = self.space.db().iterator_cf(
            self.space.log_cf(),
            IteratorMode::From(&end, Direction::Reverse),
        );
        match iter.next() {
            Some(item) => {
                let (key, value) = item.map_err(io_err)?;
                if self.space.index_of(&key).is_none() {
                    return Ok(None);
                }
                let entry: C::Entry = from_wire(&value)?;
                Ok(Some(entry.log_id()))
            }
            None => Ok(None),
        }
    }
}

impl<C, S> RaftLogReader<C> for RocksLog<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    S: LogSpace,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<C::Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let from = self.space.log_key(start);
        let iter = self.space.db().iterator_cf(
            self.space.log_cf(),
            IteratorMode::From(&from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(io_err)?;
            let Some(index) = self.space.index_of(&key) else {
                break;
            };
            if !range.contains(&index) {
                break;
            }
            out.push(from_wire(&value)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        self.space.read_record("vote")
    }
}

impl<C, S> RaftLogStorage<C> for RocksLog<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    VoteOf<C>: Serialize + DeserializeOwned,
    LogIdOf<C>: Serialize + DeserializeOwned,
    S: LogSpace,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<C>> {
        let last_purged_log_id: Option<LogIdOf<C>> = self.space.read_record("purged")?;
        let last_log_id = self
            .last_entry_log_id()?
            .or_else(|| last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        self.space.put_record(&mut batch, "vote", vote)?;
        self.write_blocking(batch, true).await
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        self.space.put_record(&mut batch, "committed", &committed)?;
        // Not synced: a lost committed id is re-learned from the leader or the next commit.
        self.space.write(batch, false)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<C>>> {
        Ok(self
            .space
            .read_record::<Option<LogIdOf<C>>>("committed")?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> io::Result<()>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.space.log_cf();
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, self.space.log_key(entry.index()), to_wire(&entry)?);
        }
        // Readable now; durable once the syncer has fsynced the WAL.
        self.space.write(batch, false)?;
        self.syncer.after_sync(callback);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> io::Result<()> {
        let from = match &last_log_id {
            Some(id) => id.index() + 1,
            None => 0,
        };
        let mut batch = WriteBatch::default();
        let cf = self.space.log_cf();
        batch.delete_range_cf(cf, self.space.log_key(from), self.space.log_key(u64::MAX));
        batch.delete_cf(cf, self.space.log_key(u64::MAX));
        self.write_blocking(batch, true).await
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> io::Result<()> {
        let mut batch = WriteBatch::default();
        // The purged id goes in the same batch: entries at or below it are never read again.
        self.space.put_record(&mut batch, "purged", &log_id)?;
        batch.delete_range_cf(
            self.space.log_cf(),
            self.space.log_key(0),
            self.space.log_key(log_id.index() + 1),
        );
        self.write_blocking(batch, false).await
    }
}
