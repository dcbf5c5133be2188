//! The discrete-event loop: one thread, virtual time, one seeded RNG. It drives mc's real job
//! engine (catalog in memory, the engine's own limits, locks, retries and backoff) step by
//! step — the simulator decides how long each step takes (a fixed latency, plus bytes over
//! bandwidth for a snapshot) and what it does to the simulated cluster — and it runs the
//! policy's schedulers on their intervals against the view the MC would have, heartbeats late
//! if the scenario says so.

mod check;
mod events;
mod sample;

use mc_core::step;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use mc_core::catalog::memory::MemoryStore;
use mc_core::clock::{Clock, ManualClock};
use mc_core::cluster::{ClusterView, StoreState};
use mc_core::jobs::engine::{Dispatch, Engine, EngineConfig, Progress};
use mc_core::jobs::executor::{Envelope, StepExecutor};
use mc_core::jobs::{AtomicStep, JobSpec, JobState, Target};
use mc_core::schedule::round::{EngineWork, Round};
use mc_core::schedule::{Decision, ObjectPlacement, ScheduleConfig};
use proto::v1::{StepOk, StepOutcome, Unavailable, step_outcome};

use crate::model::{Model, SimStore};
use crate::report::{self, Cost, Report, Safety, Sample, Work, round};
use crate::rng::Rng;
use crate::scenario::Scenario;

/// Never called: the loop executes steps itself, in virtual time.
pub struct NoExecutor;

impl StepExecutor for NoExecutor {
    async fn execute(&self, _: Envelope, _: &AtomicStep) -> StepOutcome {
        unavailable()
    }

    /// In the simulator a step takes effect exactly when its outcome is Ok (the model applies
    /// it then), so a step that ended any other way did not land.
    async fn probe(&self, _: Envelope, _: &AtomicStep) -> mc_core::jobs::executor::Probe {
        mc_core::jobs::executor::Probe::NotLanded
    }
}

fn unavailable() -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Unavailable(Unavailable {
            reason: "store unreachable".into(),
            retry_after_ms: 0,
        })),
    }
}

fn ok() -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Ok(StepOk::default())),
    }
}

enum Ev {
    Wake(u64),
    StepDone(u64, Box<Dispatch>, StepOutcome),
    Schedule,
    Heartbeat,
    Sample,
    Scenario(usize),
}

type SimEngine = Engine<Arc<MemoryStore>, NoExecutor, ManualClock>;

/// What one run gives.
pub struct RunResult {
    pub report: Report,
    pub cost: Cost,
    /// The job types the schedulers proposed and the engine took, in order.
    pub job_types: Vec<String>,
}

struct Sim {
    s: Scenario,
    policy: String,
    seed: u64,
    rng: Rng,
    clock: ManualClock,
    model: Model,
    delayed: VecDeque<(u64, ClusterView)>,
    engine: Arc<SimEngine>,
    spawned: Arc<Mutex<Vec<u64>>>,
    view_source: Arc<RwLock<ClusterView>>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    payloads: HashMap<u64, Ev>,
    seq: u64,
    scheduled: HashSet<u64>,
    blocked: HashMap<u64, Vec<u64>>,
    /// The server's scheduling round, run on the view the simulated MC holds.
    round: Round,
    objects: ObjectPlacement,
    snapshots: BTreeMap<u64, u64>,
    peak_snapshots: u64,
    removed: HashSet<(u64, u64)>,
    work: Work,
    safety: Safety,
    losses: Vec<(u64, Option<u64>)>,
    samples: Vec<Sample>,
    job_types: Vec<String>,
    cumulative_tables: Vec<f64>,
    cost: Cost,
    scheduler_wall: std::time::Duration,
}

/// Σ over Up stores of the replicas above the even share: the fewest moves that balance.
fn excess(m: &Model) -> u64 {
    let up: Vec<u64> = m
        .view
        .stores
        .values()
        .filter(|s| s.state == StoreState::Up && m.alive(s.id))
        .map(|s| s.id)
        .collect();
    if up.is_empty() {
        return 0;
    }
    let counts = mc_core::placement::replica_counts(&m.view);
    let total: usize = up.iter().map(|s| counts.get(s).copied().unwrap_or(0)).sum();
    let target = total.div_ceil(up.len());
    up.iter()
        .map(|s| counts.get(s).copied().unwrap_or(0).saturating_sub(target) as u64)
        .sum()
}

