//! The catalog on RocksDB. Writes are applied at once (visible to readers) and made durable by
//! one syncer thread that fsyncs the WAL for every writer waiting — concurrent jobs share an
//! fsync instead of queueing for their own (group commit).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use rocksdb::{DB, Direction, IteratorMode, Options, WriteOptions};
use tokio::sync::oneshot;

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};

pub struct RocksCatalog {
    db: Arc<DB>,
    syncer: Option<mpsc::Sender<oneshot::Sender<Result<()>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RocksCatalog {
    /// Stops the syncer and waits for it, so the DB is closed when this returns and can be
    /// reopened at once (a restart in the same process).
    fn drop(&mut self) {
        self.syncer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn err(e: impl std::fmt::Display) -> McError {
    McError::Catalog(e.to_string())
}

impl RocksCatalog {
    /// `sync: false` only for benchmarks that say so.
    pub fn open(path: &Path, sync: bool) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_enable_pipelined_write(true);
        let db = Arc::new(DB::open(&opts, path).map_err(err)?);
        let mut thread = None;
        let syncer = sync.then(|| {
            let (tx, rx) = mpsc::channel::<oneshot::Sender<Result<()>>>();
            let db = db.clone();
            thread = Some(
                std::thread::Builder::new()
                    .name("catalog-sync".into())
                    .spawn(move || {
                        while let Ok(first) = rx.recv() {
                            let mut waiters = vec![first];
                            waiters.extend(rx.try_iter());
                            let result = db.flush_wal(true).map_err(err);
                            for w in waiters {
                                let _ = w.send(result.clone());
                            }
                        }
                    })
                    .expect("spawn catalog-sync thread"),
            );
            tx
        });
        Ok(Self { db, syncer, thread })
    }
}

impl CatalogStore for RocksCatalog {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(key).map_err(err)
    }

    async fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut wb = rocksdb::WriteBatch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => wb.put(k, v),
                None => wb.delete(k),
            }
        }
        self.db
            .write_opt(wb, &WriteOptions::default())
            .map_err(err)?;
        let Some(syncer) = &self.syncer else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        syncer
            .send(tx)
            .map_err(|_| McError::Catalog("catalog syncer stopped".into()))?;
        rx.await
            .map_err(|_| McError::Catalog("catalog syncer stopped".into()))?
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(err)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
