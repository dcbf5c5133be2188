//! The catalog's state machine: applies each committed [`CatalogCommand`] to the `default`
//! column family, with the applied log id and membership in the same RocksDB write, so a
//! restart resumes exactly after the last applied entry.
//!
//! Snapshots are the whole key-value map (the catalog is metadata: megabytes, not the
//! stores' terabytes) at one applied index, kept in a file so a lagging or new MC can be sent
//! one after a restart. The state machine only takes a RocksDB checkpoint (hard links, after
//! a memtable flush) while applying is paused; reading and encoding it happens off the apply
//! path, so building a snapshot does not stall catalog writes.

use std::io::{self, Cursor};
use std::path::PathBuf;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, entry::RaftEntry};
use rocksdb::{DB, IteratorMode, WriteBatch};

use super::log_store::{put_meta, read_meta};
use super::types::{
    CatalogCommand, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, from_wire, io_err,
    to_wire,
};

pub struct CatalogStateMachine {
    db: Arc<DB>,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot_file: PathBuf,
}

/// All pairs of the catalog, in key order: a snapshot's data.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

impl CatalogStateMachine {
    pub fn open(db: Arc<DB>, snapshot_file: PathBuf) -> io::Result<Self> {
        let applied = read_meta(&db, "applied")?;
        let membership = read_meta(&db, "membership")?.unwrap_or_default();
        Ok(Self {
            db,
            applied,
            membership,
            snapshot_file,
        })
    }

    /// A point-in-time copy of the DB in a fresh directory next to the snapshot file.
    fn checkpoint(&self) -> io::Result<PathBuf> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .snapshot_file
            .with_extension(format!("checkpoint-{}-{seq}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(&dir))
            .map_err(io_err)?;
        Ok(dir)
    }

    /// Checkpoints left by a crash during a snapshot build.
    pub fn remove_stale_checkpoints(&self) {
        let (Some(dir), Some(stem)) = (
            self.snapshot_file.parent(),
            self.snapshot_file.file_stem().and_then(|s| s.to_str()),
        ) else {
            return;
        };
        let prefix = format!("{stem}.checkpoint-");
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let tmp = self.snapshot_file.with_extension("tmp");
        std::fs::write(&tmp, to_wire(&(meta, data))?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.snapshot_file)
    }
}

/// Every pair of the checkpoint's catalog, in key order; removes the checkpoint.
fn read_checkpoint(dir: &std::path::Path) -> io::Result<Pairs> {
    let pairs = {
        let db = DB::open_cf_for_read_only(&rocksdb::Options::default(), dir, ["default"], false)
            .map_err(io_err)?;
        db.iterator(IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io_err))
            .collect::<io::Result<Pairs>>()?
    };
    std::fs::remove_dir_all(dir)?;
    Ok(pairs)
}

pub struct CatalogSnapshotBuilder {
    meta: SnapshotMeta,
    /// The checkpoint taken at `meta.last_log_id`, or why there is none.
    checkpoint: Option<io::Result<PathBuf>>,
    snapshot_file: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for CatalogSnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let dir = self
            .checkpoint
            .take()
            .ok_or_else(|| io_err("snapshot builder used twice"))??;
        let pairs = tokio::task::spawn_blocking(move || read_checkpoint(&dir))
            .await
            .map_err(io_err)??;
        let data = to_wire(&pairs)?;
        let tmp = self.snapshot_file.with_extension("tmp");
        let (file, meta) = (self.snapshot_file.clone(), self.meta.clone());
        let bytes = to_wire(&(&meta, &data))?;
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::write(&tmp, bytes)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &file)
        })
        .await
        .map_err(io_err)??;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for CatalogStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = CatalogSnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(CatalogCommand::Write(write)) => {
                    for (key, value) in &write.ops {
                        match value {
                            Some(value) => batch.put(key, value),
                            None => batch.delete(key),
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m.clone());
                    put_meta(&self.db, &mut batch, "membership", &self.membership)?;
                }
            }
            self.applied = Some(log_id);
            if let Some(responder) = responder {
                responders.push(responder);
            }
        }
        put_meta(&self.db, &mut batch, "applied", &self.applied)?;
        // Not synced: the log is, and a lost tail of applies is replayed from it.
        self.db.write(batch).map_err(io_err)?;
        for responder in responders {
            responder.send(());
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        CatalogSnapshotBuilder {
            meta,
            // Taken now, while nothing else applies: the snapshot is exactly `applied`.
            checkpoint: Some(self.checkpoint()),
            snapshot_file: self.snapshot_file.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Cursor<Vec<u8>>,
    ) -> io::Result<()> {
        let data = snapshot.into_inner();
        let pairs: Pairs = from_wire(&data)?;
        let mut batch = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (key, _) = item.map_err(io_err)?;
            batch.delete(key);
        }
        for (key, value) in pairs {
            batch.put(key, value);
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        put_meta(&self.db, &mut batch, "applied", &self.applied)?;
        put_meta(&self.db, &mut batch, "membership", &self.membership)?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(io_err)?;
        self.save_snapshot(meta, &data)
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let bytes = match std::fs::read(&self.snapshot_file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let (meta, data): (SnapshotMeta, Vec<u8>) = from_wire(&bytes)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        }))
    }
}
