//! Submitting a job: validated and planned against the view, its locks taken or queued for,
//! persisted as Pending before anything runs; and the lock table's answers about who holds
//! what.

use super::*;

impl<S: CatalogStore, E: StepExecutor, C: Clock> Engine<S, E, C> {
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
    pub async fn submit_live_with(
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

    pub(super) fn acquire(
        &self,
        job: &JobRecord,
    ) -> std::result::Result<(), (locks::Resource, JobId)> {
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

    pub(super) fn release(&self, id: JobId) {
        self.lock_table.lock().expect("lock table").release(id);
    }

    /// "rg/12 is locked by job 88 (MigrateReplica, running)".
    pub(super) fn locked_error(&self, (resource, holder): (locks::Resource, JobId)) -> McError {
        let (holder_type, holder_state) = match self.job(holder) {
            Ok(h) => (h.spec.type_name(), h.state.name()),
            Err(_) => ("Unknown", JobState::Running.name()),
        };
        McError::Locked {
            resource: resource.to_string(),
            holder,
            holder_type,
            holder_state,
        }
    }
}
