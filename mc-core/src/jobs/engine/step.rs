//! Driving a job one step at a time: the step persisted as dispatched before it is sent, sent
//! to its store, and its outcome persisted and classified (done, retry, roll back, or past the
//! point of no return) before the job moves on.

use super::*;

impl<S: CatalogStore, E: StepExecutor, C: Clock> Engine<S, E, C> {
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
        let verdict = match job.phase {
            Phase::Forward => classify(&dispatch.step, &outcome),
            Phase::Rollback { .. } => classify_undo(&dispatch.step, &outcome),
        };
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
    pub(super) fn abort(&self, job: &mut JobRecord, own: bool) -> Result<Progress> {
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
    pub(super) fn backoff(&self, id: JobId, attempt: u32) -> u64 {
        let exp = self
            .config
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.min(20).saturating_sub(1));
        let delay = exp.min(self.config.backoff_max_ms);
        let jitter = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(attempt)).rotate_left(17)
            % (delay / 2 + 1);
        delay / 2 + jitter
    }
}
