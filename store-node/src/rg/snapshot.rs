//! Snapshots of one RG: the RG's regions and every user key in their ranges, taken from a
//! point-in-time RocksDB snapshot and written as one SST file, so a snapshot of any size is
//! built, sent and installed without being held in memory. The receiver ingests the SST.
//!
//! On disk: `{snapshot_root}/{rg}/{snapshot_id}/meta.json` and, unless the RG holds no keys,
//! `data.sst`. Installing is crash-safe: an `installing` record is written before anything is
//! touched and cleared after the SST is ingested; a replica that starts with it set redoes the
//! install from the saved files before it serves.

use std::io;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::RaftSnapshotBuilder;
use rocksdb::{
    DB, IngestExternalFileOptions, Options, ReadOptions, SnapshotWithThreadMode, SstFileWriter,
    WriteBatch,
};
use serde::{Deserialize, Serialize};

use crate::codec::io_err;
use crate::engine::{CF_DATA, CF_META, Engine, keys};
use crate::rg::state_machine::{RgEvent, RgStateMachine, delete_region_data};
use crate::rg::types::{LogId, RegionMeta, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// A snapshot on disk, as openraft passes it between the state machine and the network.
#[derive(Debug, Clone)]
pub struct SnapshotHandle {
    pub dir: PathBuf,
}

impl SnapshotHandle {
    pub fn meta_path(&self) -> PathBuf {
        self.dir.join("meta.json")
    }
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data.sst")
    }
    pub fn read_meta(&self) -> io::Result<SnapshotFileMeta> {
        let bytes = std::fs::read(self.meta_path())?;
        serde_json::from_slice(&bytes).map_err(io_err)
    }
}

/// `meta.json`: what a snapshot holds besides user data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotFileMeta {
    /// Names the snapshot's directory; unique per build.
    pub snapshot_id: String,
    pub meta: SnapshotMeta,
    pub regions: Vec<RegionMeta>,
    pub conf_ver: u64,
    pub keys: u64,
    pub data_bytes: u64,
    /// The RG's last SplitRgs: a member that catches up by this snapshot past one of them
    /// joins the new RG (which then sends it a snapshot of its own).
    #[serde(default)]
    pub splits: Vec<crate::rg::state_machine::SplitRecord>,
}

/// A RocksDB snapshot that owns a reference to its DB, so it can outlive the state machine's
/// borrow and be read on a blocking thread while the RG keeps applying.
pub struct OwnedSnapshot {
    snap: ManuallyDrop<SnapshotWithThreadMode<'static, DB>>,
    _db: Arc<DB>,
}

impl OwnedSnapshot {
    pub fn new(db: Arc<DB>) -> Self {
        let snap = db.snapshot();
        // SAFETY: the snapshot borrows the DB behind `_db`, an Arc this struct holds; the DB
        // cannot be dropped before `snap`, which `Drop` releases first.
        let snap: SnapshotWithThreadMode<'static, DB> = unsafe { std::mem::transmute(snap) };
        Self {
            snap: ManuallyDrop::new(snap),
            _db: db,
        }
    }
}

impl Drop for OwnedSnapshot {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, while `_db` is still alive.
        unsafe { ManuallyDrop::drop(&mut self.snap) }
    }
}

static SNAPSHOT_SEQ: AtomicU64 = AtomicU64::new(0);

pub fn rg_snapshot_dir(root: &Path, rg: u64) -> PathBuf {
    root.join(rg.to_string())
}

pub struct RgSnapshotBuilder {
    rg: u64,
    engine: Engine,
    view: Option<OwnedSnapshot>,
    applied: Option<LogId>,
    membership: StoredMembership,
    conf_ver: u64,
    regions: Vec<RegionMeta>,
    splits: Vec<crate::rg::state_machine::SplitRecord>,
    root: PathBuf,
}

