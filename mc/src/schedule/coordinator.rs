//! Runs the schedulers: each on its interval unless paused, turning its proposals into jobs
//! through `Engine::propose` (the decision, taken or refused, goes to the scheduling log with
//! its scores; a refusal also to the error queue) and skips into the scheduling log when
//! their reason changed since that scheduler's last run (so a balanced cluster does not fill
//! the log). Counts per scheduler are kept for ListSchedulers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::catalog::logs::{self, Decision as LogDecision};
use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::ClusterView;
use crate::error::{McError, Result};
use crate::ids::{JobId, RegionId};
use crate::jobs::JobSpec;
use crate::jobs::executor::StepExecutor;
use crate::jobs::runner::JobRunner;
use crate::jobs::spec::NewId;
use crate::schedule::config::{self, ScheduleConfig};
use crate::schedule::{Ctx, Decision, ObjectPlacement, Scheduler};

/// What ListSchedulers shows of one scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStatus {
    pub name: String,
    pub paused_until_ms: Option<u64>,
    pub interval_ms: u64,
    pub last_run_ms: u64,
    pub taken: u64,
    pub skipped: u64,
}

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

#[derive(Default)]
struct State {
    config: ScheduleConfig,
    last_run: HashMap<&'static str, u64>,
    taken: HashMap<&'static str, u64>,
    skipped: HashMap<&'static str, u64>,
    /// (scheduler, subject) → the last skip reason logged.
    last_skip: HashMap<(&'static str, String), String>,
    first_seen: HashMap<RegionId, u64>,
}

pub struct Coordinator<S, E, C> {
    runner: Arc<JobRunner<S, E, C>>,
    schedulers: Vec<Box<dyn Scheduler>>,
    state: Mutex<State>,
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Coordinator<S, E, C> {
    /// With the config the catalog holds (defaults when none was set).
    pub fn load(runner: Arc<JobRunner<S, E, C>>) -> Result<Arc<Self>> {
        let config = match runner.engine().store().get(config::CONFIG_KEY)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| McError::Catalog(format!("schedule config: {e}")))?,
            None => ScheduleConfig::default(),
        };
        Ok(Arc::new(Self {
            runner,
            schedulers: crate::schedule::all(),
            state: Mutex::new(State {
                config,
                ..Default::default()
            }),
        }))
    }

    /// Whether any scheduler is due: the caller copies the view only then.
    pub fn due(&self, now_ms: u64) -> bool {
        let state = self.state.lock().expect("schedule state");
        self.schedulers
            .iter()
            .any(|s| is_due(&state, s.as_ref(), now_ms))
    }

