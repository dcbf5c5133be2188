//! The job engine: drives jobs of atomic steps to success or rollback, persisting every
//! decision before acting on it.
//!
//! For each step: persist "dispatched" (job + execution record, one batch) → send → persist
//! "finished" with the outcome and the job's next state (one batch). A crash between any two
//! of these leaves the catalog saying exactly what may have happened; a new engine (after a
//! restart or failover) re-sends the in-flight step with its original sequence number and a
//! new attempt, and the store's idempotency answers a step it already ran with the stored
//! outcome instead of running it twice.

use prost::Message;
use proto::v1::{StepOutcome, step_outcome};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::{ClusterView, ViewSource};
use crate::error::{McError, Result};
use crate::history as logs;
use crate::ids::JobId;
use crate::jobs::executor::{Envelope, StepExecutor};
use crate::jobs::index;
use crate::jobs::limits::{LimitState, Limits};
use crate::jobs::locks::{self, LockTable};
use crate::jobs::plan::{
    AtomicStep, Plan, Target, Verdict, classify, classify_undo, possibly_done, refused,
};
use crate::jobs::queue::Priority;
use crate::jobs::record::{self, ExecutionRecord, InFlight, JobRecord, Phase, SCHEMA_VERSION};
use crate::jobs::spec::JobSpec;
use crate::jobs::state::{self, JobState};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The MC leader's Raft term, carried by every step so stores refuse a deposed leader.
    pub mc_term: u64,
    /// Attempts of one step before a retryable outcome becomes an abort.
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Deadline a step gets on the store.
    pub step_deadline_ms: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mc_term: 1,
            max_attempts: 8,
            backoff_base_ms: 100,
            backoff_max_ms: 10_000,
            step_deadline_ms: 60_000,
        }
    }
}

/// What one call to `step_job` achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Another step can run now.
    Continue,
    /// Nothing to do before this time (backoff).
    WaitUntil(u64),
    /// Paused, or in a final state.
    Stopped(JobState),
    /// Queued behind the job holding one of its locks.
    Blocked { holder: JobId },
    /// This MC was deposed; the new leader resumes the job.
    Deposed,
}

/// A step persisted as dispatched, ready to send.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub envelope: Envelope,
    pub step: AtomicStep,
    /// The execution record persisted with the dispatch; `finish` completes it.
    exec: ExecutionRecord,
}

pub struct Engine<S, E, C> {
    store: S,
    executor: E,
    clock: C,
    config: EngineConfig,
    /// One lock per job: a job's read-modify-writes are serialized, different jobs proceed
    /// in parallel so their catalog writes can share an fsync.
    locks: std::sync::Mutex<std::collections::HashMap<JobId, Arc<Mutex<()>>>>,
    /// Serializes id allocation.
    pub(crate) ids: Mutex<()>,
    lock_table: std::sync::Mutex<LockTable>,
    limits: std::sync::Mutex<LimitState>,
    /// Unfinished jobs as last written by this engine, which is their only writer while this
    /// MC leads: saves a decode per step. Dropped with the engine on a change of leader.
    cache: std::sync::Mutex<std::collections::HashMap<JobId, JobRecord>>,
    /// Where parent jobs (DrainStore) see the cluster to plan their children.
    view: std::sync::RwLock<Option<Arc<dyn ViewSource>>>,
    /// Starts driving a job a parent spawned (the runner registers itself).
    spawner: std::sync::RwLock<Option<Spawner>>,
    /// Ids of the scheduling-log and error-queue records this engine writes.
    pub(crate) log_ids: Arc<crate::history::LogIds>,
    metrics: Arc<crate::jobs::metrics::EngineMetrics>,
    /// Jobs that succeeded lately, with when: the schedulers' view may not show them yet.
    recent: std::sync::Mutex<std::collections::VecDeque<(u64, JobSpec)>>,
    /// Wakes a job's driver out of a backoff or a lock wait (a cancel, resume or retry).
    wakers: std::sync::Mutex<std::collections::HashMap<JobId, Arc<tokio::sync::Notify>>>,
    /// Every committed change of a job: what watchers and DDL requests wait on, instead of
    /// polling the catalog.
    events: tokio::sync::broadcast::Sender<JobEvent>,
    /// Set once this engine's term ended: waiters stop waiting.
    stopped: tokio::sync::watch::Sender<bool>,
}

/// A job's record changed (persisted): its id and the state it is in now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub id: JobId,
    pub state: JobState,
}

/// Starts driving a newly spawned job.
pub type Spawner = Arc<dyn Fn(JobId) + Send + Sync>;

