//! A DDL request as a procedure with named, persisted stages (GreptimeDB's ddl procedures are
//! the model): each request is driven by one task of its own, from the stage its record names,
//! woken by the completion of its jobs (never polling the catalog), on the engine's clock.
//! Callers only wait on it, so a caller that gives up — its wait limit, a dropped connection —
//! leaves nothing half done: the procedure goes on, and a request that fails removes what it
//! created and frees its names (cleaning up is a stage of its own, resumed by a new leader).
//!
//! Create: RGs seeded with their regions (stage 0) → the regions that go to RGs that exist, one
//! job per RG (stage 1) → Done. A new RG's job ends with its designated leader leading, and the
//! view learns the leader from that step's outcome, so nothing waits for a heartbeat.
//! Drop: regions (0) → emptied RGs (1) → Done. Truncate: old regions (0) → new ones (1) → Done.
//! Stage 0 of both reads the regions as they are when it runs, and runs again until none is
//! left: a split that held a region when the request started leaves its right half behind.
//! Any job failing, a refusal that does not pass, or the request outliving `PROCEDURE_LIMIT`:
//! → CleaningUp (names freed at once; what was made is deleted) → Failed.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::error::{McError, Result};
use crate::ids::{JobId, ObjectId};
use crate::jobs::JobState;
use crate::jobs::executor::StepExecutor;
use crate::jobs::queue::Priority;
use crate::jobs::spec::JobSpec;
use crate::objects::ddl::{Ddl, Outcome, failed, stepped_down};
use crate::objects::records::{self, DdlRecord, RequestKind, RequestState};

/// How long a request may take before it fails (and cleans up) instead of waiting on.
const PROCEDURE_LIMIT_MS: u64 = 10 * 60_000;

/// How many times a Drop or Truncate deletes the regions its objects hold before it gives up
/// (each round after the first deletes what a split or merge in flight left behind).
const DELETE_ROUNDS: u32 = 8;

/// Why a stage stopped.
enum Stop {
    /// This MC stopped leading: the next leader resumes the request from its record.
    SteppedDown,
    /// The request fails, with this error.
    Fail(String),
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Ddl<S, E, C> {
    /// Drives the requests a crash or a leader change left half done, each in its own task.
    pub fn resume_unfinished(self: &Arc<Self>) -> Result<usize> {
        let pending = records::unfinished_requests(self.store())?;
        let n = pending.len();
        for rec in pending {
            self.start(rec);
        }
        Ok(n)
    }

    /// The request's driver: started once per request and term, shared by every caller.
    pub(super) fn start(self: &Arc<Self>, rec: DdlRecord) -> watch::Receiver<DdlRecord> {
        let mut procedures = self.procedures.lock().expect("ddl procedures");
        if let Some(rx) = procedures.get(&rec.request_id) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(rec.clone());
        procedures.insert(rec.request_id.clone(), rx.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let id = rec.request_id.clone();
            me.run(rec, &tx).await;
            me.procedures.lock().expect("ddl procedures").remove(&id);
        });
        rx
    }

    /// Answers a call for `rec`: its outcome once Done, its failure once it failed, or — while
    /// it runs — waits for the end (`wait`) or for its first jobs, within the wait limit.
    pub(super) async fn answer(
        self: &Arc<Self>,
        rec: DdlRecord,
        kind: RequestKind,
        wait: bool,
    ) -> Result<Outcome> {
        if rec.kind != kind {
            return Err(McError::invalid(
                "request_id",
                format!("already used by a {:?} request", rec.kind),
            ));
        }
        let mut rx = match rec.state {
            RequestState::Done => return Ok(self.outcome(&rec).await),
            RequestState::Failed | RequestState::CleaningUp => return Err(failed(&rec)),
            RequestState::Running => self.start(rec.clone()),
        };
        let enough =
            |r: &DdlRecord| r.state != RequestState::Running || (!wait && !r.job_ids.is_empty());
        let waited = tokio::time::timeout(self.wait_limit, rx.wait_for(enough))
            .await
            .map(|r| r.map(|_| ()));
        let now = rx.borrow().clone();
        match (waited, now.state) {
            (_, RequestState::Done) => Ok(self.outcome(&now).await),
            (_, RequestState::Failed | RequestState::CleaningUp) => Err(failed(&now)),
            (Ok(Ok(_)), RequestState::Running) => Ok(self.outcome(&now).await),
            // The driver ended without finishing: this MC stopped leading.
            (Ok(Err(_)), RequestState::Running) => Err(stepped_down()),
            (Err(_), RequestState::Running) => Err(McError::Unavailable {
                reason: format!(
                    "DDL request `{}` is still running (jobs {:?}); call again with the same \
                     request id to keep waiting",
                    now.request_id, now.job_ids
                ),
                retry_after_ms: 1_000,
            }),
        }
    }