impl RgSnapshotBuilder {
    /// Captures the state machine as it is now; the expensive part runs in `build_snapshot`.
    pub fn new(sm: &RgStateMachine) -> Self {
        let engine = sm.ctx.engine.clone();
        Self {
            rg: sm.rg,
            view: Some(OwnedSnapshot::new(engine.db().clone())),
            engine,
            applied: sm.applied,
            membership: sm.membership.clone(),
            conf_ver: sm.conf_ver,
            regions: sm.regions.values().cloned().collect(),
            splits: sm.splits.clone(),
            root: sm.ctx.snapshot_root.clone(),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for RgSnapshotBuilder {
    type SnapshotData = SnapshotHandle;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let view = self
            .view
            .take()
            .ok_or_else(|| io_err("snapshot builder used twice"))?;
        let engine = self.engine.clone();
        let seq = SNAPSHOT_SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let snapshot_id = match &self.applied {
            Some(log_id) => format!(
                "{}-{}-{nanos}-{seq}",
                log_id.committed_leader_id(),
                log_id.index()
            ),
            None => format!("none-{nanos}-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        let mut regions = self.regions.clone();
        regions.sort_by(|a, b| a.start.cmp(&b.start));
        let (rg, conf_ver, root) = (self.rg, self.conf_ver, self.root.clone());
        let splits = self.splits.clone();
        let meta_for_file = meta.clone();
        let id = snapshot_id;
        let handle = tokio::task::spawn_blocking(move || -> io::Result<SnapshotHandle> {
            // The applied state this snapshot describes must be durable before openraft purges
            // the log entries it replaces.
            engine.flush_wal().map_err(io_err)?;
            let rg_dir = rg_snapshot_dir(&root, rg);
            let tmp = rg_dir.join(format!("tmp-{id}"));
            std::fs::create_dir_all(&tmp)?;
            let (keys, data_bytes) = write_sst(&engine, &view, &regions, &tmp.join("data.sst"))?;
            drop(view);
            let file_meta = SnapshotFileMeta {
                snapshot_id: id.clone(),
                meta: meta_for_file,
                regions,
                conf_ver,
                keys,
                data_bytes,
                splits,
            };
            std::fs::write(
                tmp.join("meta.json"),
                serde_json::to_vec(&file_meta).map_err(io_err)?,
            )?;
            let dir = rg_dir.join(&id);
            std::fs::rename(&tmp, &dir)?;
            // A snapshot received meanwhile may be newer than this build (it started before the
            // install): that one stays current, and its files stay.
            let current: Option<String> = engine
                .get_meta(&keys::rg_record(rg, "snapshot"))
                .map_err(io_err)?;
            if current.as_deref().is_none_or(|c| !newer(c, &id)) {
                let mut batch = WriteBatch::default();
                engine
                    .put_meta(&mut batch, &keys::rg_record(rg, "snapshot"), &id)
                    .map_err(io_err)?;
                engine.write(batch, true).map_err(io_err)?;
            }
            remove_other_snapshots(&rg_dir, &id);
            Ok(SnapshotHandle { dir })
        })
        .await
        .map_err(io_err)??;
        Ok(Snapshot {
            meta,
            snapshot: handle,
        })
    }
}

/// Writes every user key of `regions` (sorted by start) from `view` into one SST file.
fn write_sst(
    engine: &Engine,
    view: &OwnedSnapshot,
    regions: &[RegionMeta],
    path: &Path,
) -> io::Result<(u64, u64)> {
    let opts = Options::default();
    let mut writer = SstFileWriter::create(&opts);
    writer.open(path).map_err(io_err)?;
    let (mut keys, mut bytes) = (0u64, 0u64);
    for region in regions {
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(region.start.clone());
        if !region.end.is_empty() {
            read.set_iterate_upper_bound(region.end.clone());
        }
        let iter =
            view.snap
                .iterator_cf_opt(engine.cf(CF_DATA), read, rocksdb::IteratorMode::Start);
        for item in iter {
            let (k, v) = item.map_err(io_err)?;
            writer.put(&k, &v).map_err(io_err)?;
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
        }
    }
    if keys > 0 {
        writer.finish().map_err(io_err)?;
    } else {
        drop(writer);
        let _ = std::fs::remove_file(path);
    }
    Ok((keys, bytes))
}

/// Removes the snapshots older than `keep` (and unfinished builds). A newer one — received
/// and being installed while an older build finished — stays: removing it under the install
/// failed the ingest and stopped the RG.
fn remove_other_snapshots(rg_dir: &Path, keep: &str) {
    if let Ok(entries) = std::fs::read_dir(rg_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            // `tmp-…` is a build in progress (or left by a crash: the store clears those when
            // it opens): removing it under the build stops the RG.
            if name != keep && !newer(&name, keep) && !name.starts_with("tmp-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Whether snapshot `a` describes a later state than `b`: ids start with the last log id's
/// term and index (`{term}-{index}-…`).
fn newer(a: &str, b: &str) -> bool {
    let order = |id: &str| {
        let mut parts = id.split('-');
        let term = parts.next()?.parse::<u64>().ok()?;
        let index = parts.next()?.parse::<u64>().ok()?;
        Some((term, index))
    };
    match (order(a), order(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// The RG's current snapshot, if one was built or installed and its files are intact.
pub fn current(sm: &RgStateMachine) -> io::Result<Option<Snapshot>> {
    let engine = &sm.ctx.engine;
    let Some(id) = engine
        .get_meta::<String>(&keys::rg_record(sm.rg, "snapshot"))
        .map_err(io_err)?
    else {
        return Ok(None);
    };
    let handle = SnapshotHandle {
        dir: rg_snapshot_dir(&sm.ctx.snapshot_root, sm.rg).join(id),
    };
    match handle.read_meta() {
        Ok(file_meta) => Ok(Some(Snapshot {
            meta: file_meta.meta,
            snapshot: handle,
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the RG's state with a received snapshot.
pub async fn install(
    sm: &mut RgStateMachine,
    meta: &SnapshotMeta,
    handle: SnapshotHandle,
) -> io::Result<()> {
    let engine = sm.ctx.engine.clone();
    let file_meta = handle.read_meta()?;
    if file_meta.meta.last_log_id != meta.last_log_id {
        return Err(io_err(
            "snapshot files do not match the snapshot being installed",
        ));
    }
    let snapshot_id = file_meta.snapshot_id;
    let rg_dir = rg_snapshot_dir(&sm.ctx.snapshot_root, sm.rg);
    std::fs::create_dir_all(&rg_dir)?;
    let dir = rg_dir.join(&snapshot_id);
    if handle.dir != dir {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&handle.dir, &dir)?;
    }
    let mut batch = WriteBatch::default();
    engine
        .put_meta(
            &mut batch,
            &keys::rg_record(sm.rg, "snapshot"),
            &snapshot_id,
        )
        .map_err(io_err)?;
    engine
        .put_meta(&mut batch, &keys::rg_record(sm.rg, "installing"), &true)
        .map_err(io_err)?;
    engine.write(batch, true).map_err(io_err)?;
    apply_snapshot_files(sm, &SnapshotHandle { dir: dir.clone() }).await?;
    remove_other_snapshots(&rg_dir, &snapshot_id);
    Ok(())
}

/// True when a snapshot install was interrupted; `redo_install` must run before serving.
pub fn install_interrupted(engine: &Engine, rg: u64) -> crate::error::Result<bool> {
    Ok(engine
        .get_meta::<bool>(&keys::rg_record(rg, "installing"))?
        .unwrap_or(false))
}

/// Finishes an interrupted install from the snapshot files saved before it started.
pub async fn redo_install(sm: &mut RgStateMachine) -> io::Result<()> {
    let engine = sm.ctx.engine.clone();
    let id = engine
        .get_meta::<String>(&keys::rg_record(sm.rg, "snapshot"))
        .map_err(io_err)?
        .ok_or_else(|| io_err("interrupted install without a saved snapshot"))?;
    let handle = SnapshotHandle {
        dir: rg_snapshot_dir(&sm.ctx.snapshot_root, sm.rg).join(id),
    };
    apply_snapshot_files(sm, &handle).await
}

/// Deletes the RG's data and regions, writes the snapshot's, ingests its SST, then clears the
/// `installing` record. Idempotent, so an interrupted run is simply run again.
async fn apply_snapshot_files(sm: &mut RgStateMachine, handle: &SnapshotHandle) -> io::Result<()> {
    let file_meta = handle.read_meta()?;
    let engine = sm.ctx.engine.clone();
    let rg = sm.rg;
    let old_regions: Vec<RegionMeta> = sm.regions.values().cloned().collect();
    let new_regions = file_meta.regions.clone();
    let data_path = handle.data_path();
    let meta = file_meta.meta.clone();
    let conf_ver = file_meta.conf_ver;
    // Regions another RG on this store still holds came here by a MergeRg this replica did not
    // apply (it caught up by this snapshot): that RG gives them up, and is merged.
    let merged_from: Vec<(u64, u64)> = new_regions
        .iter()
        .filter_map(|r| {
            sm.ctx
                .regions
                .get(r.id)
                .filter(|e| e.rg_id != rg)
                .map(|e| (e.rg_id, r.id))
        })
        .collect();
    // SplitRgs after what this replica had applied, that it was a member for: it joins their
    // new RGs, empty (their leaders send snapshots), since it never applied the split.
    let me = sm.ctx.store_id.load(std::sync::atomic::Ordering::Acquire);
    let before = sm.applied.as_ref().map(|l| l.index());
    let joins: Vec<u64> = file_meta
        .splits
        .iter()
        .filter(|s| before.is_none_or(|b| s.index > b) && s.members.contains(&me))
        // Merged back since: a region it took is the parent's again.
        .filter(|s| {
            !s.regions
                .iter()
                .any(|r| new_regions.iter().any(|x| x.id == *r))
        })
        .map(|s| s.new_rg)
        .filter(|new_rg| {
            engine
                .get_meta::<crate::rg::types::ReplicaMeta>(&keys::hosted_key(*new_rg))
                .ok()
                .flatten()
                .is_none()
        })
        .collect();
    let (merged, joined) = (merged_from.clone(), joins.clone());
    let splits = file_meta.splits.clone();
    let (ctx, registered) = (sm.ctx.clone(), file_meta.regions.clone());
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        // From the first delete to the regions registered, no destroy decides which ranges
        // are free (see `SmContext::ranges`).
        let _ranges = ctx.ranges.blocking_lock();
        // A destroy that ran first (the replica removed while its snapshot was on the way:
        // shutting the group down does not stop its state machine's current command) has
        // freed these ranges; installing now would bring the replica's regions back.
        if engine
            .get_meta::<crate::rg::types::ReplicaMeta>(&keys::hosted_key(rg))
            .map_err(io_err)?
            .is_none()
        {
            return Err(io_err(format!(
                "RG {rg} was destroyed on this store; its snapshot is not installed"
            )));
        }
        let mut batch = WriteBatch::default();
        for region in old_regions.iter().chain(new_regions.iter()) {
            delete_region_data(&engine, &mut batch, region);
        }
        for (source, region) in &merged {
            batch.delete_cf(engine.cf(CF_META), keys::region_key(*source, *region));
        }
        for new_rg in &joined {
            engine
                .put_meta(
                    &mut batch,
                    &keys::hosted_key(*new_rg),
                    &crate::rg::types::ReplicaMeta {
                        rg_id: *new_rg,
                        offline: false,
                    },
                )
                .map_err(io_err)?;
        }
        engine
            .put_meta(&mut batch, &keys::rg_record(rg, "splits"), &splits)
            .map_err(io_err)?;
        let prefix = keys::region_prefix(rg);
        batch.delete_range_cf(engine.cf(CF_META), &prefix, &keys::prefix_end(&prefix));
        for region in &new_regions {
            engine
                .put_meta(&mut batch, &keys::region_key(rg, region.id), region)
                .map_err(io_err)?;
        }
        engine
            .put_meta(
                &mut batch,
                &keys::rg_record(rg, "applied"),
                &meta.last_log_id,
            )
            .map_err(io_err)?;
        engine
            .put_meta(
                &mut batch,
                &keys::rg_record(rg, "membership"),
                &meta.last_membership,
            )
            .map_err(io_err)?;
        engine
            .put_meta(&mut batch, &keys::rg_record(rg, "conf_ver"), &conf_ver)
            .map_err(io_err)?;
        engine.write(batch, true).map_err(io_err)?;
        if data_path.exists() {
            // Ingest a hard link, moved into the DB: no copy of the data. The snapshot's own
            // name stays, so the file remains this RG's current snapshot for its followers;
            // both names share one immutable inode.
            let link = data_path.with_extension("ingest.sst");
            let _ = std::fs::remove_file(&link);
            std::fs::hard_link(&data_path, &link)?;
            let mut opts = IngestExternalFileOptions::default();
            opts.set_move_files(true);
            engine
                .db()
                .ingest_external_file_cf_opts(engine.cf(CF_DATA), &opts, vec![&link])
                .map_err(io_err)?;
            let _ = std::fs::remove_file(&link);
        }
        // The snapshot's data is in, its regions not yet known to the store's registry.
        crate::failpoint::hit("store.snapshot.ingested");
        ctx.regions.remove_rg(rg);
        for region in registered {
            ctx.regions.upsert(rg, region);
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(engine.cf(CF_META), keys::rg_record(rg, "installing"));
        engine.write(batch, true).map_err(io_err)
    })
    .await
    .map_err(io_err)??;
    sm.regions = file_meta
        .regions
        .iter()
        .map(|r| (r.id, r.clone()))
        .collect();
    sm.applied = file_meta.meta.last_log_id;
    sm.membership = file_meta.meta.last_membership.clone();
    sm.conf_ver = file_meta.conf_ver;
    sm.splits = file_meta.splits.clone();
    sm.publish_applied_index();
    let sources: std::collections::BTreeSet<u64> = merged_from.iter().map(|(s, _)| *s).collect();
    for source in sources {
        tracing::warn!(rg, source, "snapshot carried a merge this replica missed");
        // Index 0: this replica's state already comes from a snapshot past the merge.
        let _ = sm.ctx.events.send(RgEvent::Merged {
            source,
            target: rg,
            index: 0,
        });
    }
    for new_rg in joins {
        tracing::warn!(
            rg,
            new_rg,
            "snapshot carried a split this replica missed; joining"
        );
        let _ = sm.ctx.events.send(RgEvent::Split {
            parent: rg,
            new_rg,
            index: 0,
        });
    }
    Ok(())
}
