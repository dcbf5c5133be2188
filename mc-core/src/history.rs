//! The catalog's append-only logs: the scheduling log (every proposal, taken or not, with its
//! inputs), the error queue (commands that could not become jobs, with the reason), the audit
//! log (who called what, when, with what result) and alerts (deduplicated by content).
//!
//! Log keys are `{table}/{at_ms:016x}/{id:016x}`: a time range is one range scan. Ids are the
//! leader's term and a counter, so two leaders never write the same key. Every record names
//! the subjects it concerns (`job/88`, `rg/12`, `store/3`), which queries filter on.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};
use crate::job_spec::JobSpec;

pub const SCHEDULING: &str = "sched";
pub const ERROR_QUEUE: &str = "errq";
pub const AUDIT: &str = "audit";
const ALERT: &str = "alert/";

/// One proposal of a scheduler or a parent job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub id: u64,
    pub at_ms: u64,
    pub scheduler: String,
    pub subjects: Vec<String>,
    pub taken: bool,
    pub reason: String,
    pub scores: Vec<(String, f64)>,
    pub proposed: Option<JobSpec>,
    pub job_id: u64,
}

/// A command that could not become a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    pub id: u64,
    pub at_ms: u64,
    pub source: String,
    pub subjects: Vec<String>,
    pub spec: JobSpec,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    pub id: u64,
    pub at_ms: u64,
    pub principal: String,
    pub method: String,
    pub request: String,
    pub result: String,
    pub job_id: u64,
    pub subjects: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// A hash of severity, subject and message: the same condition is one alert.
    pub id: u64,
    pub severity: Severity,
    pub subject: String,
    pub message: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub count: u64,
    pub resolved: bool,
}

/// Hands out log ids: the term in the high bits, a counter in the low.
pub struct LogIds {
    term: u64,
    next: AtomicU64,
}

impl LogIds {
    pub fn new(term: u64) -> Self {
        Self {
            term,
            next: AtomicU64::new(1),
        }
    }

    pub fn next(&self) -> u64 {
        (self.term << 32) | (self.next.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff)
    }
}

fn key(table: &str, at_ms: u64, id: u64) -> Vec<u8> {
    format!("{table}/{at_ms:016x}/{id:016x}").into_bytes()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(McError::internal)
}

pub fn put_decision(batch: &mut WriteBatch, d: &Decision) -> Result<()> {
    batch.put(key(SCHEDULING, d.at_ms, d.id), encode(d)?);
    Ok(())
}

pub fn put_refused(batch: &mut WriteBatch, r: &Refused) -> Result<()> {
    batch.put(key(ERROR_QUEUE, r.at_ms, r.id), encode(r)?);
    Ok(())
}

pub fn put_audit(batch: &mut WriteBatch, a: &Audit) -> Result<()> {
    batch.put(key(AUDIT, a.at_ms, a.id), encode(a)?);
    Ok(())
}

/// A page of one log.
#[derive(Clone, Debug)]
pub struct LogQuery<'a> {
    pub table: &'a str,
    /// `from_ms <= at < to_ms`; 0 leaves a side unbounded.
    pub from_ms: u64,
    pub to_ms: u64,
    /// Only records concerning this subject; empty for all.
    pub subject: &'a str,
    /// Resume after this key (the page token a previous page returned), or from the start.
    pub after: Option<&'a [u8]>,
    pub limit: usize,
}

/// Records one query reads past its filter at most: a subject that matches little answers a
/// short page and a token to go on, not a pass over the whole log.
pub const SCAN_BUDGET: usize = 20_000;