    pub(super) async fn outcome(&self, rec: &DdlRecord) -> Outcome {
        let objects = if rec.kind == RequestKind::Drop {
            rec.dropped.clone()
        } else {
            let o = self.objects.lock().await;
            rec.objects
                .iter()
                .filter_map(|id| o.records.get(id).cloned())
                .collect()
        };
        Outcome {
            objects,
            job_ids: rec.job_ids.clone(),
        }
    }

    /// The procedure: runs the stages from the one the record names, then finishes, or fails
    /// and cleans up. Every change is persisted before it is published to waiting callers.
    async fn run(self: &Arc<Self>, mut rec: DdlRecord, tx: &watch::Sender<DdlRecord>) {
        if rec.state == RequestState::CleaningUp {
            self.clean_up(rec, tx).await;
            return;
        }
        match self.stages(&mut rec, tx).await {
            Ok(()) => match self.finish(rec).await {
                Ok(done) => {
                    tx.send_replace(done);
                }
                Err(e) => tracing::warn!(error = %e, "DDL request not finished"),
            },
            Err(Stop::SteppedDown) => {}
            Err(Stop::Fail(error)) => match self.fail(rec, error).await {
                Ok(cleaning) => {
                    tx.send_replace(cleaning.clone());
                    if cleaning.kind == RequestKind::Create {
                        self.clean_up(cleaning, tx).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "DDL request failure not recorded"),
            },
        }
    }

    async fn stages(
        self: &Arc<Self>,
        rec: &mut DdlRecord,
        tx: &watch::Sender<DdlRecord>,
    ) -> std::result::Result<(), Stop> {
        let deadline = rec.created_ms + PROCEDURE_LIMIT_MS;
        let mut rounds = 0;
        while rec.stage < 2 {
            let specs = self.stage(rec, rec.stage).await;
            if specs.is_empty() {
                // Nothing to run (a call whose regions all went to new RGs): on at once.
                rec.stage += 1;
                continue;
            }
            let ids = self.submit_all(&rec.request_id, specs, deadline).await?;
            for id in &ids {
                if !rec.job_ids.contains(id) {
                    rec.job_ids.push(*id);
                }
            }
            self.persist(rec).await?;
            tx.send_replace(rec.clone());
            if let Some(error) = self.wait_jobs(&ids, deadline).await? {
                return Err(Stop::Fail(error));
            }
            // A Drop or Truncate deletes until the objects hold no region: a split that held a
            // region when this stage read them has left a right half behind it. A few rounds
            // cover any split or merge in flight (the schedulers start no new one meanwhile).
            if rec.stage == 0 && rec.kind != RequestKind::Create {
                rounds += 1;
                if !self.stage(rec, 0).await.is_empty() {
                    if rounds >= DELETE_ROUNDS {
                        return Err(Stop::Fail(format!(
                            "regions of the objects still appear after {DELETE_ROUNDS} rounds \
                             of deletes"
                        )));
                    }
                    continue;
                }
            }
            rec.stage += 1;
            self.persist(rec).await?;
            tx.send_replace(rec.clone());
        }
        Ok(())
    }

    async fn persist(&self, rec: &DdlRecord) -> std::result::Result<(), Stop> {
        // A procedure of an ended term writes nothing more: the next leader drives the request
        // from its record (this MC may even lead again by then, with a procedure of its own).
        if self.runner.is_stopped() {
            return Err(Stop::SteppedDown);
        }
        let mut batch = WriteBatch::default();
        records::put_request(&mut batch, rec).map_err(|e| Stop::Fail(e.to_string()))?;
        self.store().write(batch).await.map_err(|e| match e {
            e if e.is_retryable() => Stop::SteppedDown,
            e => Stop::Fail(e.to_string()),
        })
    }

    /// Submits and drives each job. Refusals that pass by themselves (the view has not yet
    /// heard of a new RG, a lock, an RG not heard from since a leader change) are retried
    /// until the deadline; others fail the request.
    async fn submit_all(
        &self,
        request_id: &str,
        specs: Vec<(String, JobSpec)>,
        deadline_ms: u64,
    ) -> std::result::Result<Vec<JobId>, Stop> {
        let engine = self.runner.engine();
        let clock = engine.clock();
        let mut ids = Vec::with_capacity(specs.len());
        for (suffix, spec) in specs {
            let key = format!("ddl:{request_id}:{suffix}");
            // A delete queued behind another job on its region would run on the epoch it was
            // planned with and fail on what that job changed (a split): it waits unplanned, and
            // is planned once the region is free.
            let queue = !matches!(
                spec,
                JobSpec::DeleteRegion { .. } | JobSpec::DeleteRg { .. }
            );
            let job = loop {
                if self.runner.is_stopped() {
                    return Err(Stop::SteppedDown);
                }
                match engine
                    .submit_live_with(
                        spec.clone(),
                        &self.cluster,
                        queue,
                        Some(&key),
                        Priority::Ddl,
                    )
                    .await
                {
                    Ok(job) => break Some(job),
                    // What a delete was for is gone already (merged into its neighbour, or
                    // deleted by another request while this one waited for its lock): the next
                    // read of the view tells whether anything is left to delete.
                    Err(McError::NotFound { .. }) if !queue => break None,
                    Err(
                        e @ (McError::NotFound { .. }
                        | McError::FailedPrecondition { .. }
                        | McError::Locked { .. }),
                    ) if clock.now_ms() < deadline_ms => {
                        tracing::debug!(error = %e, job = %key, "DDL job not submitted yet");
                        clock.sleep_until(clock.now_ms() + 50).await;
                    }
                    Err(e) if e.is_retryable() && clock.now_ms() < deadline_ms => {
                        clock.sleep_until(clock.now_ms() + 50).await;
                    }
                    Err(e) => {
                        return Err(Stop::Fail(format!(
                            "{} job `{key}` could not be submitted: {e}",
                            spec.type_name()
                        )));
                    }
                }
            };
            if let Some(job) = job {
                self.runner.drive(job.id);
                ids.push(job.id);
            }
        }
        Ok(ids)
    }

    /// Waits (woken by the engine as each job ends) until every job ended — all of them, so a
    /// clean-up after a failure sees everything its siblings made; the first that did not
    /// succeed, with its error.
    async fn wait_jobs(
        &self,
        ids: &[JobId],
        deadline_ms: u64,
    ) -> std::result::Result<Option<String>, Stop> {
        let engine = self.runner.engine();
        let clock = engine.clock();
        let mut first_failure = None;
        for id in ids {
            let ended = tokio::select! {
                job = engine.wait_final(*id) => job,
                _ = clock.sleep_until(deadline_ms) => {
                    return Ok(Some(format!(
                        "job {id} did not end within {} min",
                        PROCEDURE_LIMIT_MS / 60_000
                    )));
                }
            };
            let job = match ended {
                Ok(job) => job,
                Err(_) if self.runner.is_stopped() => return Err(Stop::SteppedDown),
                Err(e) => return Err(Stop::Fail(e.to_string())),
            };
            if job.state != JobState::Succeeded && first_failure.is_none() {
                let error = job
                    .last_error
                    .clone()
                    .unwrap_or_else(|| job.state.to_string());
                first_failure = Some(format!(
                    "{} job {id} {}: {error}",
                    job.spec.type_name(),
                    job.state
                ));
            }
        }
        Ok(first_failure)
    }

    /// Every job succeeded: the objects serve (or are gone), and the request is Done.
    async fn finish(&self, mut rec: DdlRecord) -> Result<DdlRecord> {
        if self.runner.is_stopped() {
            return Err(stepped_down());
        }
        let mut objects = self.objects.lock().await;
        let mut batch = WriteBatch::default();
        objects.generation += 1;
        match rec.kind {
            RequestKind::Create | RequestKind::Truncate => {
                for id in &rec.objects {
                    if let Some(r) = objects.records.get_mut(id) {
                        for rep in rec.replacements.iter().filter(|x| x.object == *id) {
                            r.regions.retain(|x| x.id != rep.old);
                            r.regions.push(rep.new.clone());
                            r.rg.get_or_insert(rep.rg);
                        }
                        r.state = crate::objects::ObjectState::Serving;
                        records::put_object(&mut batch, r)?;
                    }
                }
            }
            RequestKind::Drop => {
                for id in &rec.objects {
                    records::delete_object(&mut batch, *id);
                    objects.records.remove(id);
                    let _ = objects.tree.drop_object(topology::ObjectId(*id));
                }
            }
        }
        rec.state = RequestState::Done;
        records::put_request(&mut batch, &rec)?;
        self.store().write(batch).await?;
        self.release(&rec.request_id);
        Ok(rec)
    }

    /// The request failed: a create frees its names at once (its objects are removed) and
    /// moves on to cleaning up what it made; the error answers every retry with its id.
    async fn fail(&self, mut rec: DdlRecord, error: String) -> Result<DdlRecord> {
        if self.runner.is_stopped() {
            return Err(stepped_down());
        }
        tracing::warn!(request = %rec.request_id, %error, "DDL request failed");
        rec.error = Some(error);
        rec.state = if rec.kind == RequestKind::Create {
            RequestState::CleaningUp
        } else {
            RequestState::Failed
        };
        let mut objects = self.objects.lock().await;
        let mut batch = WriteBatch::default();
        if rec.kind == RequestKind::Create {
            for id in &rec.objects {
                records::delete_object(&mut batch, *id);
            }
        }
        records::put_request(&mut batch, &rec)?;
        self.store().write(batch).await?;
        self.release(&rec.request_id);
        if rec.kind == RequestKind::Create {
            objects.generation += 1;
            for id in &rec.objects {
                objects.records.remove(id);
                let _ = objects.tree.drop_object(topology::ObjectId(*id));
            }
        }
        Ok(rec)
    }

    /// Deletes the regions and RGs a failed create made, then records the request Failed.
    /// Its jobs have request ids of their own, so a new leader resuming it creates none twice.
    async fn clean_up(self: &Arc<Self>, mut rec: DdlRecord, tx: &watch::Sender<DdlRecord>) {
        let deadline = self.runner.engine().clock().now_ms() + PROCEDURE_LIMIT_MS;
        let set: BTreeSet<ObjectId> = rec.objects.iter().copied().collect();
        let regions: Vec<(String, JobSpec)> = self.cluster.read(|view| {
            view.regions
                .values()
                .filter(|r| set.contains(&r.object))
                .map(|r| {
                    (
                        format!("undo-region:{}", r.id),
                        JobSpec::DeleteRegion { region: r.id },
                    )
                })
                .collect()
        });
        // The regions first, then the RGs the request made that are still there.
        let rgs = |me: &Self| -> Vec<(String, JobSpec)> {
            rec.new_rgs
                .iter()
                .filter(|n| me.cluster.read(|v| v.rg(n.rg).is_some()))
                .map(|n| (format!("undo-rg:{}", n.rg), JobSpec::DeleteRg { rg: n.rg }))
                .collect()
        };
        for phase in 0..2 {
            let specs = if phase == 0 {
                regions.clone()
            } else {
                rgs(self)
            };
            if specs.is_empty() {
                continue;
            }
            match self.submit_all(&rec.request_id, specs, deadline).await {
                Ok(ids) => match self.wait_jobs(&ids, deadline).await {
                    Ok(None) => {}
                    Ok(Some(e)) => {
                        tracing::warn!(request = %rec.request_id, error = %e, "DDL clean-up job failed")
                    }
                    Err(_) => return,
                },
                Err(Stop::SteppedDown) => return,
                Err(Stop::Fail(e)) => {
                    tracing::warn!(request = %rec.request_id, error = %e, "DDL clean-up stopped")
                }
            }
        }
        rec.state = RequestState::Failed;
        if self.persist(&rec).await.is_ok() {
            tx.send_replace(rec);
        }
    }
}