impl Sim {
    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.payloads.insert(self.seq, ev);
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn wake(&mut self, job: u64, at: u64) {
        if self.scheduled.insert(job) {
            self.push(at, Ev::Wake(job));
        }
    }

    /// The view the MC plans against: the model, or what it was `heartbeat_delay` ago.
    fn mc_view(&self) -> &ClusterView {
        if self.s.cluster.heartbeat_delay_secs == 0 {
            return &self.model.view;
        }
        Self::delayed_view(
            &self.delayed,
            &self.model.view,
            self.s.cluster.heartbeat_delay_secs,
            self.now(),
        )
    }

    fn delayed_view<'a>(
        delayed: &'a VecDeque<(u64, ClusterView)>,
        model: &'a ClusterView,
        delay_secs: u64,
        now: u64,
    ) -> &'a ClusterView {
        let cutoff = now.saturating_sub(delay_secs * 1000);
        delayed
            .iter()
            .rev()
            .find(|(t, _)| *t <= cutoff)
            .or(delayed.front())
            .map(|(_, v)| v)
            .unwrap_or(model)
    }

    /// When the view the MC plans against was taken.
    fn view_time(&self) -> u64 {
        if self.s.cluster.heartbeat_delay_secs == 0 {
            return self.now();
        }
        let cutoff = self
            .now()
            .saturating_sub(self.s.cluster.heartbeat_delay_secs * 1000);
        self.delayed
            .iter()
            .rev()
            .find(|(t, _)| *t <= cutoff)
            .or(self.delayed.front())
            .map(|(t, _)| *t)
            .unwrap_or(0)
    }

    fn drain_spawned(&mut self) {
        let spawned: Vec<u64> = std::mem::take(&mut *self.spawned.lock().expect("spawned"));
        let now = self.now();
        for job in spawned {
            self.count_job(job);
            self.wake(job, now);
        }
    }

    fn count_job(&mut self, job: u64) {
        if let Ok(j) = self.engine.job(job) {
            *self
                .work
                .jobs_by_type
                .entry(j.spec.type_name().to_string())
                .or_default() += 1;
        }
    }

    async fn after(&mut self, job: u64, progress: Progress) {
        let now = self.now();
        match progress {
            Progress::Continue => self.wake(job, now),
            Progress::WaitUntil(t) => self.wake(job, t.max(now)),
            Progress::Blocked { holder } => {
                self.blocked.entry(holder).or_default().push(job);
                self.wake(job, now + 5_000);
            }
            Progress::Stopped(state) => {
                if state == JobState::Failed {
                    self.work.jobs_failed += 1;
                }
                if state.is_final() {
                    for j in self.blocked.remove(&job).unwrap_or_default() {
                        self.scheduled.remove(&j);
                        self.wake(j, now);
                    }
                }
            }
            Progress::Deposed => {}
        }
        self.drain_spawned();
    }

    /// What a step does and how long it takes, decided when it is dispatched.
    fn execute(&mut self, step: &AtomicStep) -> (StepOutcome, u64) {
        let latency = self.s.cluster.step_latency_ms;
        let reachable = match step.target() {
            Target::Store(s) => self.model.alive(s),
            Target::Leader(rg) => self
                .model
                .view
                .rg(rg)
                .and_then(|r| r.leader)
                .is_some_and(|l| self.model.alive(l)),
            Target::Children => true,
        };
        if !reachable {
            return (unavailable(), latency);
        }
        if let AtomicStep::AddLearner(step::AddLearner { rg, store }) = step {
            let bytes = self.model.view.rg_bytes(*rg);
            let leader = self.model.view.rg(*rg).and_then(|r| r.leader);
            let bw = |s: Option<u64>| {
                s.and_then(|s| self.model.stores.get(&s))
                    .map(|x: &SimStore| x.bandwidth)
                    .unwrap_or(u64::MAX)
            };
            let rate = bw(Some(*store)).min(bw(leader)).max(1);
            let n = self.snapshots.entry(*store).or_default();
            *n += 1;
            self.peak_snapshots = self.peak_snapshots.max(*n);
            return (ok(), latency + bytes.saturating_mul(1000) / rate);
        }
        (ok(), latency)
    }

    async fn on_wake(&mut self, job: u64) {
        self.scheduled.remove(&job);
        let drain = self
            .engine
            .job(job)
            .is_ok_and(|j| matches!(j.spec, JobSpec::DrainStore { .. }));
        if drain {
            *self.view_source.write().expect("view") = self.mc_view().clone();
        }
        match self.engine.dispatch(job).await {
            Ok(Ok(d)) => {
                let (outcome, took) = self.execute(&d.step);
                let at = self.now() + took;
                self.scheduled.insert(job);
                self.push(at, Ev::StepDone(job, Box::new(d), outcome));
            }
            Ok(Err(p)) => self.after(job, p).await,
            Err(e) => tracing::debug!(job, error = %e, "dispatch failed"),
        }
        self.drain_spawned();
    }

    async fn on_step_done(&mut self, job: u64, d: Dispatch, mut outcome: StepOutcome) {
        self.scheduled.remove(&job);
        if let AtomicStep::AddLearner(step::AddLearner { store, .. }) = &d.step
            && let Some(n) = self.snapshots.get_mut(store)
        {
            *n = n.saturating_sub(1);
        }
        // The target may have died while the step ran.
        let target_alive = match d.step.target() {
            Target::Store(s) => self.model.alive(s),
            _ => true,
        };
        if !target_alive {
            outcome = unavailable();
        }
        if matches!(outcome.result, Some(step_outcome::Result::Ok(_))) {
            self.record_step(&d.step);
            self.model.apply(&d.step);
        }
        match self.engine.finish(&d, outcome).await {
            Ok(p) => self.after(job, p).await,
            Err(e) => tracing::debug!(job, error = %e, "finish failed"),
        }
    }

    fn record_step(&mut self, step: &AtomicStep) {
        match step {
            AtomicStep::AddLearner(step::AddLearner { rg, store }) => {
                self.work.replica_adds += 1;
                self.work.bytes_moved += self.model.view.rg_bytes(*rg);
                if self.removed.contains(&(*rg, *store)) {
                    self.work.redundant_moves += 1;
                    if std::env::var_os("MCSIM_DEBUG").is_some() {
                        eprintln!("{} redundant: rg {rg} back onto store {store}", self.now());
                    }
                }
            }
            AtomicStep::Remove(step::Remove { rg, store }) => {
                self.work.replica_removes += 1;
                self.removed.insert((*rg, *store));
            }
            AtomicStep::TransferLeader(_) => self.work.leader_transfers += 1,
            AtomicStep::SplitRegion(_) | AtomicStep::SplitRg(_) => self.work.splits += 1,
            AtomicStep::MergeRegion(_) | AtomicStep::MergeRg(_) => self.work.merges += 1,
            _ => {}
        }
    }

    async fn on_schedule(&mut self) {
        let now = self.now();
        if !self.round.due(now) {
            return;
        }
        let started = Instant::now();
        let watch = self.round.config().watch();
        self.model.view.set_watch(watch);
        self.model.view.set_affinity(self.objects.affinity.clone());
        let planned = {
            let settle = self.round.config().settle_ms;
            let work = EngineWork::of(&self.engine, settle, now);
            // The view is as fresh as the heartbeat snapshot it is (all RGs at once).
            let fresh = self.view_time();
            let view = match self.s.cluster.heartbeat_delay_secs {
                0 => &self.model.view,
                _ => Self::delayed_view(
                    &self.delayed,
                    &self.model.view,
                    self.s.cluster.heartbeat_delay_secs,
                    now,
                ),
            };
            let (busy, pending) = work.busy_and_pending(view, settle, now, &|_| fresh);
            self.round.plan(view, &self.objects, &busy, &pending, now)
        };
        self.scheduler_wall += started.elapsed();
        self.cost.scheduler_runs += 1;
        self.cost.decisions += planned.len() as u64;
        for p in planned {
            if std::env::var_os("MCSIM_DEBUG").is_some() {
                eprintln!("{now} {}: {:?}", p.scheduler, p.decision);
            }
            let Decision::Propose {
                spec,
                reason,
                scores,
            } = p.decision
            else {
                continue;
            };
            let high = mc_core::schedule::coordinator::next_ids(&self.model.view, &spec);
            let Ok(spec) = mc_core::schedule::coordinator::allocate(&self.engine, spec, high).await
            else {
                continue;
            };
            let view = if self.s.cluster.heartbeat_delay_secs == 0 {
                None
            } else {
                Some(self.mc_view().clone())
            };
            let result = self
                .engine
                .propose_scored(
                    &format!("scheduler/{}", p.scheduler),
                    spec.clone(),
                    view.as_ref().unwrap_or(&self.model.view),
                    None,
                    p.priority,
                    &reason,
                    scores,
                )
                .await;
            self.round.proposed(p.scheduler, &spec, result.is_ok());
            match result {
                Ok(job) => {
                    self.job_types.push(job.spec.type_name().to_string());
                    self.count_job(job.id);
                    self.wake(job.id, now);
                }
                Err(e) => {
                    tracing::debug!(scheduler = p.scheduler, error = %e, "proposal refused");
                    if std::env::var_os("MCSIM_DEBUG").is_some() {
                        eprintln!("{now} {}: refused: {e}", p.scheduler);
                    }
                }
            }
        }
    }

    fn on_heartbeat(&mut self) {
        let now = self.now();
        // The server's liveness rule: a store that reports is Up again (its heartbeat), a
        // silent one moves on by how long it has been silent. The simulated MC notices a
        // death at its next heartbeat round.
        let liveness = mc_core::cluster::LivenessConfig {
            disconnected_after_ms: 1,
            down_after_ms: self.s.cluster.down_after_secs * 1000,
        };
        let mut moves = Vec::new();
        for s in self.model.stores.values() {
            let Some(info) = self.model.view.stores.get(&s.id) else {
                continue;
            };
            let want = match s.died_at {
                None if matches!(info.state, StoreState::Disconnected | StoreState::Down) => {
                    StoreState::Up
                }
                None => info.state,
                Some(t) => liveness.next_state(info.state, now.saturating_sub(t).max(1)),
            };
            if info.state != want {
                moves.push((s.id, want));
            }
        }
        for (id, state) in moves {
            self.model.view.update_store(id, |info| info.state = state);
        }
        if self.s.data.growth > 0.0 {
            let secs = self.s.cluster.heartbeat_secs.max(1);
            self.model.grow(self.s.data.growth, secs);
        }
        if self.s.cluster.heartbeat_delay_secs > 0 {
            self.delayed.push_back((now, self.model.view.clone()));
            let keep = self.s.cluster.heartbeat_delay_secs * 1000 + 1;
            while self.delayed.get(1).is_some_and(|(t, _)| *t + keep < now) {
                self.delayed.pop_front();
            }
        }
    }

    async fn run(mut self) -> RunResult {
        let started = Instant::now();
        let end = self.s.duration_secs * 1000;
        self.work.lower_bound_moves = excess(&self.model);
        self.push(0, Ev::Heartbeat);
        self.push(0, Ev::Schedule);
        self.push(0, Ev::Sample);
        for (i, e) in self.s.events.iter().enumerate() {
            let at = e.at_secs * 1000;
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq)));
            self.payloads.insert(self.seq, Ev::Scenario(i));
        }
        while let Some(Reverse((at, seq))) = self.queue.pop() {
            if at > end {
                break;
            }
            let now = self.now();
            if at > now {
                self.clock.advance(at - now);
            }
            let Some(ev) = self.payloads.remove(&seq) else {
                continue;
            };
            match ev {
                Ev::Wake(job) => self.on_wake(job).await,
                Ev::StepDone(job, d, outcome) => self.on_step_done(job, *d, outcome).await,
                Ev::Schedule => {
                    self.on_schedule().await;
                    self.push(at + 1_000, Ev::Schedule);
                }
                Ev::Heartbeat => {
                    self.on_heartbeat();
                    self.push(
                        at + self.s.cluster.heartbeat_secs.max(1) * 1000,
                        Ev::Heartbeat,
                    );
                }
                Ev::Sample => {
                    self.on_sample();
                    self.push(at + self.s.sample_secs * 1000, Ev::Sample);
                }
                Ev::Scenario(i) => self.on_scenario(i).await,
            }
        }
        let now = self.now();
        if now < end {
            self.clock.advance(end - now);
        }
        if self.samples.last().is_none_or(|s| s.t_secs < end / 1000) {
            self.on_sample();
        }
        self.finish(started)
    }

    fn finish(mut self, started: Instant) -> RunResult {
        let threshold = self.s.balance_threshold;
        let convergence = {
            let last_bad = self
                .samples
                .iter()
                .rposition(|s| s.replicas.max_over_mean > threshold);
            match last_bad {
                None => Some(0),
                Some(i) if i + 1 < self.samples.len() => Some(self.samples[i + 1].t_secs),
                Some(_) => None,
            }
        };
        let moves = self.work.replica_adds;
        self.work.moves_over_lower_bound = if self.work.lower_bound_moves == 0 {
            if moves == 0 { 1.0 } else { moves as f64 }
        } else {
            round(moves as f64 / self.work.lower_bound_moves as f64)
        };
        self.work.thrash_score = round(self.work.redundant_moves as f64 / moves.max(1) as f64);
        self.safety.rereplication_secs = self.losses.iter().map(|l| l.1).collect();
        self.safety.peak_snapshots_per_store = self.peak_snapshots;
        let final_sample = self.samples.last().cloned().unwrap_or_default();
        let mut report = Report {
            scenario: self.s.name.clone(),
            policy: self.policy.clone(),
            seed: self.seed,
            duration_secs: self.s.duration_secs,
            stores: self.model.stores.len(),
            rgs: self.model.view.rgs.len(),
            regions: self.model.view.regions.len(),
            final_sample,
            convergence_secs: convergence,
            work: self.work,
            safety: self.safety,
            samples: self.samples,
            failed_expectations: vec![],
        };
        report.failed_expectations = check::check(&self.s, &report, &self.model);
        let wall = started.elapsed().as_secs_f64();
        self.cost.wall_secs = round(wall);
        self.cost.sim_over_wall = round(self.s.duration_secs as f64 / wall.max(1e-9));
        self.cost.peak_rss_mib = round(report::peak_rss_mib());
        self.cost.scheduler_cpu_us_per_decision =
            round(self.scheduler_wall.as_secs_f64() * 1e6 / self.cost.decisions.max(1) as f64);
        RunResult {
            report,
            cost: self.cost,
            job_types: self.job_types,
        }
    }
}