/// The records of a page, oldest first, and the key to resume after when more may match.
/// Reads in chunks from where the page starts and stops at the page's end (or after
/// `SCAN_BUDGET` records looked at), never loading the whole log.
pub fn query<T: DeserializeOwned>(
    catalog: &impl CatalogStore,
    q: &LogQuery,
    subjects_of: impl Fn(&T) -> &[String],
) -> Result<(Vec<T>, Option<Vec<u8>>)> {
    let LogQuery {
        table,
        from_ms,
        to_ms,
        subject,
        after,
        limit,
    } = *q;
    let start = format!("{table}/{from_ms:016x}/").into_bytes();
    let end = match to_ms {
        0 => format!("{table}/~").into_bytes(),
        to => format!("{table}/{to:016x}/").into_bytes(),
    };
    let mut from = match after {
        Some(key) => {
            let mut k = key.to_vec();
            k.push(0);
            k.max(start)
        }
        None => start,
    };
    let mut out = Vec::new();
    let mut scanned = 0usize;
    let mut last: Option<Vec<u8>> = None;
    loop {
        let chunk = catalog.scan_range(&from, &end, 256)?;
        let exhausted = chunk.len() < 256;
        for (k, v) in chunk {
            if out.len() == limit || scanned >= SCAN_BUDGET {
                return Ok((out, last));
            }
            scanned += 1;
            from = k.clone();
            from.push(0);
            let record: T = serde_json::from_slice(&v)
                .map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))?;
            last = Some(k);
            if !subject.is_empty() && !subjects_of(&record).iter().any(|s| s == subject) {
                continue;
            }
            out.push(record);
        }
        if exhausted {
            return Ok((out, None));
        }
    }
}

