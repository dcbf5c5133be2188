//! One scheduling round, the same for the server and for mcsim: which schedulers are due, what
//! each looks at, and what each asked to see again. The server's coordinator and the
//! simulator's event loop both call [`Round::plan`] with the view they hold and turn what it
//! returns into jobs through their engine; neither keeps a copy of this logic.
//!
//! A round costs what changed. Each checker reads the view's change log from where its last
//! run stopped, plus the RGs it asked to revisit (busy ones, ones past the proposal cap,
//! regions too young to merge, at the time they come of age). A change of the config, of the
//! stores (a state, labels, a new store) or of the objects' placement rules makes every
//! checker look at every RG once. Balancers read the view's per-store index.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::cluster::ClusterView;
use crate::ids::RgId;
use crate::jobs::JobSpec;
use crate::jobs::engine::Engine;
use crate::jobs::executor::StepExecutor;
use crate::jobs::queue::Priority;
use crate::schedule::pending::Pending;
use crate::schedule::{Ctx, Decision, ObjectPlacement, ScheduleConfig, Scheduler};

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A decision to act on: a proposal to turn into a job, or a skip worth logging (its reason
/// changed since that scheduler last logged one for the subject).
#[derive(Debug)]
pub struct Planned {
    pub scheduler: &'static str,
    pub priority: Priority,
    pub decision: Decision,
}

/// What ListSchedulers shows of one scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStatus {
    pub name: String,
    pub paused_until_ms: Option<u64>,
    pub interval_ms: u64,
    pub last_run_ms: u64,
    pub taken: u64,
    pub skipped: u64,
    /// RGs the last run looked at (every RG on a full pass).
    pub last_scope: u64,
    /// CPU time of the last run, in microseconds (wall clock of the planning thread).
    pub last_cost_us: u64,
    /// Runs that panicked (each caught: the round and the server went on).
    pub failures: u64,
}

#[derive(Default)]
struct PerScheduler {
    last_run: Option<u64>,
    /// The change log position its last run read up to; None: it looks at everything next.
    cursor: Option<u64>,
    revisit: BTreeSet<RgId>,
    revisit_at: BTreeMap<u64, Vec<RgId>>,
    taken: u64,
    skipped: u64,
    last_scope: u64,
    last_cost_us: u64,
    /// What its last run saw, when it proposed nothing (see
    /// `Scheduler::same_inputs_same_result`).
    idle_at: Option<u64>,
    failures: u64,
}

pub struct Round {
    schedulers: Vec<Box<dyn Scheduler>>,
    state: Vec<PerScheduler>,
    config: ScheduleConfig,
    /// What the stores, the config and the placement rules were at the last plan: a change
    /// of any makes every checker look at every RG.
    seen: Option<(u64, ScheduleConfig, u64)>,
    /// (scheduler, subject) → the last skip reason logged.
    last_skip: HashMap<(&'static str, String), String>,
    /// Runs that panicked since the last `take_failures`: (scheduler, message), for alerts.
    failed: Vec<(&'static str, String)>,
}

impl Round {
    pub fn new(config: ScheduleConfig) -> Self {
        Self::with(crate::schedule::all(), config)
    }

    /// With given schedulers (the simulator's PD-like policy has its own).
    pub fn with(schedulers: Vec<Box<dyn Scheduler>>, config: ScheduleConfig) -> Self {
        let state = schedulers.iter().map(|_| PerScheduler::default()).collect();
        Self {
            schedulers,
            state,
            config,
            seen: None,
            last_skip: HashMap::new(),
            failed: Vec::new(),
        }
    }

    pub fn config(&self) -> &ScheduleConfig {
        &self.config
    }

    /// A new config (persisted by the caller): the next plan looks at everything.
    pub fn apply(&mut self, config: ScheduleConfig) {
        self.config = config;
    }

    /// Scheduler name → default interval.
    pub fn defaults(&self) -> BTreeMap<&'static str, u64> {
        self.schedulers
            .iter()
            .map(|s| (s.name(), s.default_interval_ms()))
            .collect()
    }

    fn is_due(&self, i: usize, now_ms: u64) -> bool {
        let s = &self.schedulers[i];
        let name = s.name();
        if self.config.is_paused(name, now_ms) {
            return false;
        }
        let interval = self.config.interval_ms(name, s.default_interval_ms());
        self.state[i]
            .last_run
            .is_none_or(|last| now_ms >= last + interval)
    }

    /// Whether any scheduler is due at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        (0..self.schedulers.len()).any(|i| self.is_due(i, now_ms))
    }

