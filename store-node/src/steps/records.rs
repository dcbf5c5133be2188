//! The store's idempotency records: the outcome of every step that ended for good, keyed by
//! (RG, job, step) and kept for the last [`WINDOW`] steps of each RG, so a step re-sent after a
//! lost reply or an MC failover is answered with its own outcome — also after other jobs ran
//! steps on the same RG meanwhile (region jobs share an RG). One slot per RG used to make such
//! a repeat run again, against a region shape another job had already changed.
//!
//! Records outlive the replica (a repeated Destroy is answered without running) and are
//! trimmed oldest-job-first: job ids grow, so key order is age order.

use prost::Message;
use proto::v1::StepOutcome;
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Result, StoreError};

/// Steps remembered per RG. A re-send comes within one MC failover (seconds), while an RG runs
/// at most a few steps per second, so 256 covers any realistic window many times over.
pub const WINDOW: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepRecord {
    pub job_id: u64,
    pub step_seq: u32,
    /// Encoded `StepOutcome`.
    pub outcome: Vec<u8>,
}

const PREFIX: &[u8] = b"step/";

fn rg_prefix(rg: u64) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&rg.to_be_bytes());
    key.push(b'/');
    key
}

fn key(rg: u64, job_id: u64, step_seq: u32) -> Vec<u8> {
    let mut key = rg_prefix(rg);
    key.extend_from_slice(&job_id.to_be_bytes());
    key.extend_from_slice(&step_seq.to_be_bytes());
    key
}

/// The single per-RG slot of stores written before the window existed.
fn legacy_key(rg: u64) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&rg.to_be_bytes());
    key
}

fn last_key(rg: u64) -> Vec<u8> {
    let mut key = b"step-last/".to_vec();
    key.extend_from_slice(&rg.to_be_bytes());
    key
}

fn decode(record: StepRecord) -> Result<StepOutcome> {
    StepOutcome::decode(record.outcome.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The stored outcome of this exact step, if it ended for good before.
pub(crate) fn stored(
    engine: &Engine,
    rg: u64,
    job_id: u64,
    step_seq: u32,
) -> Result<Option<StepOutcome>> {
    if let Some(r) = engine.get_meta::<StepRecord>(&key(rg, job_id, step_seq))? {
        return decode(r).map(Some);
    }
    match engine.get_meta::<StepRecord>(&legacy_key(rg))? {
        Some(r) if r.job_id == job_id && r.step_seq == step_seq => decode(r).map(Some),
        _ => Ok(None),
    }
}

/// Remembers a final outcome, durably, and forgets the oldest beyond the window.
pub(crate) fn record(
    engine: &Engine,
    rg: u64,
    job_id: u64,
    step_seq: u32,
    outcome: &StepOutcome,
) -> Result<()> {
    let record = StepRecord {
        job_id,
        step_seq,
        outcome: outcome.encode_to_vec(),
    };
    let mut batch = WriteBatch::default();
    engine.put_meta(&mut batch, &key(rg, job_id, step_seq), &record)?;
    engine.put_meta(&mut batch, &last_key(rg), &(job_id, step_seq))?;
    batch.delete_cf(engine.cf(crate::engine::CF_META), legacy_key(rg));
    let keys = engine.meta_keys(&rg_prefix(rg))?;
    // The new record is not among `keys` yet (unless it overwrote one): keep WINDOW in all.
    let excess = (keys.len() + 1).saturating_sub(WINDOW);
    for old in keys.iter().take(excess) {
        batch.delete_cf(engine.cf(crate::engine::CF_META), old);
    }
    engine.write(batch, true)
}

/// The last step that ended for good on the RG: (job, step), or (0, 0).
pub(crate) fn last(engine: &Engine, rg: u64) -> (u64, u32) {
    if let Ok(Some(last)) = engine.get_meta::<(u64, u32)>(&last_key(rg)) {
        return last;
    }
    engine
        .get_meta::<StepRecord>(&legacy_key(rg))
        .ok()
        .flatten()
        .map(|r| (r.job_id, r.step_seq))
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::v1::{StepOk, step_outcome};

    fn ok(applied: u64) -> StepOutcome {
        StepOutcome {
            result: Some(step_outcome::Result::Ok(StepOk {
                applied_index: applied,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn each_step_keeps_its_own_outcome_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), false).unwrap();
        record(&engine, 7, 10, 1, &ok(1)).unwrap();
        record(&engine, 7, 11, 1, &ok(2)).unwrap();
        record(&engine, 8, 12, 1, &ok(3)).unwrap();
        assert_eq!(stored(&engine, 7, 10, 1).unwrap(), Some(ok(1)));
        assert_eq!(stored(&engine, 7, 11, 1).unwrap(), Some(ok(2)));
        assert_eq!(
            stored(&engine, 7, 12, 1).unwrap(),
            None,
            "another RG's step"
        );
        assert_eq!(last(&engine, 7), (11, 1));
        for job in 100..100 + WINDOW as u64 {
            record(&engine, 7, job, 2, &ok(job)).unwrap();
        }
        assert_eq!(stored(&engine, 7, 10, 1).unwrap(), None, "oldest forgotten");
        assert_eq!(stored(&engine, 7, 100, 2).unwrap(), Some(ok(100)));
        assert_eq!(engine.meta_keys(&rg_prefix(7)).unwrap().len(), WINDOW);
        assert_eq!(stored(&engine, 8, 12, 1).unwrap(), Some(ok(3)), "untouched");
    }

    #[test]
    fn the_single_slot_of_an_older_store_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), false).unwrap();
        let mut batch = WriteBatch::default();
        let old = StepRecord {
            job_id: 5,
            step_seq: 3,
            outcome: ok(9).encode_to_vec(),
        };
        engine.put_meta(&mut batch, &legacy_key(7), &old).unwrap();
        engine.write(batch, true).unwrap();
        assert_eq!(stored(&engine, 7, 5, 3).unwrap(), Some(ok(9)));
        assert_eq!(last(&engine, 7), (5, 3));
        assert_eq!(stored(&engine, 7, 5, 4).unwrap(), None);
    }
}
