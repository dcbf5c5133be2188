//! Where one RG replica's Raft log lives: the store's shared `raft_log` column family under
//! the RG's prefix, its records among the RG's records in `meta` (the log store itself is
//! `raftkit::log_store`, shared with the MC). Appends are made durable by the store-wide
//! [`WalSyncer`]: with many RGs appending at once, one fsync covers them all.

use std::io;

use raftkit::log_store::LogSpace;
use rocksdb::WriteBatch;

use crate::codec::io_err;
use crate::engine::{CF_LOG, Engine, keys};
use crate::rg::types::TypeConfig;

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

/// The log of one RG replica.
pub type RgLogStore = raftkit::log_store::RocksLog<TypeConfig, RgLog>;

/// Makes the log store of replica `rg`.
pub fn rg_log_store(rg: u64, engine: Engine, syncer: WalSyncer) -> RgLogStore {
    RgLogStore::new(RgLog { rg, engine }, syncer)
}

#[derive(Clone)]
pub struct RgLog {
    rg: u64,
    engine: Engine,
}

impl LogSpace for RgLog {
    fn db(&self) -> &rocksdb::DB {
        self.engine.db()
    }

    fn log_cf(&self) -> &rocksdb::ColumnFamily {
        self.engine.cf(CF_LOG)
    }

    fn log_key(&self, index: u64) -> Vec<u8> {
        keys::log_key(self.rg, index).to_vec()
    }

    fn index_of(&self, key: &[u8]) -> Option<u64> {
        (key.len() == 16 && key[..8] == self.rg.to_be_bytes()).then(|| keys::log_index(key))
    }

    fn read_record<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        self.engine
            .get_meta(&keys::rg_record(self.rg, name))
            .map_err(io_err)
    }

    fn put_record<T: serde::Serialize>(
        &self,
        batch: &mut WriteBatch,
        name: &str,
        value: &T,
    ) -> io::Result<()> {
        self.engine
            .put_meta(batch, &keys::rg_record(self.rg, name), value)
            .map_err(io_err)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> io::Result<()> {
        self.engine.write(batch, sync).map_err(io_err)
    }
}