    /// Runs every due scheduler once against `view`. `busy`: RGs jobs hold or whose finished
    /// job the view does not show yet; `pending`: effects not in the view yet (see
    /// [`busy_and_pending`]).
    pub fn plan(
        &mut self,
        view: &ClusterView,
        objects: &ObjectPlacement,
        busy: &BTreeSet<RgId>,
        pending: &Pending,
        now_ms: u64,
    ) -> Vec<Planned> {
        let seen = (
            stores_fingerprint(view),
            self.config.clone(),
            objects.version,
        );
        if self.seen.as_ref() != Some(&seen) {
            for s in &mut self.state {
                s.cursor = None;
            }
            self.seen = Some(seen);
        }
        let inputs = inputs_fingerprint(view, busy, pending, objects, &self.seen);
        let mut out = Vec::new();
        for i in 0..self.schedulers.len() {
            if !self.is_due(i, now_ms) {
                continue;
            }
            let st = &mut self.state[i];
            st.last_run = Some(now_ms);
            if st.idle_at == Some(inputs) {
                // Nothing it reads changed since it last proposed nothing.
                st.last_scope = 0;
                st.last_cost_us = 0;
                continue;
            }
            let changed = st.cursor.and_then(|c| view.changed_since(c));
            st.cursor = Some(view.change_seq());
            let due_later: Vec<u64> = st.revisit_at.range(..=now_ms).map(|(t, _)| *t).collect();
            let mut revisit = std::mem::take(&mut st.revisit);
            for t in due_later {
                revisit.extend(st.revisit_at.remove(&t).unwrap_or_default());
            }
            let scope = changed.map(|mut c| {
                c.append(&mut revisit);
                c
            });
            if scope.is_none() {
                // A full pass sees everything; what it still cannot decide it asks again.
                st.revisit_at.clear();
            }
            st.last_scope = scope.as_ref().map_or(view.rgs.len(), BTreeSet::len) as u64;
            let ctx = Ctx {
                view,
                now_ms,
                config: &self.config,
                busy,
                objects,
                pending,
                scope: scope.as_ref(),
                revisit: Default::default(),
            };
            let started = std::time::Instant::now();
            // A scheduler's bug (or a number it did not expect) must not take the round, its
            // lock or the server down: its run is dropped, it looks at everything next time.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.schedulers[i].run(&ctx)
            }));
            let st = &mut self.state[i];
            st.last_cost_us = started.elapsed().as_micros() as u64;
            let decisions = match run {
                Ok(decisions) => decisions,
                Err(panic) => {
                    let name = self.schedulers[i].name();
                    let message = panic_message(&*panic);
                    tracing::error!(scheduler = name, panic = %message, "scheduler run panicked");
                    st.failures += 1;
                    st.cursor = None;
                    st.idle_at = None;
                    self.failed.push((name, message));
                    continue;
                }
            };
            for (rg, at) in ctx.revisit.into_inner() {
                if at <= now_ms {
                    st.revisit.insert(rg);
                } else {
                    st.revisit_at.entry(at).or_default().push(rg);
                }
            }
            let name = self.schedulers[i].name();
            let priority = self.schedulers[i].priority();
            let proposes = decisions
                .iter()
                .any(|d| matches!(d, Decision::Propose { .. }));
            st.idle_at =
                (self.schedulers[i].same_inputs_same_result() && !proposes).then_some(inputs);
            for decision in decisions {
                match &decision {
                    Decision::Propose { .. } => {}
                    Decision::Skip { subject, reason } => {
                        st.skipped += 1;
                        let key = (name, subject.clone());
                        if self.last_skip.get(&key) == Some(reason) {
                            continue;
                        }
                        self.last_skip.insert(key, reason.clone());
                    }
                }
                out.push(Planned {
                    scheduler: name,
                    priority,
                    decision,
                });
            }
        }
        out
    }

    /// Scheduler runs that panicked since the last call: (scheduler, message).
    pub fn take_failures(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.failed)
    }

    /// Every checker looks at every RG at its next run: what a round planned was not all
    /// acted on (an error in the middle of acting on it), and its cursors moved past it.
    pub fn look_again(&mut self) {
        for s in &mut self.state {
            s.cursor = None;
            s.idle_at = None;
        }
    }

    /// What became of a proposal: taken (a job), or refused (its RGs are looked at again).
    pub fn proposed(&mut self, scheduler: &str, spec: &JobSpec, taken: bool) {
        let Some(i) = self.schedulers.iter().position(|s| s.name() == scheduler) else {
            return;
        };
        let st = &mut self.state[i];
        if taken {
            st.taken += 1;
        } else {
            st.skipped += 1;
            let (rgs, _) = spec.touches(&crate::jobs::plan::Plan::new(vec![]));
            st.revisit.extend(rgs);
        }
    }

    pub fn status(&self, now_ms: u64) -> Vec<SchedulerStatus> {
        self.schedulers
            .iter()
            .zip(&self.state)
            .map(|(s, st)| {
                let name = s.name();
                SchedulerStatus {
                    name: name.to_string(),
                    paused_until_ms: self
                        .config
                        .paused
                        .get(name)
                        .copied()
                        .filter(|u| *u > now_ms),
                    interval_ms: self.config.interval_ms(name, s.default_interval_ms()),
                    last_run_ms: st.last_run.unwrap_or(0),
                    taken: st.taken,
                    skipped: st.skipped,
                    last_scope: st.last_scope,
                    last_cost_us: st.last_cost_us,
                    failures: st.failures,
                }
            })
            .collect()
    }
}

