//! Where the MC's Raft log lives in the catalog's RocksDB: column family `raft_log`, keyed by
//! the big-endian index, with its vote, purge and commit records in `raft_meta` (the log store
//! itself is `raftkit::log_store`, shared with the stores' RGs). Under load openraft hands
//! over many entries per append, so one fsync covers many job updates (group commit).

use std::io;
use std::sync::Arc;

use raftkit::log_store::LogSpace;
use rocksdb::{DB, WriteBatch, WriteOptions};

use super::types::{TypeConfig, from_wire, io_err, to_wire};

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

/// The catalog group's log: alone in its column family, keyed by the big-endian index; its
/// records in `raft_meta`.
pub type CatalogLogStore = raftkit::log_store::RocksLog<TypeConfig, CatalogLog>;

#[derive(Clone)]
pub struct CatalogLog {
    db: Arc<DB>,
}

impl CatalogLog {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }
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

impl LogSpace for CatalogLog {
    fn db(&self) -> &DB {
        &self.db
    }

    fn log_cf(&self) -> &rocksdb::ColumnFamily {
        cf(&self.db, CF_LOG)
    }

    fn log_key(&self, index: u64) -> Vec<u8> {
        index.to_be_bytes().to_vec()
    }

    fn index_of(&self, key: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(key.try_into().ok()?))
    }

    fn read_record<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        read_meta(&self.db, name)
    }

    fn put_record<T: serde::Serialize>(
        &self,
        batch: &mut WriteBatch,
        name: &str,
        value: &T,
    ) -> io::Result<()> {
        put_meta(&self.db, batch, name, value)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> io::Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(batch, &opts).map_err(io_err)
    }
}