/// Runs `scenario` under `policy` with `seed`.
pub fn run(scenario: &Scenario, policy: &str, seed: u64) -> RunResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let mut rng = Rng::new(seed);
        let mut model = Model::build(scenario, policy, &mut rng);
        let clock = ManualClock::new(0);
        let engine = Arc::new(Engine::new(
            Arc::new(MemoryStore::default()),
            NoExecutor,
            clock.clone(),
            EngineConfig {
                mc_term: 1,
                max_attempts: 30,
                backoff_base_ms: 1_000,
                backoff_max_ms: 30_000,
                ..Default::default()
            },
        ));
        let mut limits = engine.limits();
        limits.store_snapshots_in_flight = scenario.cluster.snapshots_per_store;
        engine.set_limits(limits);
        let spawned: Arc<Mutex<Vec<u64>>> = Arc::default();
        {
            let spawned = spawned.clone();
            engine.set_spawner(Arc::new(move |id| {
                spawned.lock().expect("spawned").push(id)
            }));
        }
        let view_source = Arc::new(RwLock::new(model.view.clone()));
        engine.set_view_source(view_source.clone());
        let schedulers = crate::pd::schedulers(policy, seed);
        let mut config = ScheduleConfig::default();
        let defaults: BTreeMap<&'static str, u64> = schedulers
            .iter()
            .map(|s| (s.name(), s.default_interval_ms()))
            .collect();
        for (k, v) in &scenario.config {
            if let Err(e) = config.set(k, v, &defaults) {
                tracing::warn!(key = %k, error = %e, "scenario config ignored");
            }
        }
        config.replicas = scenario.data.replicas;
        let objects = ObjectPlacement::new(
            if policy == "pd" {
                BTreeMap::new()
            } else {
                model.affinity.clone()
            },
            model.labels.clone(),
        );
        // The view keeps the groups spread over RGs from the start (delayed snapshots too).
        model.view.set_affinity(objects.affinity.clone());
        let weights = crate::rng::zipf_weights(model.tables.len(), scenario.workload.skew);
        let cumulative_tables: Vec<f64> = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let sim = Sim {
            s: scenario.clone(),
            policy: policy.to_string(),
            seed,
            rng,
            clock,
            model,
            delayed: VecDeque::new(),
            engine,
            spawned,
            view_source,
            queue: BinaryHeap::new(),
            payloads: HashMap::new(),
            seq: 0,
            scheduled: HashSet::new(),
            blocked: HashMap::new(),
            round: Round::with(schedulers, config),
            objects,
            snapshots: BTreeMap::new(),
            peak_snapshots: 0,
            removed: HashSet::new(),
            work: Work::default(),
            safety: Safety::default(),
            losses: Vec::new(),
            samples: Vec::new(),
            job_types: Vec::new(),
            cumulative_tables,
            cost: Cost::default(),
            scheduler_wall: std::time::Duration::ZERO,
        };
        sim.run().await
    })
}