/// What of the stores decides for RGs that have no replica on them: which stores take
/// replicas (Up) and their labels. A change makes every checker look at every RG (a new zone,
/// a store back Up where a repair found no room, a label rule now met). A store's own change of
/// state is logged for the RGs it holds by the view itself.
fn stores_fingerprint(view: &ClusterView) -> u64 {
    let mut h = DefaultHasher::new();
    for s in view.stores.values() {
        (s.id, s.state == crate::cluster::StoreState::Up, &s.labels).hash(&mut h);
    }
    // A store entering or leaving maintenance changes who balances with whom.
    view.maintenance.keys().for_each(|s| s.hash(&mut h));
    h.finish()
}

/// Everything a run of a balancer reads, hashed: the view (its change log position, its
/// traffic), the busy RGs, the pending effects, the placement rules and what `seen` holds
/// (stores, config).
fn inputs_fingerprint(
    view: &ClusterView,
    busy: &BTreeSet<RgId>,
    pending: &Pending,
    objects: &ObjectPlacement,
    seen: &Option<(u64, ScheduleConfig, u64)>,
) -> u64 {
    let mut h = DefaultHasher::new();
    (view.change_seq(), view.loads_seq(), objects.version).hash(&mut h);
    busy.hash(&mut h);
    for s in view.stores.values() {
        (s.id, s.state as u8, s.capacity_bytes).hash(&mut h);
    }
    (&pending.replicas, &pending.leaders, &pending.settling).hash(&mut h);
    if let Some((stores, config, _)) = seen {
        stores.hash(&mut h);
        format!("{config:?}").hash(&mut h);
    }
    h.finish()
}

/// What the engine is doing, read before the view is locked: jobs running, jobs that
/// succeeded within the settle time, RGs they hold.
pub struct EngineWork {
    pub running: Vec<JobSpec>,
    pub recent: Vec<(u64, JobSpec)>,
    pub locked: BTreeSet<RgId>,
}

impl EngineWork {
    pub fn of<S: CatalogStore, E: StepExecutor, C: Clock>(
        engine: &Engine<S, E, C>,
        settle_ms: u64,
        now_ms: u64,
    ) -> Self {
        Self {
            running: engine.running_specs(),
            recent: engine.recent_successes(now_ms.saturating_sub(settle_ms)),
            locked: engine.busy_rgs(),
        }
    }

    /// RGs to leave alone and effects to count: what both the server and the simulator pass
    /// to [`Round::plan`]. `heard(rg)`: when the view last took in a report of the RG.
    pub fn busy_and_pending(
        self,
        view: &ClusterView,
        settle_ms: u64,
        now_ms: u64,
        heard: &dyn Fn(RgId) -> u64,
    ) -> (BTreeSet<RgId>, Pending) {
        let pending = Pending::of(view, &self.running, &self.recent, now_ms, settle_ms, heard);
        let mut busy = self.locked;
        busy.extend(pending.settling.iter().copied());
        (busy, pending)
    }
}
