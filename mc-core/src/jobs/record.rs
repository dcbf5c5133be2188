//! What the catalog keeps of a job and of each step attempt. Explicit serde types with a
//! schema version; keys never depend on Rust type names.

use proto::v1::StepOutcome;
use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};
use crate::ids::{JobId, StoreId};
use crate::jobs::plan::{AtomicStep, Plan};
use crate::jobs::spec::JobSpec;
use crate::jobs::state::JobState;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Forward,
    /// Undo steps being run; `cancelled` when a user's cancel started it.
    Rollback {
        steps: Vec<AtomicStep>,
        cancelled: bool,
    },
}

/// The attempt of the current step that was persisted as dispatched and has no outcome yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub step_seq: u32,
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub schema: u32,
    pub id: JobId,
    pub spec: JobSpec,
    pub definition_version: u32,
    pub state: JobState,
    pub plan: Plan,
    pub phase: Phase,
    /// Index of the current step in the current phase.
    pub cursor: usize,
    /// Attempts of the current step so far.
    pub attempts: u32,
    pub in_flight: Option<InFlight>,
    /// An attempt of the current step ended without a definite outcome (no reply, a missed
    /// deadline, Busy with itself): the step may have happened. Cleared by a definite outcome.
    /// Rolling back past such a step when it is the point of no return needs its outcome first.
    #[serde(default)]
    pub uncertain: bool,
    /// A cancel arrived while the current step's outcome was unknown; the engine acts on it
    /// once the outcome is known.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Added to every step sequence number. A manual retry moves it past every number the job
    /// used, so the retried steps get fresh idempotency keys and execution records.
    #[serde(default)]
    pub seq_base: u32,
    pub next_attempt_at_ms: u64,
    pub last_error: Option<String>,
    /// The locks this job takes, and whether it holds them now.
    #[serde(default)]
    pub locks: crate::jobs::locks::LockSet,
    #[serde(default)]
    pub holds_locks: bool,
    /// Its class in the command queue.
    #[serde(default)]
    pub priority: crate::jobs::queue::Priority,
    /// The parent job (a DrainStore) that spawned this one.
    #[serde(default)]
    pub parent: Option<JobId>,
    /// Jobs this one spawned, in order.
    #[serde(default)]
    pub children: Vec<JobId>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: u64,
}

impl JobRecord {
    /// The step the job is at, with its sequence number: forward steps are 1..=n, undo steps
    /// continue after n, so every step a job ever sends has its own idempotency key.
    pub fn current_step(&self) -> Option<(u32, AtomicStep)> {
        let n = self.plan.steps.len();
        let base = self.seq_base as usize;
        match &self.phase {
            Phase::Forward => self
                .plan
                .steps
                .get(self.cursor)
                .map(|s| ((base + self.cursor + 1) as u32, s.step.clone())),
            Phase::Rollback { steps, .. } => steps
                .get(self.cursor)
                .map(|s| ((base + n + self.cursor + 1) as u32, s.clone())),
        }
    }

    /// The first sequence number after every one this job has used: where a retry starts.
    pub fn next_seq_base(&self) -> u32 {
        let undo = match &self.phase {
            Phase::Rollback { steps, .. } => steps.len(),
            Phase::Forward => 0,
        };
        self.seq_base + (self.plan.steps.len() + undo) as u32
    }

    /// The forward step the job is at, when it is a point of no return.
    pub fn at_point_of_no_return(&self) -> bool {
        self.phase == Phase::Forward
            && self
                .plan
                .steps
                .get(self.cursor)
                .is_some_and(|s| s.point_of_no_return)
    }
}

/// One attempt of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub job_id: JobId,
    pub step_seq: u32,
    pub attempt: u32,
    pub step: AtomicStep,
    pub store: Option<StoreId>,
    pub mc_term: u64,
    pub dispatched_ms: u64,
    pub finished_ms: u64,
    /// Encoded `StepOutcome`; empty while no reply has arrived.
    pub outcome: Vec<u8>,
}

impl ExecutionRecord {
    pub fn outcome(&self) -> Option<StepOutcome> {
        use prost::Message;
        (!self.outcome.is_empty())
            .then(|| StepOutcome::decode(self.outcome.as_slice()).ok())
            .flatten()
    }
}

pub fn job_key(id: JobId) -> Vec<u8> {
    format!("job/{id:016x}").into_bytes()
}

pub fn exec_key(job: JobId, seq: u32, attempt: u32) -> Vec<u8> {
    format!("exec/{job:016x}/{seq:08x}/{attempt:08x}").into_bytes()
}

pub fn put_job(batch: &mut WriteBatch, job: &JobRecord) -> Result<()> {
    batch.put(
        job_key(job.id),
        serde_json::to_vec(job).map_err(McError::internal)?,
    );
    Ok(())
}

pub fn put_exec(batch: &mut WriteBatch, rec: &ExecutionRecord) -> Result<()> {
    batch.put(
        exec_key(rec.job_id, rec.step_seq, rec.attempt),
        serde_json::to_vec(rec).map_err(McError::internal)?,
    );
    Ok(())
}

pub fn load_job(store: &impl CatalogStore, id: JobId) -> Result<JobRecord> {
    let bytes = store
        .get(&job_key(id))?
        .ok_or_else(|| McError::not_found("job", id))?;
    serde_json::from_slice(&bytes).map_err(|e| McError::corrupt(format!("job {id}"), e))
}

pub fn load_jobs(store: &impl CatalogStore) -> Result<Vec<JobRecord>> {
    store
        .scan(b"job/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))
        })
        .collect()
}

pub fn load_execs(store: &impl CatalogStore, job: JobId) -> Result<Vec<ExecutionRecord>> {
    store
        .scan(format!("exec/{job:016x}/").as_bytes())?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| McError::corrupt(format!("execution record of job {job}"), e))
        })
        .collect()
}
