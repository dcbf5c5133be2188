//! The server's side of scheduling: on the leader's ticker, one [`Round`] against the live
//! view, planned in place under its read lock (a view of a million regions is never copied),
//! then each proposal turned into a job through `Engine::propose_live` (the decision, taken or
//! refused, goes to the scheduling log with its scores; a refusal also to the error queue) and
//! each fresh skip into the scheduling log. mcsim runs the same `Round`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::{ClusterView, LiveCluster};
use crate::error::{McError, Result};
use crate::history::{self as logs, Decision as LogDecision};
use crate::ids::{JobId, RgId};
use crate::jobs::JobSpec;
use crate::jobs::executor::StepExecutor;
use crate::jobs::runner::JobRunner;
use crate::jobs::spec::NewId;
use crate::schedule::config::{self, ScheduleConfig};
pub use crate::schedule::round::SchedulerStatus;
use crate::schedule::round::{EngineWork, Planned, Round};
use crate::schedule::{Decision, ObjectPlacement};

/// Reads and changes the schedulers' config: what ClusterService needs, without the engine's
/// type parameters.
pub trait ScheduleControl: Send + Sync {
    fn config(&self) -> ScheduleConfig;
    /// Applies a config already persisted.
    fn apply(&self, config: ScheduleConfig);
    fn status(&self, now_ms: u64) -> Vec<SchedulerStatus>;
    /// Scheduler name → default interval.
    fn defaults(&self) -> BTreeMap<&'static str, u64>;
}

pub struct Coordinator<S, E, C> {
    runner: Arc<JobRunner<S, E, C>>,
    round: Mutex<Round>,
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Coordinator<S, E, C> {
    /// With the config the catalog holds (defaults when none was set).
    pub fn load(runner: Arc<JobRunner<S, E, C>>) -> Result<Arc<Self>> {
        let config = match runner.engine().store().get(config::CONFIG_KEY)? {
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| McError::corrupt("schedule config", e))?
            }
            None => ScheduleConfig::default(),
        };
        Ok(Arc::new(Self {
            runner,
            round: Mutex::new(Round::new(config)),
        }))
    }

    /// Whether any scheduler is due.
    pub fn due(&self, now_ms: u64) -> bool {
        self.round.lock().expect("schedule round").due(now_ms)
    }

    /// Runs every due scheduler once against the live view; returns the jobs taken.
    /// `ddl_busy`: RGs holding regions of objects a running DDL request drops or truncates;
    /// the schedulers leave them alone (a split under a Truncate left a hole in the table, a
    /// split under a Drop left the right half routable).
    pub async fn tick(
        &self,
        cluster: &LiveCluster,
        objects: &ObjectPlacement,
        ddl_busy: &BTreeSet<RgId>,
        now_ms: u64,
    ) -> Result<Vec<JobId>> {
        let engine = self.runner.engine();
        let (settle, watch) = {
            let round = self.round.lock().expect("schedule round");
            (round.config().settle_ms, round.config().watch())
        };
        // The region sizes the checkers ask about (rebuilt only when the config changed them).
        cluster.watch(watch);
        // The affinity groups the keeper reads, kept by the view (a new map after a DDL).
        cluster.affinity(&objects.affinity);
        let work = EngineWork::of(engine, settle, now_ms);
        let planned = cluster.read_with_heard(|view, heard| {
            let (mut busy, pending) = work.busy_and_pending(view, settle, now_ms, heard);
            busy.extend(ddl_busy.iter().copied());
            let mut round = self.round.lock().expect("schedule round");
            round.plan(view, objects, &busy, &pending, now_ms)
        });
        let failures = self.round.lock().expect("schedule round").take_failures();
        for (scheduler, message) in failures {
            // Deduplicated by content: one alert per scheduler and message, counted.
            let raised = crate::history::raise(
                engine.store(),
                crate::history::Severity::Critical,
                &format!("scheduler/{scheduler}"),
                &format!("scheduler {scheduler} failed a run and was skipped: {message}"),
                now_ms,
            )
            .await;
            if let Err(e) = raised {
                tracing::warn!(scheduler, error = %e, "alert not raised");
            }
        }
        let acted = self.act(cluster, planned, now_ms).await;
        if acted.is_err() {
            // The round's cursors moved past what it planned: look at everything again.
            self.round.lock().expect("schedule round").look_again();
        }
        acted
    }

    /// Turns a round's decisions into jobs and log records.
    async fn act(
        &self,
        cluster: &LiveCluster,
        planned: Vec<Planned>,
        now_ms: u64,
    ) -> Result<Vec<JobId>> {
        let engine = self.runner.engine();
        let mut taken = Vec::new();
        for Planned {
            scheduler,
            priority,
            decision,
        } in planned
        {
            match decision {
                Decision::Propose {
                    spec,
                    reason,
                    scores,
                } => {
                    let high = cluster.read(|view| next_ids(view, &spec));
                    let spec = allocate(engine, spec, high).await?;
                    let source = format!("scheduler/{scheduler}");
                    let result = engine
                        .propose_live(&source, spec.clone(), cluster, priority, &reason, scores)
                        .await;
                    self.round.lock().expect("schedule round").proposed(
                        scheduler,
                        &spec,
                        result.is_ok(),
                    );
                    match result {
                        Ok(job) => {
                            self.runner.drive(job.id);
                            taken.push(job.id);
                        }
                        Err(e) => {
                            tracing::debug!(scheduler, error = %e, "proposal refused")
                        }
                    }
                }
                Decision::Skip { subject, reason } => {
                    self.log_skip(scheduler, subject, reason, now_ms).await?;
                }
            }
        }
        Ok(taken)
    }

    async fn log_skip(
        &self,
        name: &str,
        subject: String,
        reason: String,
        now_ms: u64,
    ) -> Result<()> {
        let engine = self.runner.engine();
        let decision = LogDecision {
            id: engine.log_ids().next(),
            at_ms: now_ms,
            scheduler: format!("scheduler/{name}"),
            subjects: vec![format!("scheduler/{name}"), subject],
            taken: false,
            reason,
            scores: vec![],
            proposed: None,
            job_id: 0,
        };
        let mut batch = WriteBatch::default();
        logs::put_decision(&mut batch, &decision)?;
        engine.store().write(batch).await
    }
}

