//! The state machine of one RG replica: user data (shared `default` CF) plus the RG's region
//! metadata, applied from the Raft log. Every entry's effects and the applied log id are
//! written in one RocksDB write batch, so no crash separates a data write from its
//! applied-index update.

mod split_merge;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, entry::RaftEntry};
use rocksdb::WriteBatch;
use tokio::sync::{mpsc, watch};

use crate::codec::io_err;
use crate::engine::{CF_DATA, CF_META, Engine, keys};
use crate::rg::region_index::RegionIndex;
use crate::rg::snapshot::{RgSnapshotBuilder, SnapshotHandle};
use crate::rg::types::{
    LogId, Op, RegionMeta, Rejection, ReplicaMeta, RgCommand, RgResponse, StoredMembership,
    TypeConfig,
};

/// The largest key a bounded delete reaches for a region with no end. User keys are encoded
/// object keys (topology crate) and never start with 0xff 0xff.
pub const MAX_KEY: &[u8] = &[0xff; 16];

/// What a state machine tells its store after applying an entry that changes the set of RGs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RgEvent {
    /// `new_rg` now exists on this store (from a SplitRg applied in `parent` at `index`).
    Split {
        parent: u64,
        new_rg: u64,
        index: u64,
    },
    /// Every region of `source` moved into `target` at `index`; the source replica must stop.
    Merged {
        source: u64,
        target: u64,
        index: u64,
    },
}

impl RgEvent {
    /// The RG whose log holds the entry and the entry's index. A member that joins later and
    /// replays the log past it would apply the split or merge without the data it needs (a
    /// merge without a source replica): the RG snapshots at or after the index, so a joiner
    /// gets a snapshot that already holds the effect, never the entry.
    pub fn logged_at(&self) -> (u64, u64) {
        match self {
            RgEvent::Split { parent, index, .. } => (*parent, *index),
            RgEvent::Merged { target, index, .. } => (*target, *index),
        }
    }
}

/// What every RG state machine of a store shares.
pub struct SmContext {
    pub engine: Engine,
    pub regions: Arc<RegionIndex>,
    pub events: mpsc::UnboundedSender<RgEvent>,
    pub snapshot_root: PathBuf,
    /// Last applied index per RG, so MergeRg can wait for the local source to catch up.
    pub applied: std::sync::Mutex<std::collections::HashMap<u64, watch::Sender<u64>>>,
    /// This store's id (0 until the MC assigns one).
    pub store_id: std::sync::atomic::AtomicU64,
    /// Held while key ranges change hands on this store outside the Raft apply order: a
    /// snapshot install (data ingested, then its regions registered) and a replica's destroy
    /// (the ranges no other RG holds, then their data deleted).
    pub ranges: tokio::sync::Mutex<()>,
}

impl SmContext {
    pub fn applied_watch(&self, rg: u64) -> watch::Receiver<u64> {
        let mut map = self.applied.lock().expect("applied map lock");
        map.entry(rg)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn publish_applied(&self, rg: u64, index: u64) {
        let mut map = self.applied.lock().expect("applied map lock");
        map.entry(rg)
            .or_insert_with(|| watch::channel(0).0)
            .send_replace(index);
    }
}

pub struct RgStateMachine {
    pub(crate) rg: u64,
    pub(crate) ctx: Arc<SmContext>,
    pub(crate) applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    pub(crate) conf_ver: u64,
    pub(crate) regions: BTreeMap<u64, RegionMeta>,
    /// The last SplitRgs applied here, so a snapshot tells a member that missed one (it caught
    /// up by snapshot past the split) to join the new RG.
    pub(crate) splits: Vec<SplitRecord>,
    /// The index of the entry being applied.
    applying: u64,
}

/// One SplitRg, as a snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitRecord {
    /// Log index of the SplitRg entry in the parent.
    pub index: u64,
    pub new_rg: u64,
    /// The parent's members when it split: the new RG's initial members.
    pub members: Vec<u64>,
    /// The regions that moved to the new RG. One of them back in the parent means the new
    /// RG was merged back since: a lagging member must not join it then.
    #[serde(default)]
    pub regions: Vec<u64>,
}

/// Splits remembered per RG: a member lagging further behind than this many splits is repaired
/// by the MC (its replica of a new RG is missing), not by the snapshot.
const SPLITS_KEPT: usize = 64;