fn alert_id(severity: Severity, subject: &str, message: &str) -> u64 {
    // FNV-1a: stable across builds and processes, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{severity:?}\0{subject}\0{message}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Raises an alert, or counts one more occurrence of the same open alert.
pub async fn raise(
    catalog: &impl CatalogStore,
    severity: Severity,
    subject: &str,
    message: &str,
    now: u64,
) -> Result<Alert> {
    let id = alert_id(severity, subject, message);
    let key = format!("{ALERT}{id:016x}");
    let alert = match catalog.get(key.as_bytes())? {
        Some(bytes) => {
            let mut a: Alert = serde_json::from_slice(&bytes)
                .map_err(|e| McError::corrupt(format!("alert {id:016x}"), e))?;
            if a.resolved {
                a.resolved = false;
                a.first_ms = now;
                a.count = 0;
            }
            a.count += 1;
            a.last_ms = now;
            a
        }
        None => Alert {
            id,
            severity,
            subject: subject.into(),
            message: message.into(),
            first_ms: now,
            last_ms: now,
            count: 1,
            resolved: false,
        },
    };
    let mut batch = WriteBatch::default();
    batch.put(key, encode(&alert)?);
    catalog.write(batch).await?;
    Ok(alert)
}

/// Marks every open alert about `subject` resolved.
pub async fn resolve(catalog: &impl CatalogStore, subject: &str, now: u64) -> Result<usize> {
    let mut batch = WriteBatch::default();
    for mut a in alerts(catalog)? {
        if a.subject == subject && !a.resolved {
            a.resolved = true;
            a.last_ms = now;
            batch.put(format!("{ALERT}{:016x}", a.id), encode(&a)?);
        }
    }
    let n = batch.ops.len();
    catalog.write(batch).await?;
    Ok(n)
}

pub fn alerts(catalog: &impl CatalogStore) -> Result<Vec<Alert>> {
    catalog
        .scan(ALERT.as_bytes())?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;

    fn audit(id: u64, at_ms: u64, subject: &str) -> Audit {
        Audit {
            id,
            at_ms,
            principal: "sre".into(),
            method: "JobService/CancelJob".into(),
            request: String::new(),
            result: "ok".into(),
            job_id: 0,
            subjects: vec![subject.into()],
        }
    }

    #[tokio::test]
    async fn logs_are_read_back_by_time_range_subject_and_page() {
        let store = MemoryStore::default();
        let mut batch = WriteBatch::default();
        for (i, at) in [100u64, 200, 300, 400].into_iter().enumerate() {
            let subject = if i % 2 == 0 { "job/1" } else { "store/2" };
            put_audit(&mut batch, &audit(i as u64, at, subject)).unwrap();
        }
        store.write(batch).await.unwrap();
        let q = |from_ms, to_ms, subject: &str, after: Option<Vec<u8>>, limit| {
            let q = LogQuery {
                table: AUDIT,
                from_ms,
                to_ms,
                subject,
                after: after.as_deref(),
                limit,
            };
            let (v, next) = query::<Audit>(&store, &q, |a| &a.subjects).unwrap();
            (v.iter().map(|a| a.at_ms).collect::<Vec<_>>(), next)
        };
        assert_eq!(q(0, 0, "", None, 10), (vec![100, 200, 300, 400], None));
        assert_eq!(q(200, 400, "", None, 10).0, vec![200, 300]);
        assert_eq!(q(0, 0, "job/1", None, 10).0, vec![100, 300]);
        // Pages resume after the key the last one returned: nothing skipped, nothing twice.
        let (first, next) = q(0, 0, "", None, 2);
        assert_eq!(first, vec![100, 200]);
        assert!(next.is_some(), "more to read");
        assert_eq!(q(0, 0, "", next, 2), (vec![300, 400], None));
        assert_eq!(q(0, 0, "rg/9", None, 10), (vec![], None));
    }

    #[tokio::test]
    async fn the_same_alert_is_counted_not_repeated_and_resolves() {
        let store = MemoryStore::default();
        raise(&store, Severity::Critical, "store/3", "store 3 is down", 10)
            .await
            .unwrap();
        let again = raise(&store, Severity::Critical, "store/3", "store 3 is down", 20)
            .await
            .unwrap();
        assert_eq!((again.count, again.first_ms, again.last_ms), (2, 10, 20));
        raise(&store, Severity::Warning, "job/7", "job 7 failed", 30)
            .await
            .unwrap();
        assert_eq!(alerts(&store).unwrap().len(), 2);
        assert_eq!(resolve(&store, "store/3", 40).await.unwrap(), 1);
        let a = alerts(&store).unwrap();
        let s3 = a.iter().find(|a| a.subject == "store/3").unwrap();
        assert!(s3.resolved);
        // The condition coming back reopens the same alert.
        let back = raise(&store, Severity::Critical, "store/3", "store 3 is down", 50)
            .await
            .unwrap();
        assert_eq!((back.id, back.count, back.resolved), (s3.id, 1, false));
    }
}

/// How long audit records are kept by default: long enough for an incident review a quarter
/// later, short enough that a year of refused calls does not grow the catalog without end.
pub const AUDIT_RETENTION_MS: u64 = 90 * 24 * 3_600_000;

/// Deletes the records of `table` older than `cutoff_ms`, at most `max` of them (a pass of
/// bounded size: the caller runs it again while it deletes any). Returns how many it deleted.
pub async fn expire(
    catalog: &impl CatalogStore,
    table: &str,
    cutoff_ms: u64,
    max: usize,
) -> Result<usize> {
    let start = format!("{table}/").into_bytes();
    let end = format!("{table}/{cutoff_ms:016x}").into_bytes();
    let old = catalog.scan_range(&start, &end, max)?;
    if old.is_empty() {
        return Ok(0);
    }
    let mut batch = WriteBatch::default();
    for (k, _) in &old {
        batch.delete(k.clone());
    }
    catalog.write(batch).await?;
    Ok(old.len())
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;

    #[tokio::test]
    async fn audit_records_past_their_retention_are_deleted_and_newer_ones_kept() {
        let catalog = MemoryStore::default();
        let mut batch = WriteBatch::default();
        for (at, id) in [(1_000u64, 1u64), (2_000, 2), (5_000, 3)] {
            batch.put(key(AUDIT, at, id), b"{}".to_vec());
        }
        catalog.write(batch).await.unwrap();
        assert_eq!(expire(&catalog, AUDIT, 3_000, 1).await.unwrap(), 1);
        assert_eq!(expire(&catalog, AUDIT, 3_000, 100).await.unwrap(), 1);
        assert_eq!(expire(&catalog, AUDIT, 3_000, 100).await.unwrap(), 0);
        let left = catalog.scan(b"audit/").unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, key(AUDIT, 5_000, 3));
    }
}
