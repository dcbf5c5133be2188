//! Secondary indexes of the jobs table, written in the same batch as the job record so they
//! never disagree with it: by state, type, RG, store and creation time. Keys carry the proto
//! enum numbers (stable tags), never Rust names; values are empty.
//!
//! A query walks one index — the most selective one its filters allow — in job-id order from
//! the page token, and checks the remaining filters on the records it loads.

use crate::catalog::{CatalogStore, WriteBatch};
use crate::error::Result;
use crate::ids::JobId;
use crate::jobs::record::{self, JobRecord};
use crate::jobs::state::JobState;

/// Set once every job of the catalog is indexed (see [`ensure`]).
const INDEXED_KEY: &[u8] = b"meta/schema/job_index";
const INDEX_VERSION: &str = "1";

fn id_hex(id: JobId) -> String {
    format!("{id:016x}")
}

fn state_prefix(state: i32) -> String {
    format!("jidx/state/{state:02x}/")
}

fn type_prefix(t: i32) -> String {
    format!("jidx/type/{t:02x}/")
}

fn rg_prefix(rg: u64) -> String {
    format!("jidx/rg/{rg:016x}/")
}

fn store_prefix(store: u64) -> String {
    format!("jidx/store/{store:016x}/")
}

const CREATED: &str = "jidx/created/";

fn state_of(job: &JobRecord) -> i32 {
    job.state.to_proto() as i32
}

/// Index entries for `new`, given the state of the record stored before (None for a new
/// job). Only the state changes over a job's life; the rest is written once.
pub fn put(batch: &mut WriteBatch, old_state: Option<JobState>, new: &JobRecord) {
    let id = id_hex(new.id);
    match old_state {
        Some(old) if old == new.state => return,
        Some(old) => batch.delete(format!("{}{id}", state_prefix(old.to_proto() as i32))),
        None => {
            batch.put(
                format!("{}{id}", type_prefix(new.spec.job_type() as i32)),
                Vec::new(),
            );
            let (rgs, stores) = new.spec.touches(&new.plan);
            for rg in rgs {
                batch.put(format!("{}{id}", rg_prefix(rg)), Vec::new());
            }
            for store in stores {
                batch.put(format!("{}{id}", store_prefix(store)), Vec::new());
            }
            batch.put(format!("{CREATED}{:016x}/{id}", new.created_ms), Vec::new());
        }
    }
    batch.put(format!("{}{id}", state_prefix(state_of(new))), Vec::new());
}

/// Indexes every job of a catalog written before the indexes existed (a schema migration),
/// once; later starts find the marker and do nothing.
pub async fn ensure(catalog: &impl CatalogStore) -> Result<usize> {
    if catalog.get(INDEXED_KEY)?.is_some() {
        return Ok(0);
    }
    let jobs = record::load_jobs(catalog)?;
    let mut batch = WriteBatch::default();
    for (k, _) in catalog.scan(b"jidx/")? {
        batch.delete(k);
    }
    for job in &jobs {
        put(&mut batch, None, job);
    }
    batch.put(INDEXED_KEY, INDEX_VERSION);
    catalog.write(batch).await?;
    Ok(jobs.len())
}

/// What a job query asks for; empty lists and zeros match everything.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub states: Vec<i32>,
    pub types: Vec<i32>,
    pub rg: u64,
    pub store: u64,
    pub created_from_ms: u64,
    /// Exclusive; 0 is unbounded.
    pub created_to_ms: u64,
}

impl JobFilter {
    pub fn matches(&self, job: &JobRecord) -> bool {
        let (rgs, stores) = job.spec.touches(&job.plan);
        (self.states.is_empty() || self.states.contains(&state_of(job)))
            && (self.types.is_empty() || self.types.contains(&(job.spec.job_type() as i32)))
            && (self.rg == 0 || rgs.contains(&self.rg))
            && (self.store == 0 || stores.contains(&self.store))
            && job.created_ms >= self.created_from_ms
            && (self.created_to_ms == 0 || job.created_ms < self.created_to_ms)
    }

    /// The index prefixes to walk: one for an RG or a store, one per state or type, or none
    /// (walk the creation-time index).
    fn prefixes(&self) -> Option<Vec<String>> {
        if self.rg != 0 {
            Some(vec![rg_prefix(self.rg)])
        } else if self.store != 0 {
            Some(vec![store_prefix(self.store)])
        } else if !self.states.is_empty() {
            Some(self.states.iter().map(|s| state_prefix(*s)).collect())
        } else if !self.types.is_empty() {
            Some(self.types.iter().map(|t| type_prefix(*t)).collect())
        } else {
            None
        }
    }
}

/// Up to `limit` jobs with ids above `after` that match `filter`, in id order, and whether
/// more may follow.
pub fn query(
    catalog: &impl CatalogStore,
    filter: &JobFilter,
    after: JobId,
    limit: usize,
) -> Result<(Vec<JobRecord>, bool)> {
    let ids: Vec<JobId> = match filter.prefixes() {
        Some(prefixes) => {
            // Id-keyed indexes: each is walked from the token; the union is merged by id.
            let mut ids = Vec::new();
            for p in prefixes {
                let start = format!("{p}{}", id_hex(after.saturating_add(1)));
                let end = format!("{p}~");
                for (k, _) in catalog.scan_range(start.as_bytes(), end.as_bytes(), usize::MAX)? {
                    ids.extend(parse_id(&k));
                }
            }
            ids.sort_unstable();
            ids.dedup();
            ids
        }
        None => {
            // Time-keyed: walk the creation range, then order the ids.
            let start = format!("{CREATED}{:016x}/", filter.created_from_ms);
            let end = match filter.created_to_ms {
                0 => format!("{CREATED}~"),
                to => format!("{CREATED}{to:016x}/"),
            };
            let mut ids: Vec<JobId> = catalog
                .scan_range(start.as_bytes(), end.as_bytes(), usize::MAX)?
                .iter()
                .filter_map(|(k, _)| parse_id(k))
                .filter(|id| *id > after)
                .collect();
            ids.sort_unstable();
            ids
        }
    };
    let mut out = Vec::new();
    for id in ids {
        let job = record::load_job(catalog, id)?;
        if !filter.matches(&job) {
            continue;
        }
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push(job);
    }
    Ok((out, false))
}

/// The job id at the end of an index key.
fn parse_id(key: &[u8]) -> Option<JobId> {
    let tail = key.rsplit(|b| *b == b'/').next()?;
    JobId::from_str_radix(std::str::from_utf8(tail).ok()?, 16).ok()
}
