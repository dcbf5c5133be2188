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

use crate::catalog::logs;
use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::{ClusterView, ViewSource};
use crate::error::{McError, Result};
use crate::ids::JobId;
use crate::jobs::executor::{Envelope, StepExecutor};
use crate::jobs::index;
use crate::jobs::limits::{LimitState, Limits};
use crate::jobs::locks::{self, LockTable};
use crate::jobs::plan::{AtomicStep, Plan, Target, Verdict, classify, possibly_done, refused};
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
    pub(crate) log_ids: Arc<crate::catalog::logs::LogIds>,
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
        let log_ids = Arc::new(crate::catalog::logs::LogIds::new(config.mc_term));
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
    pub fn log_ids(&self) -> Arc<crate::catalog::logs::LogIds> {
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

    /// Validates and plans the job against `view`, then persists it as Pending. Nothing is
    /// written when validation fails.
    pub async fn submit(&self, spec: JobSpec, view: &ClusterView) -> Result<JobRecord> {
        self.submit_with(spec, view, false).await
    }

    /// Like `submit`; with `wait_for_locks` a job whose locks are held is queued (Pending)
    /// instead of refused.
    pub async fn submit_with(
        &self,
        spec: JobSpec,
        view: &ClusterView,
        wait_for_locks: bool,
    ) -> Result<JobRecord> {
        self.submit_request(spec, view, wait_for_locks, None).await
    }

    /// Submission with a client request id: a retry with the same id returns the first
    /// submission's job, whatever the cluster looks like now, and creates nothing.
    pub async fn submit_request(
        &self,
        spec: JobSpec,
        view: &ClusterView,
        wait_for_locks: bool,
        request_id: Option<&str>,
    ) -> Result<JobRecord> {
        self.submit_inner(
            spec,
            view,
            wait_for_locks,
            request_id,
            None,
            Priority::Admin,
        )
        .await
    }

    pub(crate) async fn submit_inner(
        &self,
        spec: JobSpec,
        view: &ClusterView,
        wait_for_locks: bool,
        request_id: Option<&str>,
        parent: Option<JobId>,
        priority: Priority,
    ) -> Result<JobRecord> {
        let planned = |spec: &JobSpec| self.plan_against(spec, view);
        self.submit_planned(spec, planned, wait_for_locks, request_id, parent, priority)
            .await
    }

    /// The job's plan and locks against `view`.
    pub(crate) fn plan_against(
        &self,
        spec: &JobSpec,
        view: &ClusterView,
    ) -> Result<(Plan, locks::LockSet)> {
        let plan = spec.plan(view)?;
        Ok((
            plan,
            locks::locks_for(spec, |r| view.region(r).map(|x| x.rg)),
        ))
    }

    /// Like `submit_inner`, planned against the live view in place: a DDL call's job costs
    /// what its plan reads, not a copy of a view of a million regions. Refused instead of
    /// queued behind a lock holder unless `wait_for_locks` (a queued job runs the plan it was
    /// given at submission).
    pub(crate) async fn submit_live_with(
        &self,
        spec: JobSpec,
        cluster: &crate::cluster::LiveCluster,
        wait_for_locks: bool,
        request_id: Option<&str>,
        priority: Priority,
    ) -> Result<JobRecord> {
        let planned = |spec: &JobSpec| {
            cluster.routes(|view, index| {
                let plan = spec.plan_indexed(view, index)?;
                Ok((
                    plan,
                    locks::locks_for(spec, |r| view.region(r).map(|x| x.rg)),
                ))
            })
        };
        self.submit_planned(spec, planned, wait_for_locks, request_id, None, priority)
            .await
    }

    pub(crate) async fn submit_planned(
        &self,
        spec: JobSpec,
        planned: impl FnOnce(&JobSpec) -> Result<(Plan, locks::LockSet)>,
        wait_for_locks: bool,
        request_id: Option<&str>,
        parent: Option<JobId>,
        priority: Priority,
    ) -> Result<JobRecord> {
        let request_key = request_id
            .filter(|r| !r.is_empty())
            .map(|r| format!("req/{r}").into_bytes());
        let _guard = self.ids.lock().await;
        if let Some(key) = &request_key
            && let Some(id) = self.store.get(key)?
        {
            let id: JobId = String::from_utf8_lossy(&id)
                .parse()
                .map_err(|_| McError::corrupt("a job request record", "not a job id"))?;
            let first = self.job(id)?;
            // A retry asks for the same kind of job; another kind under a used id is a
            // caller's mistake, and answering with the first job would hide it.
            if first.spec.job_type() != spec.job_type() {
                return Err(McError::invalid(
                    "request_id",
                    format!(
                        "`{}` was already used for job {id} ({:?}); a new request needs a new id",
                        crate::error::short(request_id.unwrap_or_default()),
                        first.spec.job_type()
                    ),
                ));
            }
            return Ok(first);
        }
        let (plan, lock_set) = planned(&spec)?;
        let next: u64 = match self.store.get(b"meta/next_job_id")? {
            Some(b) => String::from_utf8_lossy(&b)
                .parse()
                .map_err(|_| McError::corrupt("meta/next_job_id", "not a number"))?,
            None => 1,
        };
        let now = self.clock.now_ms();
        let job = JobRecord {
            schema: SCHEMA_VERSION,
            id: next,
            definition_version: spec.definition_version(),
            spec,
            state: JobState::Pending,
            plan,
            phase: Phase::Forward,
            cursor: 0,
            attempts: 0,
            in_flight: None,
            uncertain: false,
            cancel_requested: false,
            seq_base: 0,
            next_attempt_at_ms: 0,
            last_error: None,
            locks: lock_set,
            holds_locks: false,
            priority,
            parent,
            children: Vec::new(),
            created_ms: now,
            updated_ms: now,
            finished_ms: 0,
        };
        let mut job = job;
        match self.acquire(&job) {
            Ok(()) => job.holds_locks = true,
            Err(_) if wait_for_locks => {}
            Err(conflict) => return Err(self.locked_error(conflict)),
        }
        let mut batch = WriteBatch::default();
        batch.put(&b"meta/next_job_id"[..], (next + 1).to_string());
        if let Some(key) = request_key {
            batch.put(key, job.id.to_string());
        }
        record::put_job(&mut batch, &job)?;
        if let Err(e) = self.commit(batch, &job).await {
            self.release(job.id);
            return Err(e);
        }
        Ok(job)
    }

    fn acquire(&self, job: &JobRecord) -> std::result::Result<(), (locks::Resource, JobId)> {
        self.lock_table
            .lock()
            .expect("lock table")
            .try_acquire(job.id, &job.locks)
    }

    /// The specs of the jobs this engine is running (unfinished, as last written).
    pub fn running_specs(&self) -> Vec<JobSpec> {
        self.cache
            .lock()
            .expect("job cache")
            .values()
            .map(|j| j.spec.clone())
            .collect()
    }

    /// Jobs that succeeded at or after `since_ms`, with when.
    pub fn recent_successes(&self, since_ms: u64) -> Vec<(u64, JobSpec)> {
        self.recent
            .lock()
            .expect("recent jobs")
            .iter()
            .filter(|(at, _)| *at >= since_ms)
            .cloned()
            .collect()
    }

    /// RGs that unfinished jobs hold exclusively.
    pub fn exclusive_rgs(&self) -> std::collections::BTreeSet<crate::ids::RgId> {
        self.lock_table.lock().expect("lock table").exclusive_rgs()
    }

    /// RGs that unfinished jobs hold locks on.
    pub fn busy_rgs(&self) -> std::collections::BTreeSet<crate::ids::RgId> {
        self.lock_table.lock().expect("lock table").locked_rgs()
    }

    fn release(&self, id: JobId) {
        self.lock_table.lock().expect("lock table").release(id);
    }

    /// "rg/12 is locked by job 88 (MigrateReplica, running)".
    fn locked_error(&self, (resource, holder): (locks::Resource, JobId)) -> McError {
        let (holder_type, holder_state) = match self.job(holder) {
            Ok(h) => (h.spec.type_name(), h.state),
            Err(_) => ("Unknown", JobState::Running),
        };
        McError::Locked {
            resource: resource.to_string(),
            holder,
            holder_type,
            holder_state,
        }
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

    /// Persists the next step of the job as dispatched. `Err(progress)` when there is nothing
    /// to send (waiting, stopped, or the job just finished).
    pub async fn dispatch(&self, id: JobId) -> Result<std::result::Result<Dispatch, Progress>> {
        let lock = self.lock(id);
        let _guard = lock.lock().await;
        let mut job = self.job(id)?;
        let now = self.clock.now_ms();
        match job.state {
            JobState::Pending => {
                if !job.holds_locks {
                    if let Err((_, holder)) = self.acquire(&job) {
                        return Ok(Err(Progress::Blocked { holder }));
                    }
                    job.holds_locks = true;
                }
                if !self
                    .limits
                    .lock()
                    .expect("limits")
                    .may_start(id, job.priority)
                {
                    return Ok(Err(Progress::WaitUntil(now + 50)));
                }
            }
            JobState::Retrying | JobState::RollingBack if now < job.next_attempt_at_ms => {
                return Ok(Err(Progress::WaitUntil(job.next_attempt_at_ms)));
            }
            JobState::Retrying | JobState::Running | JobState::RollingBack => {}
            s @ (JobState::Paused
            | JobState::Succeeded
            | JobState::Failed
            | JobState::Cancelled) => {
                return Ok(Err(Progress::Stopped(s)));
            }
        }
        // Store limits are checked before anything changes, so a throttled step leaves the job
        // exactly as it was.
        if let Some((_, step)) = job.current_step()
            && let Err(at) = self.limits.lock().expect("limits").admit(id, &step, now)
        {
            return Ok(Err(Progress::WaitUntil(at)));
        }
        match (job.state, &job.phase) {
            (JobState::Pending, Phase::Rollback { .. }) => {
                self.transition(&mut job, JobState::RollingBack)?
            }
            (JobState::Pending | JobState::Retrying, _) => {
                self.transition(&mut job, JobState::Running)?
            }
            _ => {}
        }
        if job.cancel_requested
            && job.phase == Phase::Forward
            && let Some(progress) = self.take_cancel(&mut job).await?
        {
            return Ok(Err(progress));
        }
        if let Some((_, AtomicStep::WaitChildren)) = job.current_step() {
            // Not sent to a store: the engine itself runs a round of the children.
            return Ok(Err(self.wait_children(&mut job, now).await?));
        }
        let Some((step_seq, step)) = job.current_step() else {
            let end = match &job.phase {
                Phase::Forward => JobState::Succeeded,
                Phase::Rollback {
                    cancelled: true, ..
                } => JobState::Cancelled,
                Phase::Rollback {
                    cancelled: false, ..
                } => JobState::Failed,
            };
            self.transition(&mut job, end)?;
            // What the job did goes into the view at once, and its RG shapes into the catalog
            // with the job's final state: a new leader starts from them.
            let shapes = match (&*self.view.read().expect("view source"), end) {
                (Some(view), JobState::Succeeded) => view.job_succeeded(&job.spec.effect()),
                _ => Default::default(),
            };
            let mut batch = WriteBatch::default();
            record::put_job(&mut batch, &job)?;
            put_shapes(&mut batch, &shapes)?;
            self.commit(batch, &job).await?;
            if !shapes.is_empty()
                && let Some(view) = &*self.view.read().expect("view source")
            {
                view.shapes_committed(&shapes);
            }
            if end == JobState::Succeeded {
                let mut recent = self.recent.lock().expect("recent jobs");
                recent.push_back((now, job.spec.clone()));
                while recent.len() > 10_000 {
                    recent.pop_front();
                }
            }
            return Ok(Err(Progress::Stopped(end)));
        };
        // A recovered in-flight step keeps its sequence number and gets a new attempt.
        let attempt = job.attempts + 1;
        job.attempts = attempt;
        job.in_flight = Some(InFlight { step_seq, attempt });
        job.updated_ms = now;
        let envelope = Envelope {
            job_id: id,
            step_seq,
            attempt,
            mc_term: self.config.mc_term,
            deadline_ms: self.config.step_deadline_ms,
        };
        let exec = ExecutionRecord {
            job_id: id,
            step_seq,
            attempt,
            step: step.clone(),
            store: match step.target() {
                Target::Store(s) => Some(s),
                _ => None,
            },
            mc_term: self.config.mc_term,
            dispatched_ms: now,
            finished_ms: 0,
            outcome: vec![],
        };
        let mut batch = WriteBatch::default();
        record::put_job(&mut batch, &job)?;
        record::put_exec(&mut batch, &exec)?;
        self.commit(batch, &job).await?;
        Ok(Ok(Dispatch {
            envelope,
            step,
            exec,
        }))
    }

    pub async fn send(&self, dispatch: &Dispatch) -> StepOutcome {
        self.executor
            .execute(dispatch.envelope, &dispatch.step)
            .await
    }

    /// Persists the outcome of a dispatched step together with the job's next state.
    pub async fn finish(&self, dispatch: &Dispatch, outcome: StepOutcome) -> Result<Progress> {
        let id = dispatch.envelope.job_id;
        let took_ms = self
            .clock
            .now_ms()
            .saturating_sub(dispatch.exec.dispatched_ms);
        self.metrics.step_finished(
            &dispatch.step.kind().as_str_name()[10..].to_lowercase(),
            took_ms as f64 / 1e3,
        );
        let lock = self.lock(id);
        let _guard = lock.lock().await;
        let mut job = self.job(id)?;
        let in_flight = InFlight {
            step_seq: dispatch.envelope.step_seq,
            attempt: dispatch.envelope.attempt,
        };
        if job.in_flight.as_ref() != Some(&in_flight) {
            // A newer attempt superseded this one (recovery re-sent it); its outcome decides.
            return Ok(Progress::Continue);
        }
        let now = self.clock.now_ms();
        let verdict = classify(&dispatch.step, &outcome);
        self.limits
            .lock()
            .expect("limits")
            .finished(id, &dispatch.step);
        // The job still names this attempt as in flight, so its dispatch record is the one
        // persisted with it.
        let mut exec = dispatch.exec.clone();
        exec.finished_ms = now;
        exec.outcome = outcome.encode_to_vec();
        let maybe = possibly_done(&outcome, id, dispatch.envelope.step_seq);
        let progress = match verdict {
            Verdict::Deposed => return Ok(Progress::Deposed),
            Verdict::Done => {
                job.in_flight = None;
                job.cursor += 1;
                job.attempts = 0;
                job.uncertain = false;
                // Undo steps keep the error that caused the rollback: it says why the job failed.
                if job.phase == Phase::Forward {
                    job.last_error = None;
                }
                Progress::Continue
            }
            Verdict::Retry if job.attempts < self.config.max_attempts => {
                job.in_flight = None;
                job.uncertain |= maybe;
                job.last_error = Some(describe(&outcome));
                let at = now + self.backoff(id, job.attempts);
                job.next_attempt_at_ms = at;
                if job.state == JobState::Running {
                    self.transition(&mut job, JobState::Retrying)?;
                }
                Progress::WaitUntil(at)
            }
            Verdict::Retry | Verdict::Abort => {
                job.in_flight = None;
                job.uncertain |= maybe;
                job.last_error = Some(describe(&outcome));
                if job.uncertain && job.at_point_of_no_return() {
                    // Rolling back a step that may have passed the point of no return would
                    // undo the wrong thing: learn what happened first.
                    match self.settle(&job).await {
                        Settled::Done => {
                            job.cursor += 1;
                            job.attempts = 0;
                            job.uncertain = false;
                            job.last_error = None;
                            Progress::Continue
                        }
                        Settled::NotDone => {
                            job.uncertain = false;
                            self.abort(&mut job, true)?
                        }
                        Settled::Unknown(why) => {
                            let (seq, step) = job.current_step().expect("at a step");
                            job.last_error = Some(format!(
                                "step {seq} ({}) may have run, and it is the point of no return: \
                                 not rolled back ({why}); retry resumes at it. Last outcome: {}",
                                step.kind().as_str_name(),
                                describe(&outcome)
                            ));
                            self.transition(&mut job, JobState::Failed)?;
                            Progress::Stopped(JobState::Failed)
                        }
                    }
                } else {
                    // A step the store refused outright (and no earlier attempt of which may
                    // have run) changed nothing: its own undo is not run.
                    let own = job.uncertain || !refused(&outcome);
                    self.abort(&mut job, own)?
                }
            }
        };
        job.updated_ms = now;
        let mut batch = WriteBatch::default();
        record::put_job(&mut batch, &job)?;
        record::put_exec(&mut batch, &exec)?;
        // The store that ran the step described the RG as it is now: the view and the
        // catalog's RG shapes take it in, in the same write.
        let mut shapes = crate::cluster::ShapeChanges::default();
        if let (Verdict::Done, Some(step_outcome::Result::Ok(ok)), Some(rg)) =
            (verdict, outcome.result.as_ref(), dispatch.envelope_rg())
            && let Some(view) = &*self.view.read().expect("view source")
        {
            // Leader steps ran on the leader; a store step, only if its store said it leads.
            let from_leader = match dispatch.step.target() {
                Target::Leader(_) => true,
                Target::Store(s) => ok.leader_store_id == s,
                Target::Children => false,
            };
            shapes = view.step_succeeded(rg, &dispatch.step, ok, from_leader);
            put_shapes(&mut batch, &shapes)?;
        }
        self.commit(batch, &job).await?;
        if !shapes.is_empty()
            && let Some(view) = &*self.view.read().expect("view source")
        {
            view.shapes_committed(&shapes);
        }
        Ok(progress)
    }

    /// A forward step failed for good: roll back what was done, or fail when past the point
    /// of no return. An undo step failing for good leaves the job Failed, its error recorded.
    fn abort(&self, job: &mut JobRecord, own: bool) -> Result<Progress> {
        match &job.phase {
            Phase::Forward => match job.plan.rollback_from(job.cursor) {
                Ok(_) => {
                    // A cancel waiting for this outcome ends the job Cancelled, not Failed.
                    let cancelled = job.cancel_requested;
                    let cursor = job.cursor;
                    self.start_rollback(job, cursor, cancelled, own)?;
                    Ok(Progress::Continue)
                }
                Err(_) => {
                    self.transition(job, JobState::Failed)?;
                    Ok(Progress::Stopped(JobState::Failed))
                }
            },
            Phase::Rollback { .. } => {
                self.transition(job, JobState::Failed)?;
                Ok(Progress::Stopped(JobState::Failed))
            }
        }
    }

    /// Exponential backoff with jitter derived from the job and attempt, so runs repeat.
    fn backoff(&self, id: JobId, attempt: u32) -> u64 {
        let exp = self
            .config
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.min(20).saturating_sub(1));
        let delay = exp.min(self.config.backoff_max_ms);
        let jitter = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(attempt)).rotate_left(17)
            % (delay / 2 + 1);
        delay / 2 + jitter
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
pub(crate) use control::Settled;

#[cfg(test)]
mod tests;