impl RgStateMachine {
    /// Loads the replica's applied state and regions from RocksDB.
    pub fn open(rg: u64, ctx: Arc<SmContext>) -> crate::error::Result<Self> {
        let engine = &ctx.engine;
        let applied = engine
            .get_meta::<Option<LogId>>(&keys::rg_record(rg, "applied"))?
            .flatten();
        let membership = engine
            .get_meta(&keys::rg_record(rg, "membership"))?
            .unwrap_or_default();
        let conf_ver = engine
            .get_meta(&keys::rg_record(rg, "conf_ver"))?
            .unwrap_or(0);
        let regions: BTreeMap<u64, RegionMeta> = engine
            .scan_meta::<RegionMeta>(&keys::region_prefix(rg))?
            .into_iter()
            .map(|(_, r)| (r.id, r))
            .collect();
        for region in regions.values() {
            ctx.regions.upsert(rg, region.clone());
        }
        let splits = engine
            .get_meta(&keys::rg_record(rg, "splits"))?
            .unwrap_or_default();
        ctx.publish_applied(rg, applied.as_ref().map(|l| l.index()).unwrap_or(0));
        Ok(Self {
            rg,
            ctx,
            applied,
            membership,
            conf_ver,
            regions,
            splits,
            applying: 0,
        })
    }

    pub fn conf_ver(&self) -> u64 {
        self.conf_ver
    }

    fn engine(&self) -> &Engine {
        &self.ctx.engine
    }

    /// The region `id` at epoch version `expected`, or why not. Every region command and write
    /// starts here, so a command proposed against an older shape changes nothing.
    fn region_at(&self, id: u64, expected: u64) -> Result<RegionMeta, Rejection> {
        let region = self
            .regions
            .get(&id)
            .ok_or(Rejection::RegionNotFound { region_id: id })?;
        if region.version != expected {
            return Err(Rejection::EpochMismatch {
                region_id: id,
                request_version: expected,
                current_version: region.version,
            });
        }
        Ok(region.clone())
    }

