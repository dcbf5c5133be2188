//! What operators and the engine's own abort path do to a job between steps: pause, resume,
//! cancel, retry — and, before any of them rolls back, learning whether a step whose outcome
//! is unknown happened (the point of no return is decided on facts, not on hope).
//!
//! The rules (the point of no return, docs/design.md):
//! - A step that was dispatched and has no outcome counts as possibly done. A cancel that
//!   arrives then is recorded and acted on when the outcome is known.
//! - Before rolling back a point-of-no-return step that may have happened, the engine asks the
//!   stores (`StepExecutor::probe`). Landed: the job rolls forward. Not landed: it rolls back.
//!   Unknown: it does not roll back; the job fails with the step named, and a retry resumes
//!   at it.
//! - A retry resumes where the job stopped, with fresh idempotency keys, after checking the
//!   cluster again; it never runs a step that a completed rollback or the point of no return
//!   left behind.

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::cluster::ClusterView;
use crate::error::{McError, Result};
use crate::ids::JobId;
use crate::jobs::engine::{Engine, Progress};
use crate::jobs::executor::{Probe, StepExecutor};
use crate::jobs::record::{JobRecord, Phase};
use crate::jobs::state::JobState;

/// What the engine does with a forward step that must not be rolled back blindly.
pub(crate) enum Settled {
    /// It happened: count it as done.
    Done,
    /// It did not happen: rolling back is safe.
    NotDone,
    /// Nobody can tell now.
    Unknown(String),
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Engine<S, E, C> {
    pub async fn pause(&self, id: JobId) -> Result<JobRecord> {
        self.change(id, |engine, job| engine.transition(job, JobState::Paused))
            .await
    }

    pub async fn resume(&self, id: JobId) -> Result<JobRecord> {
        let job = self
            .change(id, |engine, job| engine.transition(job, JobState::Running))
            .await?;
        self.wake(id);
        Ok(job)
    }

    /// Rolls back what was done and ends Cancelled; refused past the point of no return. With
    /// a step in flight, or a point-of-no-return step whose outcome is unknown, the cancel is
    /// recorded (`cancel_requested`) and taken once the outcome is known: it rolls back if the
    /// step did not pass the point of no return, and otherwise the job rolls forward.
    pub async fn cancel(&self, id: JobId) -> Result<JobRecord> {
        let job = self
            .change(id, |engine, job| {
                if job.state == JobState::Pending {
                    return engine.transition(job, JobState::Cancelled);
                }
                if job.phase != Phase::Forward {
                    return Err(McError::FailedPrecondition {
                        subject: format!("job/{}", job.id),
                        state: job.state.to_string(),
                        required: "a job still running its forward steps".into(),
                    });
                }
                refuse_past_no_return(job)?;
                if job.in_flight.is_some() || (job.uncertain && job.at_point_of_no_return()) {
                    if job.state == JobState::Paused {
                        engine.transition(job, JobState::Running)?;
                    }
                    job.cancel_requested = true;
                    job.next_attempt_at_ms = 0;
                    return Ok(());
                }
                engine.start_rollback(job, job.cursor, true, true)
            })
            .await?;
        self.wake(id);
        if !job.children.is_empty() && job.state == JobState::RollingBack {
            self.cancel_children(&job).await;
        }
        Ok(job)
    }

    /// Cancels what a cancelled parent's children still have to do. A child past its point
    /// of no return is left to finish.
    pub(crate) async fn cancel_children(&self, parent: &JobRecord) {
        for child in &parent.children {
            match self.job(*child) {
                Ok(c) if !c.state.is_final() && c.phase == Phase::Forward => {
                    if let Err(e) = Box::pin(self.cancel(*child)).await {
                        tracing::info!(parent = parent.id, child, error = %e, "child not cancelled");
                    }
                }
                _ => {}
            }
        }
    }

    /// Starts rolling back from forward step `from`, its own undo included (`own`: a step that
    /// may have half-happened is undone too) unless the store refused it outright.
    pub(crate) fn start_rollback(
        &self,
        job: &mut JobRecord,
        from: usize,
        cancelled: bool,
        own: bool,
    ) -> Result<()> {
        let from = from.min(job.plan.steps.len().saturating_sub(1));
        let steps = job
            .plan
            .rollback(from, own)
            .map_err(|r| past(job, r.since_step))?;
        self.transition(job, JobState::RollingBack)?;
        job.phase = Phase::Rollback { steps, cancelled };
        job.cursor = 0;
        job.attempts = 0;
        job.in_flight = None;
        job.uncertain = false;
        job.cancel_requested = false;
        job.next_attempt_at_ms = 0;
        Ok(())
    }

    /// A cancel recorded while the step's outcome was unknown, acted on before the next send.
    /// `Ok(None)`: the job goes on (forward, or the step is sent again to learn its outcome).
    pub(crate) async fn take_cancel(&self, job: &mut JobRecord) -> Result<Option<Progress>> {
        if job.uncertain && job.at_point_of_no_return() {
            match self.settle(job).await {
                Settled::Done => {
                    // It passed the point of no return: the cancel came too late.
                    let passed = job.current_step().map(|(seq, _)| seq).unwrap_or(0);
                    job.cursor += 1;
                    job.attempts = 0;
                    job.uncertain = false;
                    job.cancel_requested = false;
                    job.last_error = Some(format!(
                        "cancel not taken: step {passed} passed the point of no return; rolling forward"
                    ));
                    self.save_job(job).await?;
                    return Ok(Some(Progress::Continue));
                }
                Settled::NotDone => job.uncertain = false,
                // Sending it again tells: the store answers a repeat with its outcome, or
                // runs it; either way the next finish decides.
                Settled::Unknown(_) => return Ok(None),
            }
        }
        if job.cursor >= job.plan.steps.len() {
            job.cancel_requested = false;
            return Ok(None);
        }
        let cursor = job.cursor;
        if let Err(e) = self.start_rollback(job, cursor, true, true) {
            // The step just finished passed the point of no return: the job rolls forward.
            job.cancel_requested = false;
            job.last_error = Some(format!("cancel not taken: {e}; rolling forward"));
            return Ok(None);
        }
        self.save_job(job).await?;
        if !job.children.is_empty() {
            self.cancel_children(job).await;
        }
        Ok(Some(Progress::Continue))
    }

    /// Learns whether the current forward step happened, from the stores.
    pub(crate) async fn settle(&self, job: &JobRecord) -> Settled {
        let Some((step_seq, step)) = job.current_step() else {
            return Settled::NotDone;
        };
        let envelope = crate::jobs::executor::Envelope {
            job_id: job.id,
            step_seq,
            attempt: job.attempts,
            mc_term: self.config_term(),
            deadline_ms: 0,
        };
        match self.executor().probe(envelope, &step).await {
            Probe::Landed => Settled::Done,
            Probe::NotLanded => Settled::NotDone,
            Probe::Unknown(why) => Settled::Unknown(why),
        }
    }

    /// Runs a Failed job again from where it stopped, after checking the cluster: a job that
    /// failed forward (past its point of no return, or with a step's outcome unknown) resumes
    /// at the failed step; a job whose rollback finished starts again from its first step,
    /// re-planned against `view` (and with the locks the new plan needs); a job whose rollback
    /// failed finishes the rollback, and ends as it would have (Failed, or Cancelled after a
    /// cancel) — retried once more, it then starts again. Every step sent from here has a new
    /// sequence number.
    pub async fn retry(&self, id: JobId, view: &ClusterView) -> Result<JobRecord> {
        let job = self
            .change(id, |engine, job| {
                if job.state != JobState::Failed {
                    return state::check(job.id, job.state, JobState::Pending);
                }
                let base = job.next_seq_base();
                match &mut job.phase {
                    Phase::Forward => {
                        crate::jobs::checks::resumable(view, &job.plan.steps[job.cursor..])?;
                    }
                    Phase::Rollback { steps, .. } if job.cursor < steps.len() => {
                        crate::jobs::checks::resumable_steps(view, &steps[job.cursor..])?;
                    }
                    Phase::Rollback { .. } => {
                        job.plan = job.spec.plan(view)?;
                        job.locks = crate::jobs::locks::locks_for(&job.spec, |r| {
                            view.region(r).map(|x| x.rg)
                        });
                        job.phase = Phase::Forward;
                        job.cursor = 0;
                    }
                }
                engine.transition(job, JobState::Pending)?;
                job.seq_base = base;
                job.holds_locks = false;
                job.attempts = 0;
                job.in_flight = None;
                job.cancel_requested = false;
                job.next_attempt_at_ms = 0;
                job.finished_ms = 0;
                Ok(())
            })
            .await?;
        self.wake(id);
        Ok(job)
    }

    pub(crate) async fn change(
        &self,
        id: JobId,
        f: impl FnOnce(&Self, &mut JobRecord) -> Result<()>,
    ) -> Result<JobRecord> {
        let lock = self.lock(id);
        let _guard = lock.lock().await;
        let mut job = self.job(id)?;
        f(self, &mut job)?;
        self.save(&job).await?;
        Ok(job)
    }
}

use crate::jobs::state;

/// Refuses a cancel once a step at or before the cursor passed the point of no return.
fn refuse_past_no_return(job: &JobRecord) -> Result<()> {
    if let Some(i) = job.plan.steps[..job.cursor.min(job.plan.steps.len())]
        .iter()
        .position(|s| s.point_of_no_return)
    {
        return Err(past(job, i));
    }
    Ok(())
}

fn past(job: &JobRecord, since_step: usize) -> McError {
    McError::FailedPrecondition {
        subject: format!("job/{}", job.id),
        state: format!("past its point of no return (step {})", since_step + 1),
        required: "a job that can still be rolled back".into(),
    }
}