/// The highest id of the kind a proposal's new object needs (an RG, a region), for the
/// allocator to go above.
pub fn next_ids(view: &ClusterView, spec: &JobSpec) -> u64 {
    match spec {
        JobSpec::SplitRg { new_rg: 0, .. } => view.rgs.keys().next_back().copied().unwrap_or(0),
        JobSpec::SplitRegion { new_region: 0, .. } => {
            view.regions.keys().next_back().copied().unwrap_or(0)
        }
        _ => 0,
    }
}

/// Proposals name new ids as 0; they get real ones here, just before they become jobs.
pub async fn allocate<S: CatalogStore, E: StepExecutor, C: Clock>(
    engine: &crate::jobs::engine::Engine<S, E, C>,
    spec: JobSpec,
    high: u64,
) -> Result<JobSpec> {
    Ok(match spec {
        JobSpec::SplitRg {
            rg,
            new_rg: 0,
            regions,
        } => JobSpec::SplitRg {
            rg,
            new_rg: engine.allocate(NewId::Rg, 1, high).await?,
            regions,
        },
        JobSpec::SplitRegion {
            region,
            at,
            new_region: 0,
        } => JobSpec::SplitRegion {
            region,
            at,
            new_region: engine.allocate(NewId::Region, 1, high).await?,
        },
        other => other,
    })
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> ScheduleControl for Coordinator<S, E, C> {
    fn config(&self) -> ScheduleConfig {
        self.round.lock().expect("schedule round").config().clone()
    }

    fn apply(&self, config: ScheduleConfig) {
        self.round.lock().expect("schedule round").apply(config);
    }

    fn status(&self, now_ms: u64) -> Vec<SchedulerStatus> {
        self.round.lock().expect("schedule round").status(now_ms)
    }

    fn defaults(&self) -> BTreeMap<&'static str, u64> {
        self.round.lock().expect("schedule round").defaults()
    }
}