    /// Runs every due scheduler once against `view`; returns the jobs proposed and taken.
    /// `heard(rg)`: when the view last took in a heartbeat of the RG.
    pub async fn tick(
        &self,
        view: &ClusterView,
        objects: &ObjectPlacement,
        now_ms: u64,
        heard: &(dyn Fn(crate::ids::RgId) -> u64 + Sync),
    ) -> Result<Vec<JobId>> {
        let engine = self.runner.engine();
        let mut taken = Vec::new();
        for scheduler in &self.schedulers {
            let name = scheduler.name();
            let decisions = {
                let mut state = self.state.lock().expect("schedule state");
                if !is_due(&state, scheduler.as_ref(), now_ms) {
                    continue;
                }
                state.last_run.insert(name, now_ms);
                for id in view.regions.keys() {
                    state.first_seen.entry(*id).or_insert(now_ms);
                }
                if state.first_seen.len() > view.regions.len() * 2 + 1024 {
                    state
                        .first_seen
                        .retain(|id, _| view.regions.contains_key(id));
                }
                let settle = state.config.settle_ms;
                let pending = crate::schedule::pending::Pending::of(
                    view,
                    &engine.running_specs(),
                    &engine.recent_successes(now_ms.saturating_sub(settle)),
                    now_ms,
                    settle,
                    heard,
                );
                let mut busy: BTreeSet<_> = engine.busy_rgs();
                busy.extend(pending.settling.iter().copied());
                // RGs restored from the catalog wait for their first report of this term.
                busy.extend(view.rgs.values().filter(|r| !r.heard).map(|r| r.id));
                let ctx = Ctx {
                    view,
                    now_ms,
                    config: &state.config,
                    busy: &busy,
                    objects,
                    first_seen: &state.first_seen,
                    pending: &pending,
                };
                scheduler.run(&ctx)
            };
            for decision in decisions {
                match decision {
                    Decision::Propose {
                        spec,
                        reason,
                        scores,
                    } => {
                        let spec = self.allocate(spec, view).await?;
                        let source = format!("scheduler/{name}");
                        let result = engine
                            .propose_scored(
                                &source,
                                spec,
                                view,
                                None,
                                scheduler.priority(),
                                &reason,
                                scores,
                            )
                            .await;
                        let mut state = self.state.lock().expect("schedule state");
                        match result {
                            Ok(job) => {
                                *state.taken.entry(name).or_default() += 1;
                                self.runner.drive(job.id);
                                taken.push(job.id);
                            }
                            Err(e) => {
                                *state.skipped.entry(name).or_default() += 1;
                                tracing::debug!(scheduler = name, error = %e, "proposal refused");
                            }
                        }
                    }
                    Decision::Skip { subject, reason } => {
                        let fresh = {
                            let mut state = self.state.lock().expect("schedule state");
                            *state.skipped.entry(name).or_default() += 1;
                            let key = (name, subject.clone());
                            let fresh = state.last_skip.get(&key) != Some(&reason);
                            state.last_skip.insert(key, reason.clone());
                            fresh
                        };
                        if fresh {
                            self.log_skip(name, subject, reason, now_ms).await?;
                        }
                    }
                }
            }
        }
        Ok(taken)
    }

    /// Proposals name new ids as 0; they get real ones here, just before they become jobs.
    async fn allocate(&self, spec: JobSpec, view: &ClusterView) -> Result<JobSpec> {
        Ok(match spec {
            JobSpec::SplitRg {
                rg,
                new_rg: 0,
                regions,
            } => {
                let high = view.rgs.keys().max().copied().unwrap_or(0);
                let new_rg = self.runner.engine().allocate(NewId::Rg, 1, high).await?;
                JobSpec::SplitRg {
                    rg,
                    new_rg,
                    regions,
                }
            }
            other => other,
        })
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

fn is_due(state: &State, s: &dyn Scheduler, now_ms: u64) -> bool {
    let name = s.name();
    if state.config.is_paused(name, now_ms) {
        return false;
    }
    let interval = state.config.interval_ms(name, s.default_interval_ms());
    state
        .last_run
        .get(name)
        .is_none_or(|last| now_ms >= last + interval)
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> ScheduleControl for Coordinator<S, E, C> {
    fn config(&self) -> ScheduleConfig {
        self.state.lock().expect("schedule state").config.clone()
    }

    fn apply(&self, config: ScheduleConfig) {
        self.state.lock().expect("schedule state").config = config;
    }

    fn status(&self, now_ms: u64) -> Vec<SchedulerStatus> {
        let state = self.state.lock().expect("schedule state");
        self.schedulers
            .iter()
            .map(|s| {
                let name = s.name();
                SchedulerStatus {
                    name: name.to_string(),
                    paused_until_ms: state
                        .config
                        .paused
                        .get(name)
                        .copied()
                        .filter(|u| *u > now_ms),
                    interval_ms: state.config.interval_ms(name, s.default_interval_ms()),
                    last_run_ms: state.last_run.get(name).copied().unwrap_or(0),
                    taken: state.taken.get(name).copied().unwrap_or(0),
                    skipped: state.skipped.get(name).copied().unwrap_or(0),
                }
            })
            .collect()
    }

    fn defaults(&self) -> BTreeMap<&'static str, u64> {
        self.schedulers
            .iter()
            .map(|s| (s.name(), s.default_interval_ms()))
            .collect()
    }
}