    /// Applies one command to the batch and to `self.regions`; returns what changed.
    async fn apply_command(
        &mut self,
        cmd: &RgCommand,
        batch: &mut WriteBatch,
        changed: &mut Vec<Change>,
    ) -> io::Result<RgResponse> {
        let engine = self.engine().clone();
        let rejected = |r: Rejection| {
            Ok(RgResponse {
                rejected: Some(r),
                regions: vec![],
            })
        };
        match cmd {
            RgCommand::Write {
                region_id,
                version,
                ops,
            } => {
                let region = match self.region_at(*region_id, *version) {
                    Ok(region) => region,
                    Err(r) => return rejected(r),
                };
                if let Some(op) = ops.iter().find(|op| !region.contains(op.key())) {
                    return rejected(Rejection::KeyNotInRegion {
                        region_id: *region_id,
                        key: op.key().to_vec(),
                        start: region.start.clone(),
                        end: region.end.clone(),
                    });
                }
                let cf = engine.cf(CF_DATA);
                for op in ops {
                    match op {
                        Op::Put { key, value } => batch.put_cf(cf, key, value),
                        Op::Delete { key } => batch.delete_cf(cf, key),
                    }
                }
                // The region's data changed on this replica: its last measure is stale.
                self.ctx.regions.count_write(*region_id);
                Ok(RgResponse::default())
            }
            RgCommand::CreateRegion { region } => {
                if let Some(existing) = self.regions.get(&region.id) {
                    if existing == region {
                        return Ok(RgResponse {
                            rejected: None,
                            regions: vec![existing.clone()],
                        });
                    }
                    return rejected(Rejection::Invalid {
                        reason: format!("region {} exists with another range", region.id),
                    });
                }
                if !region.end.is_empty() && region.end <= region.start {
                    return rejected(Rejection::Invalid {
                        reason: "region end must be after start".into(),
                    });
                }
                if let Some(other) = self.regions.values().find(|r| r.overlaps(region)) {
                    return rejected(Rejection::Invalid {
                        reason: format!("range overlaps region {}", other.id),
                    });
                }
                self.put_region(batch, region.clone(), changed)?;
                Ok(RgResponse {
                    rejected: None,
                    regions: vec![region.clone()],
                })
            }
            RgCommand::CreateRegions { regions } => {
                if let Err(reason) = self.check_new_regions(regions) {
                    return rejected(Rejection::Invalid { reason });
                }
                for region in regions {
                    if !self.regions.contains_key(&region.id) {
                        self.put_region(batch, region.clone(), changed)?;
                    }
                }
                Ok(RgResponse {
                    rejected: None,
                    regions: regions.clone(),
                })
            }
            RgCommand::SplitRegion {
                region_id,
                split_key,
                new_region_id,
                expected_version,
            } => {
                let region = match self.region_at(*region_id, *expected_version) {
                    Ok(region) => region,
                    Err(r) => return rejected(r),
                };
                if split_key.as_slice() <= region.start.as_slice() || !region.contains(split_key) {
                    return rejected(Rejection::Invalid {
                        reason: "split key must lie strictly inside the region".into(),
                    });
                }
                if self.regions.contains_key(new_region_id) {
                    return rejected(Rejection::Invalid {
                        reason: format!("region {new_region_id} exists"),
                    });
                }
                let version = region.version + 1;
                let left = RegionMeta {
                    end: split_key.clone(),
                    version,
                    ..region.clone()
                };
                let right = RegionMeta {
                    id: *new_region_id,
                    start: split_key.clone(),
                    version,
                    ..region
                };
                self.put_region(batch, left.clone(), changed)?;
                self.put_region(batch, right.clone(), changed)?;
                Ok(RgResponse {
                    rejected: None,
                    regions: vec![left, right],
                })
            }
            RgCommand::MergeRegion {
                left_id,
                right_id,
                left_version,
                right_version,
            } => {
                let (left, right) = match (
                    self.region_at(*left_id, *left_version),
                    self.region_at(*right_id, *right_version),
                ) {
                    (Ok(left), Ok(right)) => (left, right),
                    (Err(r), _) | (_, Err(r)) => return rejected(r),
                };
                if left.end != right.start
                    || left.end.is_empty()
                    || left.object_id != right.object_id
                {
                    return rejected(Rejection::Invalid {
                        reason: "regions must be adjacent and of one object".into(),
                    });
                }
                let merged = RegionMeta {
                    end: right.end.clone(),
                    version: left.version.max(right.version) + 1,
                    ..left
                };
                self.remove_region(batch, right.id, changed);
                self.put_region(batch, merged.clone(), changed)?;
                Ok(RgResponse {
                    rejected: None,
                    regions: vec![merged],
                })
            }
            RgCommand::DeleteRegion {
                region_id,
                expected_version,
                delete_data,
            } => {
                let region = match self.region_at(*region_id, *expected_version) {
                    Ok(region) => region,
                    Err(r) => return rejected(r),
                };
                if *delete_data {
                    delete_region_data(&engine, batch, &region);
                }
                self.remove_region(batch, region.id, changed);
                Ok(RgResponse {
                    rejected: None,
                    regions: vec![],
                })
            }
            RgCommand::Bootstrap { regions } => {
                for region in regions {
                    if self
                        .regions
                        .values()
                        .any(|r| r.id != region.id && r.overlaps(region))
                    {
                        return rejected(Rejection::Invalid {
                            reason: format!("region {} overlaps", region.id),
                        });
                    }
                }
                for region in regions {
                    self.put_region(batch, region.clone(), changed)?;
                }
                Ok(RgResponse {
                    rejected: None,
                    regions: regions.clone(),
                })
            }
            RgCommand::SplitRg {
                new_rg_id,
                region_ids,
            } => self.apply_split_rg(*new_rg_id, region_ids, batch, changed),
            RgCommand::MergeRg {
                source_rg_id,
                source_applied_index,
            } => {
                self.apply_merge_rg(*source_rg_id, *source_applied_index, batch, changed)
                    .await
            }
            RgCommand::MergeRgChecked {
                source_rg_id,
                source_applied_index,
                members,
            } => {
                // The same membership on every replica at this index: the check is the same
                // everywhere. A member added since the MC planned the merge has no source
                // replica to take the data from.
                let mut now: Vec<u64> = self
                    .membership
                    .membership()
                    .nodes()
                    .map(|(id, _)| *id)
                    .collect();
                now.sort();
                let mut expected = members.clone();
                expected.sort();
                if now != expected {
                    return rejected(Rejection::Invalid {
                        reason: format!(
                            "MergeRg planned for members {expected:?}, the target has {now:?}"
                        ),
                    });
                }
                self.apply_merge_rg(*source_rg_id, *source_applied_index, batch, changed)
                    .await
            }
        }
    }

    /// Whether `new` can be added as a whole: each region either exists exactly so (a repeat)
    /// or has a proper range overlapping neither another new one nor an existing one. Sorted
    /// once, so a few thousand regions cost O(n log n), not O(n * existing).
    fn check_new_regions(&self, new: &[RegionMeta]) -> std::result::Result<(), String> {
        let mut fresh: Vec<&RegionMeta> = Vec::with_capacity(new.len());
        let mut ids = std::collections::HashSet::with_capacity(new.len());
        for region in new {
            if !ids.insert(region.id) {
                return Err(format!("region {} is listed twice", region.id));
            }
            match self.regions.get(&region.id) {
                Some(existing) if existing == region => continue,
                Some(_) => return Err(format!("region {} exists with another range", region.id)),
                None => {}
            }
            if !region.end.is_empty() && region.end <= region.start {
                return Err(format!("region {}: end must be after start", region.id));
            }
            fresh.push(region);
        }
        fresh.sort_by(|a, b| a.start.cmp(&b.start));
        for w in fresh.windows(2) {
            if w[0].overlaps(w[1]) {
                return Err(format!("regions {} and {} overlap", w[0].id, w[1].id));
            }
        }
        let mut existing: Vec<&RegionMeta> = self.regions.values().collect();
        existing.sort_by(|a, b| a.start.cmp(&b.start));
        for region in fresh {
            // The existing region starting at or before this one, and the one after it, are
            // the only ones that can overlap it (existing regions do not overlap each other).
            let at = existing.partition_point(|r| r.start <= region.start);
            let before = at.checked_sub(1).and_then(|i| existing.get(i));
            for other in before.into_iter().chain(existing.get(at)) {
                if other.overlaps(region) {
                    return Err(format!(
                        "range of region {} overlaps region {}",
                        region.id, other.id
                    ));
                }
            }
        }
        Ok(())
    }

