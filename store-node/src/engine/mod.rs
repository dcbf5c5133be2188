//! The store's one RocksDB instance and the few write helpers everything else shares.

pub mod keys;
pub mod size;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Result, StoreError};
pub use keys::{CF_DATA, CF_LOG, CF_META};

/// Shared handle to the store's RocksDB.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
    /// fsync the WAL on Raft log writes and votes. Off only in benchmarks that say so.
    sync: bool,
    /// The first write or sync that failed (a full disk, an I/O error). RocksDB stops taking
    /// writes after such an error, so the store can no longer do its job: it reports itself
    /// unhealthy and the MC repairs around it.
    failure: Arc<std::sync::Mutex<Option<String>>>,
}

/// An [`Engine`] that does not keep its DB open; see [`Engine::downgrade`].
pub struct WeakEngine {
    db: std::sync::Weak<DB>,
    sync: bool,
    failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl WeakEngine {
    /// The engine, while the store still holds it open.
    pub fn upgrade(&self) -> Option<Engine> {
        Some(Engine {
            db: self.db.upgrade()?,
            sync: self.sync,
            failure: self.failure.clone(),
        })
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.db.path())
            .field("sync", &self.sync)
            .finish()
    }
}

/// Incompressible test values from a xorshift state: LZ4 leaves them at their size, so a
/// test's size estimates count what it wrote.
#[cfg(test)]
pub(crate) fn noise(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state as u8
        })
        .collect()
}

impl Engine {
    pub fn open(path: &Path, sync: bool) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // Many RGs append concurrently; pipelined writes let their WAL syncs group.
        opts.set_enable_pipelined_write(true);
        let mut log_opts = Options::default();
        // Raft log entries are written once, read rarely, deleted in ranges.
        log_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let mut data_opts = Options::default();
        data_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_DATA, data_opts),
            ColumnFamilyDescriptor::new(CF_LOG, log_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Self {
            db: Arc::new(db),
            sync,
            failure: Arc::default(),
        })
    }

    /// A handle that does not keep the DB open, for detached threads: the DB must be closed
    /// by whoever drops the store, never by a thread still running while the process exits
    /// (RocksDB closing then locks statics already destroyed: "pthread lock: Invalid
    /// argument", SIGABRT).
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine {
            db: Arc::downgrade(&self.db),
            sync: self.sync,
            failure: self.failure.clone(),
        }
    }

    /// Why the store cannot write any more, once a write or an fsync failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("engine failure").clone()
    }

    fn failed<T>(&self, what: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            let mut failure = self.failure.lock().expect("engine failure");
            if failure.is_none() {
                tracing::error!(error = %e, "storage {what} failed: the store reports itself unhealthy");
                *failure = Some(format!("storage {what} failed: {e}"));
            }
        }
        result
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    pub fn sync(&self) -> bool {
        self.sync
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        // The three column families are created at open; a missing one is a programming error.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync && self.sync);
        let result = if crate::failpoint::hit("store.engine.write") {
            Err(StoreError::Io(std::io::Error::other(
                "injected write error",
            )))
        } else {
            self.db.write_opt(batch, &opts).map_err(StoreError::from)
        };
        self.failed("write", result)?;
        Ok(())
    }

    pub fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.db.get_pinned_cf(self.cf(CF_META), key)? {
            Some(bytes) => Ok(Some(codec::from_record(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn put_meta<T: Serialize>(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        value: &T,
    ) -> Result<()> {
        batch.put_cf(self.cf(CF_META), key, codec::to_record(value)?);
        Ok(())
    }

    /// Every `(key, value)` of the meta CF under `prefix`, decoded.
    pub fn scan_meta<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), codec::from_record(&value)?));
        }
        Ok(out)
    }

    /// The keys of the meta CF under `prefix`, in order, values not read.
    pub fn meta_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in iter {
            let (key, _) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(key.to_vec());
        }
        Ok(out)
    }

    /// Bytes and keys of user data in `[start, end)`, counted exactly. Used by tests and
    /// heartbeats of small regions; large ones use approximate sizes.
    pub fn count_range(&self, start: &[u8], end: &[u8]) -> Result<(u64, u64)> {
        let mut keys = 0;
        let mut bytes = 0;
        let iter = self.db.iterator_cf(
            self.cf(CF_DATA),
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !end.is_empty() && k.as_ref() >= end {
                break;
            }
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        Ok((keys, bytes))
    }

    /// The first key of `[start, end)` past half of its `total` bytes (as `count_range` counts
    /// them), if it is not the range's first key: a split key for a region small enough to
    /// scan, whose data may still sit in memtables that size estimates miss.
    pub fn middle_key(&self, start: &[u8], end: &[u8], total: u64) -> Result<Option<Vec<u8>>> {
        let iter = self.db.iterator_cf(
            self.cf(CF_DATA),
            IteratorMode::From(start, Direction::Forward),
        );
        let mut bytes = 0;
        for (n, item) in iter.enumerate() {
            let (k, v) = item?;
            if !end.is_empty() && k.as_ref() >= end {
                break;
            }
            if n > 0 && bytes >= total / 2 {
                return Ok(Some(k.to_vec()));
            }
            bytes += (k.len() + v.len()) as u64;
        }
        Ok(None)
    }

    /// Approximate on-disk bytes of user data in `[start, end)` (SST files and memtables).
    pub fn approximate_size(&self, start: &[u8], end: &[u8]) -> u64 {
        let end = if end.is_empty() {
            vec![0xff; 32]
        } else {
            end.to_vec()
        };
        let range = rocksdb::Range::new(start, &end);
        self.db
            .get_approximate_sizes_cf(self.cf(CF_DATA), &[range])
            .first()
            .copied()
            .unwrap_or(0)
    }

    pub fn flush_wal(&self) -> Result<()> {
        let result = if crate::failpoint::hit("store.wal.sync") {
            Err(StoreError::Io(std::io::Error::other(
                "injected fsync error",
            )))
        } else {
            self.db.flush_wal(true).map_err(StoreError::from)
        };
        self.failed("fsync", result)
    }
}