impl Dispatch {
    /// The RG the step's envelope names (the one the outcome describes).
    fn envelope_rg(&self) -> Option<crate::ids::RgId> {
        self.step.rg()
    }
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Engine<S, E, C> {
    pub fn new(store: S, executor: E, clock: C, config: EngineConfig) -> Self {
        let log_ids = Arc::new(crate::history::LogIds::new(config.mc_term));
        Self {
            store,
            executor,
            clock,
            config,
            locks: Default::default(),
            ids: Mutex::new(()),
            lock_table: Default::default(),
            limits: Default::default(),
            cache: Default::default(),
            view: Default::default(),
            spawner: Default::default(),
            log_ids,
            metrics: Default::default(),
            recent: Default::default(),
            wakers: Default::default(),
            events: tokio::sync::broadcast::channel(4096).0,
            stopped: tokio::sync::watch::channel(false).0,
        }
    }

    /// This engine's term ended (the runner stopped): whatever waits on its jobs stops.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Committed job changes from now on. A receiver that falls behind gets `Lagged` and
    /// should re-read the jobs it follows.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    /// The job as persisted once it is final; Unavailable if this engine's term ends first.
    pub async fn wait_final(&self, id: JobId) -> Result<JobRecord> {
        let mut events = self.subscribe();
        let ended = || McError::Unavailable {
            reason: "the job engine stopped (leadership moved)".into(),
            retry_after_ms: 500,
        };
        loop {
            let job = self.job(id)?;
            if job.state.is_final() {
                return Ok(job);
            }
            loop {
                let event = tokio::select! {
                    e = events.recv() => e,
                    _ = self.stopped() => return Err(ended()),
                };
                match event {
                    Ok(e) if e.id == id && e.state.is_final() => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(McError::Unavailable {
                            reason: "the job engine stopped (leadership moved)".into(),
                            retry_after_ms: 500,
                        });
                    }
                }
            }
        }
    }

    fn waker(&self, id: JobId) -> Arc<tokio::sync::Notify> {
        self.wakers
            .lock()
            .expect("job wakers")
            .entry(id)
            .or_default()
            .clone()
    }

    /// Cuts short a wait of the job's driver.
    pub(crate) fn wake(&self, id: JobId) {
        self.waker(id).notify_one();
    }

    pub(crate) fn executor(&self) -> &E {
        &self.executor
    }

    pub(crate) fn config_term(&self) -> u64 {
        self.config.mc_term
    }

    /// The cluster view parent jobs plan their children against.
    pub fn set_view_source(&self, view: Arc<dyn ViewSource>) {
        *self.view.write().expect("view source") = Some(view);
    }

    pub fn metrics(&self) -> &Arc<crate::jobs::metrics::EngineMetrics> {
        &self.metrics
    }

    pub fn set_spawner(&self, spawner: Spawner) {
        *self.spawner.write().expect("spawner") = Some(spawner);
    }

    pub(crate) fn view_snapshot(&self) -> Result<ClusterView> {
        match &*self.view.read().expect("view source") {
            Some(v) => Ok(v.snapshot()),
            None => Err(McError::Unavailable {
                reason: "no cluster view to plan child jobs against yet".into(),
                retry_after_ms: 100,
            }),
        }
    }

    pub(crate) fn spawn(&self, id: JobId) {
        if let Some(spawner) = &*self.spawner.read().expect("spawner") {
            spawner(id);
        }
    }