    fn put_region(
        &mut self,
        batch: &mut WriteBatch,
        region: RegionMeta,
        changed: &mut Vec<Change>,
    ) -> io::Result<()> {
        self.engine()
            .put_meta(batch, &keys::region_key(self.rg, region.id), &region)
            .map_err(io_err)?;
        changed.push(Change::Moved {
            rg: self.rg,
            region: region.clone(),
        });
        self.regions.insert(region.id, region);
        Ok(())
    }

    fn remove_region(&mut self, batch: &mut WriteBatch, region_id: u64, changed: &mut Vec<Change>) {
        batch.delete_cf(
            self.engine().cf(CF_META),
            keys::region_key(self.rg, region_id),
        );
        self.regions.remove(&region_id);
        changed.push(Change::Removed { region_id });
    }

    fn persist_applied(&self, batch: &mut WriteBatch) -> io::Result<()> {
        let engine = self.engine();
        engine
            .put_meta(batch, &keys::rg_record(self.rg, "applied"), &self.applied)
            .map_err(io_err)?;
        engine
            .put_meta(
                batch,
                &keys::rg_record(self.rg, "membership"),
                &self.membership,
            )
            .map_err(io_err)?;
        engine
            .put_meta(batch, &keys::rg_record(self.rg, "conf_ver"), &self.conf_ver)
            .map_err(io_err)
    }

    /// Publishes committed changes to the store: routing index, applied index, events.
    fn publish(&self, changed: Vec<Change>) {
        for change in changed {
            match change {
                Change::Moved { rg, region } => self.ctx.regions.upsert(rg, region),
                Change::Removed { region_id } => {
                    // A region moved to another RG was upserted under it later in `changed`;
                    // only drop it if it still points at this RG.
                    if self
                        .ctx
                        .regions
                        .get(region_id)
                        .is_some_and(|e| e.rg_id == self.rg)
                    {
                        self.ctx.regions.remove(region_id);
                    }
                }
                Change::Event(event) => {
                    let _ = self.ctx.events.send(event);
                }
            }
        }
        self.ctx.publish_applied(
            self.rg,
            self.applied.as_ref().map(|l| l.index()).unwrap_or(0),
        );
    }
}

/// Deletes a region's user data (DeleteRegion with data, Destroy of a replica).
pub fn delete_region_data(engine: &Engine, batch: &mut WriteBatch, region: &RegionMeta) {
    let end = if region.end.is_empty() {
        MAX_KEY.to_vec()
    } else {
        region.end.clone()
    };
    batch.delete_range_cf(engine.cf(CF_DATA), &region.start, &end);
}

pub(crate) enum Change {
    Moved { rg: u64, region: RegionMeta },
    Removed { region_id: u64 },
    Event(RgEvent),
}

impl RaftStateMachine<TypeConfig> for RgStateMachine {
    type SnapshotData = SnapshotHandle;
    type SnapshotBuilder = RgSnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut changed = Vec::new();
        let mut responses = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            self.applying = log_id.index();
            let response = match &entry.payload {
                EntryPayload::Blank => RgResponse::default(),
                EntryPayload::Normal(cmd) => {
                    self.apply_command(cmd, &mut batch, &mut changed).await?
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m.clone());
                    self.conf_ver += 1;
                    RgResponse::default()
                }
            };
            self.applied = Some(log_id);
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        self.persist_applied(&mut batch)?;
        let engine = self.engine().clone();
        engine.write(batch, false).map_err(io_err)?;
        self.publish(changed);
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        RgSnapshotBuilder::new(self)
    }

    async fn install_snapshot(
        &mut self,
        meta: &crate::rg::types::SnapshotMeta,
        snapshot: SnapshotHandle,
    ) -> io::Result<()> {
        crate::rg::snapshot::install(self, meta, snapshot).await
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<crate::rg::types::Snapshot>> {
        crate::rg::snapshot::current(self)
    }
}

impl RgStateMachine {
    pub(crate) fn publish_applied_index(&self) {
        self.ctx.publish_applied(
            self.rg,
            self.applied.as_ref().map(|l| l.index()).unwrap_or(0),
        );
    }
}
