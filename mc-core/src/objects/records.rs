//! The data-object tables of the catalog: one record per object (`obj/{id}`), the per-parent
//! high-water marks of child numbers (`obj-hw/{parent}`), and one record per DDL request
//! (`ddl/{request id}`) that says what the request planned and how far it got, so a retried
//! hook, or a new MC leader, finishes it instead of starting over.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use topology::{Object, ObjectTree};

use crate::catalog::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};
use crate::ids::{JobId, ObjectId, RegionId, RgId, StoreId};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectState {
    Creating,
    Serving,
    Dropping,
}

/// A region an object owns (or will own once its CreateRegion job ran).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedRegion {
    pub id: RegionId,
    pub start: Vec<u8>,
    /// Empty: unbounded.
    pub end: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub schema: u32,
    pub object: Object,
    pub state: ObjectState,
    /// For an index.
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub global: bool,
    /// The RG its regions were created in (databases have none). Regions may move later;
    /// the view says where they are now.
    pub rg: Option<RgId>,
    pub regions: Vec<OwnedRegion>,
    pub created_ms: u64,
    /// Replicas its RGs keep; 0: the cluster default.
    #[serde(default)]
    pub replicas: u32,
    /// Labels every store holding its replicas must carry (the placement checker keeps it so).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Create,
    Drop,
    Truncate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Running,
    Done,
    /// Failed; what it made is being deleted (its names are free already).
    CleaningUp,
    Failed,
}

/// An RG a create request makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRg {
    pub rg: RgId,
    pub stores: Vec<StoreId>,
}

/// A region a truncate replaces: the old one is deleted, the new one takes its range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    pub object: ObjectId,
    pub old: RegionId,
    pub new: OwnedRegion,
    pub rg: RgId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdlRecord {
    pub schema: u32,
    pub request_id: String,
    pub kind: RequestKind,
    pub state: RequestState,
    /// Created, dropped or truncated objects; the one the call named first.
    pub objects: Vec<ObjectId>,
    #[serde(default)]
    pub new_rgs: Vec<NewRg>,
    /// Drop: the RGs left empty, deleted after the regions.
    #[serde(default)]
    pub delete_rgs: Vec<RgId>,
    #[serde(default)]
    pub replacements: Vec<Replacement>,
    /// Drop: the records of the dropped objects, for the response after they are gone.
    #[serde(default)]
    pub dropped: Vec<ObjectRecord>,
    pub job_ids: Vec<JobId>,
    pub error: Option<String>,
    pub created_ms: u64,
    /// The stage the procedure runs next (see `objects::procedure`).
    #[serde(default)]
    pub stage: u8,
    /// A hash of what the call asked (kind, names, definitions): a request id used again
    /// for another request is refused, not answered with the first one (0: recorded before
    /// requests were hashed; any content matches).
    #[serde(default)]
    pub content: u64,
}

impl DdlRecord {
    /// The answer to a call that reuses this record's request id: the record, when the call
    /// asks what it asked; a refusal naming `request_id` otherwise.
    pub fn for_same_request(self, kind: RequestKind, content: u64) -> Result<Self> {
        if self.kind != kind || (self.content != 0 && self.content != content) {
            // Not echoing what the other request was: it may be another caller's.
            return Err(McError::invalid(
                "request_id",
                format!(
                    "`{}` was already used for another request; a new request needs a new id",
                    crate::error::short(&self.request_id),
                ),
            ));
        }
        Ok(self)
    }
}

/// The `content` of a request: FNV-1a over its description, stable across restarts.
pub fn request_content(description: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in description.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

fn object_key(id: ObjectId) -> Vec<u8> {
    format!("obj/{id:016x}").into_bytes()
}

fn high_water_key(slot: u64) -> Vec<u8> {
    format!("obj-hw/{slot:016x}").into_bytes()
}

fn request_key(request_id: &str) -> Vec<u8> {
    format!("ddl/{request_id}").into_bytes()
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(McError::internal)
}

fn parse<T: for<'a> Deserialize<'a>>(what: &str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| McError::corrupt(what, e))
}

pub fn put_object(batch: &mut WriteBatch, rec: &ObjectRecord) -> Result<()> {
    batch.put(object_key(rec.object.id.0), json(rec)?);
    Ok(())
}

pub fn delete_object(batch: &mut WriteBatch, id: ObjectId) {
    batch.delete(object_key(id));
}

pub fn put_high_water(batch: &mut WriteBatch, slot: u64, n: u64) {
    batch.put(high_water_key(slot), n.to_string());
}

pub fn put_request(batch: &mut WriteBatch, rec: &DdlRecord) -> Result<()> {
    batch.put(request_key(&rec.request_id), json(rec)?);
    Ok(())
}

pub fn request(store: &impl CatalogStore, request_id: &str) -> Result<Option<DdlRecord>> {
    store
        .get(&request_key(request_id))?
        .map(|b| parse("ddl request", &b))
        .transpose()
}

/// Requests a crash or a leader change left half done.
pub fn unfinished_requests(store: &impl CatalogStore) -> Result<Vec<DdlRecord>> {
    let mut out = Vec::new();
    for (_, v) in store.scan(b"ddl/")? {
        let rec: DdlRecord = parse("ddl request", &v)?;
        if matches!(rec.state, RequestState::Running | RequestState::CleaningUp) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// The tree and every object's record, as the catalog holds them.
pub fn load(store: &impl CatalogStore) -> Result<(ObjectTree, BTreeMap<ObjectId, ObjectRecord>)> {
    let mut records = BTreeMap::new();
    for (_, v) in store.scan(b"obj/")? {
        let rec: ObjectRecord = parse("object", &v)?;
        if rec.schema > SCHEMA_VERSION {
            return Err(McError::FailedPrecondition {
                subject: format!("object {}", rec.object.id),
                state: format!("written by a newer MC (schema {})", rec.schema),
                required: format!(
                    "an MC that reads schema {} (this one reads {SCHEMA_VERSION})",
                    rec.schema
                ),
            });
        }
        records.insert(rec.object.id.0, rec);
    }
    let mut high_water = Vec::new();
    for (k, v) in store.scan(b"obj-hw/")? {
        let slot = std::str::from_utf8(&k[b"obj-hw/".len()..])
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        let n = std::str::from_utf8(&v).ok().and_then(|n| n.parse().ok());
        // Skipping one would hand a dropped object's id (and key prefix, and rows a store
        // may still hold) to a new object.
        match (slot, n) {
            (Some(slot), Some(n)) => high_water.push((slot, n)),
            _ => {
                return Err(McError::corrupt(
                    String::from_utf8_lossy(&k),
                    "not a parent slot and a high-water mark",
                ));
            }
        }
    }
    let tree = ObjectTree::from_parts(records.values().map(|r| r.object.clone()), high_water);
    Ok((tree, records))
}