    /// Ids for the log records of this term (the engine's and the API's share them).
    pub fn log_ids(&self) -> Arc<crate::history::LogIds> {
        self.log_ids.clone()
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Changes the limits at run time; they apply from the next dispatch.
    pub fn set_limits(&self, limits: Limits) {
        self.limits.lock().expect("limits").limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.limits.lock().expect("limits").limits.clone()
    }

    fn lock(&self, id: JobId) -> Arc<Mutex<()>> {
        self.locks
            .lock()
            .expect("job lock map")
            .entry(id)
            .or_default()
            .clone()
    }

    pub fn job(&self, id: JobId) -> Result<JobRecord> {
        if let Some(job) = self.cache.lock().expect("job cache").get(&id) {
            return Ok(job.clone());
        }
        record::load_job(&self.store, id)
    }

    /// Writes `batch`, which holds `job`'s record, and keeps the cache in step: the written
    /// record on success, nothing on failure (the catalog decides what is true).
    async fn commit(&self, mut batch: WriteBatch, job: &JobRecord) -> Result<()> {
        let cached = self
            .cache
            .lock()
            .expect("job cache")
            .get(&job.id)
            .map(|j| j.state);
        let old_state = match cached {
            Some(state) => Some(state),
            None => match record::load_job(&self.store, job.id) {
                Ok(stored) => Some(stored.state),
                Err(McError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
        };
        index::put(&mut batch, old_state, job);
        let result = self.store.write(batch).await;
        if result.is_ok() && job.state == JobState::Failed && old_state != Some(JobState::Failed) {
            let message = format!(
                "{} job {} failed: {}",
                job.spec.job_type().as_str_name(),
                job.id,
                job.last_error.as_deref().unwrap_or("no error recorded")
            );
            let subject = format!("job/{}", job.id);
            let now = self.clock.now_ms();
            if let Err(e) = logs::raise(
                &self.store,
                logs::Severity::Warning,
                &subject,
                &message,
                now,
            )
            .await
            {
                tracing::warn!(job = job.id, error = %e, "alert not raised");
            }
        }
        if result.is_ok() {
            self.metrics.transition(job, old_state);
        }
        {
            let mut cache = self.cache.lock().expect("job cache");
            if result.is_ok() && !job.state.is_final() {
                cache.insert(job.id, job.clone());
            } else {
                cache.remove(&job.id);
            }
        }
        if result.is_ok() {
            if job.state.is_final() {
                self.wakers.lock().expect("job wakers").remove(&job.id);
            }
            let _ = self.events.send(JobEvent {
                id: job.id,
                state: job.state,
            });
        }
        result
    }

    /// Rebuilds the lock table from the catalog: what a new leader does before driving jobs.
    pub fn recover(&self) -> Result<Vec<JobId>> {
        let jobs = record::load_jobs(&self.store)?;
        self.metrics.seed(&jobs);
        let mut table = self.lock_table.lock().expect("lock table");
        *table = LockTable::default();
        {
            let mut limits = self.limits.lock().expect("limits");
            for job in jobs.iter().filter(|j| {
                matches!(
                    j.state,
                    JobState::Running | JobState::Retrying | JobState::RollingBack
                )
            }) {
                limits.started(job.id);
            }
        }
        for job in jobs.iter().filter(|j| j.holds_locks && !j.state.is_final()) {
            if let Err((resource, holder)) = table.try_acquire(job.id, &job.locks) {
                return Err(McError::corrupt(
                    format!("jobs {} and {holder}", job.id),
                    format!("both hold {resource}"),
                ));
            }
        }
        Ok(jobs
            .iter()
            .filter(|j| !j.state.is_final() && j.state != JobState::Paused)
            .map(|j| j.id)
            .collect())
    }

    pub(crate) fn transition(&self, job: &mut JobRecord, to: JobState) -> Result<()> {
        state::check(job.id, job.state, to)?;
        {
            let mut limits = self.limits.lock().expect("limits");
            match to {
                JobState::Running | JobState::RollingBack | JobState::Retrying => {
                    limits.started(job.id)
                }
                JobState::Paused | JobState::Succeeded | JobState::Failed | JobState::Cancelled => {
                    limits.ended(job.id)
                }
                JobState::Pending => {}
            }
        }
        job.state = to;
        job.updated_ms = self.clock.now_ms();
        if to.is_final() {
            job.finished_ms = job.updated_ms;
            // Persisted by the caller in the same write as the final state; a crash before
            // that write leaves the job unfinished and its locks rebuilt by `recover`.
            job.holds_locks = false;
            self.release(job.id);
        }
        Ok(())
    }

    pub(crate) async fn save_job(&self, job: &JobRecord) -> Result<()> {
        self.save(job).await
    }

    async fn save(&self, job: &JobRecord) -> Result<()> {
        let mut batch = WriteBatch::default();
        record::put_job(&mut batch, job)?;
        self.commit(batch, job).await
    }

    /// One step of the job: dispatch, send, finish.
    pub async fn step_job(&self, id: JobId) -> Result<Progress> {
        match self.dispatch(id).await? {
            Ok(dispatch) => {
                // Fault injection at the two boundaries of a step (see infra::failpoint).
                let at = format!("job={id} step={}", dispatch.envelope.step_seq);
                infra::failpoint::reach("mc.step.dispatched", &at).await;
                let outcome = self.send(&dispatch).await;
                infra::failpoint::reach("mc.step.replied", &at).await;
                self.finish(&dispatch, outcome).await
            }
            Err(progress) => Ok(progress),
        }
    }

    /// Drives the job until it stops (paused or final) or the MC is deposed.
    pub async fn run(&self, id: JobId) -> Result<Progress> {
        let waker = self.waker(id);
        loop {
            let at = match self.step_job(id).await? {
                Progress::Continue => continue,
                Progress::WaitUntil(at) => at,
                Progress::Blocked { .. } => self.clock.now_ms() + 50,
                stop => return Ok(stop),
            };
            tokio::select! {
                _ = self.clock.sleep_until(at) => {}
                _ = waker.notified() => {}
            }
        }
    }

    /// Every job that is not final and not paused: what a new leader drives after a restart.
    pub fn unfinished(&self) -> Result<Vec<JobId>> {
        Ok(record::load_jobs(&self.store)?
            .into_iter()
            .filter(|j| !j.state.is_final() && j.state != JobState::Paused)
            .map(|j| j.id)
            .collect())
    }
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> crate::jobs::limits::LimitsControl
    for Engine<S, E, C>
{
    fn limits(&self) -> Limits {
        Engine::limits(self)
    }
    fn set_limits(&self, limits: Limits) {
        Engine::set_limits(self, limits)
    }
}

fn put_shapes(batch: &mut WriteBatch, shapes: &crate::cluster::ShapeChanges) -> Result<()> {
    for record in &shapes.put {
        crate::cluster::rgs::put(batch, record)?;
    }
    for rg in &shapes.deleted {
        crate::cluster::rgs::delete(batch, *rg);
    }
    Ok(())
}

fn describe(outcome: &StepOutcome) -> String {
    match &outcome.result {
        Some(r) => format!("{r:?}"),
        None => "no outcome".into(),
    }
}

mod control;
mod step;
mod submit;
pub(crate) use control::Settled;

#[cfg(test)]
mod tests;
