//! The engine against a simulated store that behaves like the real one where it matters here:
//! it answers a repeat of an RG's last step with the stored outcome, and counts every step it
//! really ran. Failures are injected per step sequence number.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use proto::v1::{Busy, StaleTerm, StepFailed, StepOk, StepOutcome, step_outcome};

use super::*;
use crate::catalog::memory::MemoryStore;
use crate::clock::ManualClock;
use crate::jobs::types::tests::{cases, names, view};

#[derive(Default)]
struct SimState {
    /// (job, step_seq) → times the step really ran.
    ran: BTreeMap<(JobId, u32), u32>,
    /// Steps that ran, in order.
    order: Vec<AtomicStep>,
    /// The store's idempotency records: (RG, job, step) → outcome.
    last: HashMap<(u64, JobId, u32), StepOutcome>,
    /// step_seq → outcomes to answer instead of running, consumed in order.
    inject: HashMap<u32, Vec<StepOutcome>>,
    /// step_seq → attempts that take effect on the store but whose reply is lost (the MC sees
    /// Unavailable, as after a missed deadline), consumed one per attempt.
    lost: HashMap<u32, u32>,
    /// Steps whose effect is in place, as a probe of the stores would find.
    landed: Vec<AtomicStep>,
    /// Probes cannot reach the stores.
    probe_unknown: bool,
}

#[derive(Clone, Default)]
struct Sim(Arc<Mutex<SimState>>);

impl Sim {
    fn inject(&self, seq: u32, outcomes: Vec<StepOutcome>) {
        self.0.lock().unwrap().inject.insert(seq, outcomes);
    }
    /// The next `n` attempts of step `seq` land, and their replies are lost.
    fn lose_replies(&self, seq: u32, n: u32) {
        self.0.lock().unwrap().lost.insert(seq, n);
    }
    fn probes_fail(&self, unknown: bool) {
        self.0.lock().unwrap().probe_unknown = unknown;
    }
    fn ran(&self) -> BTreeMap<(JobId, u32), u32> {
        self.0.lock().unwrap().ran.clone()
    }
    fn order(&self) -> Vec<AtomicStep> {
        self.0.lock().unwrap().order.clone()
    }
}

fn ok() -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Ok(StepOk::default())),
    }
}
fn failed() -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Failed(StepFailed {
            reason: "injected".into(),
            refused: false,
        })),
    }
}
fn busy() -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Busy(Busy::default())),
    }
}

fn unavailable() -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Unavailable(proto::v1::Unavailable {
            reason: "deadline exceeded".into(),
            retry_after_ms: 0,
        })),
    }
}

impl StepExecutor for Sim {
    async fn execute(&self, env: Envelope, step: &AtomicStep) -> StepOutcome {
        let mut s = self.0.lock().unwrap();
        let rg = step.rg().unwrap_or(0);
        if let Some(outcome) = s.last.get(&(rg, env.job_id, env.step_seq)) {
            return outcome.clone();
        }
        if let Some(n) = s.lost.get_mut(&env.step_seq).filter(|n| **n > 0) {
            *n -= 1;
            // Like a store re-running an idempotent step: an effect already there is not
            // made again.
            if !s.landed.contains(step) {
                *s.ran.entry((env.job_id, env.step_seq)).or_default() += 1;
                s.order.push(step.clone());
                s.landed.push(step.clone());
            }
            return unavailable();
        }
        let outcome = match s.inject.get_mut(&env.step_seq).filter(|v| !v.is_empty()) {
            Some(v) => v.remove(0),
            None => ok(),
        };
        let runs = matches!(
            outcome.result,
            Some(step_outcome::Result::Ok(_)) | Some(step_outcome::Result::Failed(_))
        );
        if runs {
            *s.ran.entry((env.job_id, env.step_seq)).or_default() += 1;
            s.order.push(step.clone());
            s.last
                .insert((rg, env.job_id, env.step_seq), outcome.clone());
        }
        if matches!(outcome.result, Some(step_outcome::Result::Ok(_))) {
            s.landed.push(step.clone());
        }
        outcome
    }

    async fn probe(&self, _env: Envelope, step: &AtomicStep) -> crate::jobs::executor::Probe {
        use crate::jobs::executor::Probe;
        let s = self.0.lock().unwrap();
        if s.probe_unknown {
            Probe::Unknown("stores unreachable".into())
        } else if s.landed.contains(step) {
            Probe::Landed
        } else {
            Probe::NotLanded
        }
    }
}

/// The job most tests drive: RG 1's replica from store 1 to store 4 (six steps).
fn migrate_1_to_4() -> JobSpec {
    JobSpec::MigrateReplica {
        rg: 1,
        from: 1,
        to: 4,
    }
}

type TestEngine = Engine<Arc<MemoryStore>, Sim, ManualClock>;

/// Every job type but the parents (DrainStore), whose one step spawns other jobs; they have
/// their own tests below.
fn leaf_cases() -> Vec<crate::jobs::types::tests::Case> {
    cases()
        .into_iter()
        .filter(|c| !matches!(c.spec, JobSpec::DrainStore { .. }))
        .collect()
}

fn engine(store: &Arc<MemoryStore>, sim: &Sim, term: u64) -> TestEngine {
    Engine::new(
        store.clone(),
        sim.clone(),
        ManualClock::new(1_000),
        EngineConfig {
            mc_term: term,
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn every_job_type_runs_its_steps_once_and_succeeds() {
    for case in leaf_cases() {
        let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
        let e = engine(&store, &sim, 1);
        let job = e.submit(case.spec.clone(), &view()).await.unwrap();
        assert_eq!(
            e.run(job.id).await.unwrap(),
            Progress::Stopped(JobState::Succeeded),
            "{:?}",
            case.spec
        );
        assert_eq!(names(&sim.order()), case.steps, "{:?}", case.spec);
        assert!(sim.ran().values().all(|n| *n == 1));
        let execs = record::load_execs(&store, job.id).unwrap();
        assert_eq!(
            execs.len(),
            case.steps.len(),
            "one execution record per step"
        );
        assert!(
            execs
                .iter()
                .all(|r| r.finished_ms >= r.dispatched_ms && r.outcome().is_some())
        );
    }
}

#[tokio::test]
async fn a_failure_at_every_step_rolls_back_what_was_done() {
    for case in leaf_cases() {
        for (k, rollback) in case.rollbacks.iter().enumerate() {
            let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
            sim.inject(k as u32 + 1, vec![failed()]);
            let e = engine(&store, &sim, 1);
            let job = e.submit(case.spec.clone(), &view()).await.unwrap();
            assert_eq!(
                e.run(job.id).await.unwrap(),
                Progress::Stopped(JobState::Failed),
                "{:?} at {k}",
                case.spec
            );
            let mut expected: Vec<String> =
                case.steps[..=k].iter().map(|s| s.to_string()).collect();
            if let Some(undo) = rollback {
                expected.extend(undo.iter().map(|s| s.to_string()));
            }
            assert_eq!(
                names(&sim.order()),
                expected,
                "{:?} failing at step {k}",
                case.spec
            );
            let job = e.job(job.id).unwrap();
            assert!(job.last_error.as_deref().unwrap_or("").contains("injected"));
        }
    }
}

#[tokio::test]
async fn a_step_the_store_refused_outright_is_not_undone() {
    // Create(to) refused because store 4 already hosts RG 1 (another job's replica, one the
    // view does not know yet): the rollback must not destroy it.
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(
        1,
        vec![StepOutcome {
            result: Some(step_outcome::Result::Failed(StepFailed {
                reason: "RG 1 already exists on this store".into(),
                refused: true,
            })),
        }],
    );
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    let order = names(&sim.order());
    assert_eq!(order.len(), 1, "only the refused Create ran: {order:?}");
}

#[tokio::test]
async fn retryable_outcomes_back_off_and_then_succeed() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(2, vec![busy(), busy()]);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(e.step_job(job.id).await.unwrap(), Progress::Continue);
    let Progress::WaitUntil(at) = e.step_job(job.id).await.unwrap() else {
        panic!("expected a backoff")
    };
    assert_eq!(e.job(job.id).unwrap().state, JobState::Retrying);
    // Not before the backoff has elapsed.
    assert_eq!(e.step_job(job.id).await.unwrap(), Progress::WaitUntil(at));
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    let attempts: Vec<u32> = record::load_execs(&store, job.id)
        .unwrap()
        .iter()
        .filter(|r| r.step_seq == 2)
        .map(|r| r.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
}

#[tokio::test]
async fn retries_exhausted_become_an_abort() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(2, vec![busy(); 8]);
    let e = engine(&store, &sim, 1);
    let job = e
        .submit(
            JobSpec::AddReplica {
                rg: 1,
                store: 4,
                voter: true,
            },
            &view(),
        )
        .await
        .unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    assert_eq!(
        names(&sim.order()),
        ["create@4", "remove@leader1", "destroy@4"]
    );
}

/// The last thing the previous engine did before it stopped.
#[derive(Clone, Copy, Debug)]
enum Crash {
    DispatchPersisted,
    StoreRan,
    FinishPersisted,
}

#[tokio::test]
async fn recovery_at_every_step_boundary_runs_no_step_twice() {
    for case in leaf_cases() {
        for k in 0..case.steps.len() {
            for crash in [
                Crash::DispatchPersisted,
                Crash::StoreRan,
                Crash::FinishPersisted,
            ] {
                let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
                let first = engine(&store, &sim, 1);
                let id = first.submit(case.spec.clone(), &view()).await.unwrap().id;
                for _ in 0..k {
                    assert_eq!(first.step_job(id).await.unwrap(), Progress::Continue);
                }
                let dispatch = first.dispatch(id).await.unwrap().expect("a step to send");
                if !matches!(crash, Crash::DispatchPersisted) {
                    let outcome = first.send(&dispatch).await;
                    if matches!(crash, Crash::FinishPersisted) {
                        first.finish(&dispatch, outcome).await.unwrap();
                    }
                }
                drop(first); // volatile state gone: only the catalog and the stores remain

                let second = engine(&store, &sim, 2);
                assert_eq!(second.recover().unwrap(), vec![id]);
                assert_eq!(
                    second.run(id).await.unwrap(),
                    Progress::Stopped(JobState::Succeeded),
                    "{:?} {k} {crash:?}",
                    case.spec
                );
                assert_eq!(
                    names(&sim.order()),
                    case.steps,
                    "{:?} crash {crash:?} at step {k}",
                    case.spec
                );
                assert!(
                    sim.ran().values().all(|n| *n == 1),
                    "{:?} {crash:?} at {k}: a step ran twice",
                    case.spec
                );
            }
        }
    }
}

#[tokio::test]
async fn pause_resume_and_cancel() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    e.step_job(job.id).await.unwrap();
    e.step_job(job.id).await.unwrap();
    assert_eq!(e.pause(job.id).await.unwrap().state, JobState::Paused);
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Paused)
    );
    assert_eq!(sim.order().len(), 2, "a paused job sends nothing");
    e.resume(job.id).await.unwrap();
    e.step_job(job.id).await.unwrap();
    // Cancel after Create, AddLearner, Promote: undo all three (Promote's undo is Remove's).
    assert_eq!(e.cancel(job.id).await.unwrap().state, JobState::RollingBack);
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Cancelled)
    );
    assert_eq!(
        names(&sim.order()),
        [
            "create@4",
            "add_learner@leader1",
            "promote@leader1",
            "online@1",
            "remove@leader1",
            "destroy@4"
        ]
    );
    // A finished job cannot be resumed: the transition table says so.
    let err = e.resume(job.id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("job {}: cannot go from cancelled to running", job.id)
    );
}

#[tokio::test]
async fn cancel_is_refused_past_the_point_of_no_return_and_failed_jobs_can_be_retried() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(6, vec![failed()]);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    for _ in 0..5 {
        e.step_job(job.id).await.unwrap();
    }
    let err = e.cancel(job.id).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("past its point of no return (step 5)"),
        "{err}"
    );
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    assert_eq!(
        e.retry(job.id, &view()).await.unwrap().state,
        JobState::Pending
    );
}

#[tokio::test]
async fn a_deposed_mc_stops_and_the_new_leader_finishes() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(
        3,
        vec![StepOutcome {
            result: Some(step_outcome::Result::StaleTerm(StaleTerm {
                request_term: 1,
                highest_seen_term: 2,
            })),
        }],
    );
    let old = engine(&store, &sim, 1);
    let id = old.submit(migrate_1_to_4(), &view()).await.unwrap().id;
    assert_eq!(old.run(id).await.unwrap(), Progress::Deposed);
    assert_eq!(
        old.job(id).unwrap().state,
        JobState::Running,
        "a deposed MC changes nothing"
    );
    let new = engine(&store, &sim, 2);
    assert_eq!(
        new.run(id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    assert!(sim.ran().values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_refused_submission_persists_nothing() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let err = e
        .submit(
            JobSpec::MigrateReplica {
                rg: 1,
                from: 2,
                to: 2,
            },
            &view(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, McError::InvalidArgument { .. }));
    assert!(store.scan(b"").unwrap().is_empty());
}

#[tokio::test]
async fn a_conflicting_submission_is_refused_naming_the_holder_and_persists_nothing() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let first = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    let err = e
        .submit(
            JobSpec::AddReplica {
                rg: 1,
                store: 5,
                voter: true,
            },
            &view(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "rg/1 is locked by job {} (MigrateReplica, pending)",
            first.id
        )
    );
    assert_eq!(record::load_jobs(&store).unwrap().len(), 1);
    // Region jobs of another RG, and of the same RG's regions, are not held up by it.
    e.submit(
        JobSpec::SplitRegion {
            region: 20,
            at: b"zb".to_vec(),
            new_region: 21,
        },
        &view(),
    )
    .await
    .unwrap();
    e.run(first.id).await.unwrap();
    e.submit(
        JobSpec::AddReplica {
            rg: 1,
            store: 5,
            voter: true,
        },
        &view(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_waiting_submission_queues_until_the_holder_ends() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let first = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    let second = e
        .submit_with(JobSpec::TransferLeader { rg: 1, to: 2 }, &view(), true)
        .await
        .unwrap();
    assert!(!second.holds_locks);
    assert_eq!(
        e.step_job(second.id).await.unwrap(),
        Progress::Blocked { holder: first.id }
    );
    assert_eq!(
        e.run(first.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    assert_eq!(
        e.run(second.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
}

#[tokio::test]
async fn locks_are_rebuilt_from_the_catalog_after_a_restart() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let first = engine(&store, &sim, 1);
    let held = first
        .submit(
            JobSpec::MergeRg {
                source: 2,
                target: 1,
            },
            &view(),
        )
        .await
        .unwrap();
    first.step_job(held.id).await.unwrap();
    drop(first);
    let second = engine(&store, &sim, 2);
    assert_eq!(second.recover().unwrap(), vec![held.id]);
    let err = second
        .submit(JobSpec::OfflineRg { rg: 2 }, &view())
        .await
        .unwrap_err();
    assert!(
        matches!(err, McError::Locked { holder, .. } if holder == held.id),
        "{err}"
    );
}

fn reachable(from: JobState, to: JobState) -> bool {
    let mut seen = vec![from];
    let mut i = 0;
    while i < seen.len() {
        for (f, t, _) in crate::jobs::state::TRANSITIONS {
            if *f == seen[i] && !seen.contains(t) {
                seen.push(*t);
            }
        }
        i += 1;
    }
    seen[1..].contains(&to) || (from == to)
}

/// A seeded pseudo-random sequence: repeatable, and different per seed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn random_operations_never_break_the_table_or_share_an_rg() {
    for seed in 0..200u64 {
        let mut rng = Lcg(seed);
        let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
        // Random step outcomes: some steps fail, some are busy.
        for seq in 1..=8 {
            match rng.next(6) {
                0 => sim.inject(seq, vec![failed()]),
                1 => sim.inject(seq, vec![busy(), busy()]),
                _ => {}
            }
        }
        let e = engine(&store, &sim, 1);
        let mut ids: Vec<JobId> = Vec::new();
        for _ in 0..60 {
            let rg = 1 + rng.next(2);
            match rng.next(7) {
                0 | 1 => {
                    let spec = match rng.next(3) {
                        0 => JobSpec::MigrateReplica { rg, from: 1, to: 4 },
                        1 => JobSpec::TransferLeader { rg, to: 2 },
                        _ => JobSpec::OfflineRg { rg },
                    };
                    match e.submit_with(spec, &view(), rng.next(2) == 0).await {
                        Ok(job) => ids.push(job.id),
                        Err(McError::Locked { .. }) => {}
                        Err(other) => panic!("seed {seed}: {other}"),
                    }
                }
                op if !ids.is_empty() => {
                    let id = ids[rng.next(ids.len() as u64) as usize];
                    let before = e.job(id).unwrap().state;
                    let result = match op {
                        2 => e.pause(id).await.map(|j| j.state),
                        3 => e.resume(id).await.map(|j| j.state),
                        4 => e.cancel(id).await.map(|j| j.state),
                        _ => e.step_job(id).await.map(|_| e.job(id).unwrap().state),
                    };
                    match result {
                        // pause/resume/cancel make one transition; a step may make two
                        // (Pending -> Running -> Retrying): each must follow the table.
                        Ok(after) if after != before && op <= 4 => {
                            assert!(
                                crate::jobs::state::allowed(before, after),
                                "seed {seed}: {before} -> {after}"
                            )
                        }
                        Ok(after) if after != before => {
                            assert!(reachable(before, after), "seed {seed}: {before} -> {after}")
                        }
                        Ok(_) => {}
                        Err(McError::IllegalTransition { from, .. }) => {
                            assert_eq!(from, before.name())
                        }
                        Err(McError::FailedPrecondition { .. }) => {}
                        Err(other) => panic!("seed {seed}: {other}"),
                    }
                }
                _ => {}
            }
            // Invariant: at most one unfinished job holds each RG exclusively.
            let jobs = record::load_jobs(&store).unwrap();
            let mut holders: HashMap<u64, JobId> = HashMap::new();
            for j in jobs.iter().filter(|j| j.holds_locks && !j.state.is_final()) {
                for (res, mode) in &j.locks {
                    if let (
                        crate::jobs::locks::Resource::Rg(rg),
                        crate::jobs::locks::Mode::Exclusive,
                    ) = (res, mode)
                        && let Some(other) = holders.insert(*rg, j.id)
                    {
                        panic!("seed {seed}: jobs {other} and {} both hold rg/{rg}", j.id);
                    }
                }
            }
        }
        assert_index_agrees(&store, seed);
    }
}

/// Every query through the job indexes returns what a full scan and filter returns, also
/// page by page.
fn assert_index_agrees(store: &MemoryStore, seed: u64) {
    use crate::jobs::index::{JobFilter, query};
    let all = record::load_jobs(store).unwrap();
    let mut filters = vec![JobFilter::default()];
    for s in JobState::ALL {
        filters.push(JobFilter {
            states: vec![s.to_proto() as i32],
            ..Default::default()
        });
    }
    filters.push(JobFilter {
        states: vec![
            JobState::Succeeded.to_proto() as i32,
            JobState::Cancelled.to_proto() as i32,
        ],
        types: vec![proto::v1::JobType::MigrateReplica as i32],
        ..Default::default()
    });
    for t in [
        proto::v1::JobType::MigrateReplica,
        proto::v1::JobType::TransferLeader,
    ] {
        filters.push(JobFilter {
            types: vec![t as i32],
            ..Default::default()
        });
    }
    for rg in 1..=2 {
        filters.push(JobFilter {
            rg,
            ..Default::default()
        });
    }
    for store_id in 1..=4 {
        filters.push(JobFilter {
            store: store_id,
            states: vec![JobState::Failed.to_proto() as i32],
            ..Default::default()
        });
    }
    filters.push(JobFilter {
        created_from_ms: 1_000,
        created_to_ms: 1_001,
        ..Default::default()
    });
    for f in filters {
        let expected: Vec<JobId> = all.iter().filter(|j| f.matches(j)).map(|j| j.id).collect();
        let (got, more) = query(store, &f, 0, usize::MAX).unwrap();
        let got: Vec<JobId> = got.iter().map(|j| j.id).collect();
        assert_eq!(got, expected, "seed {seed}: {f:?}");
        assert!(!more);
        let (mut paged, mut after) = (Vec::new(), 0);
        loop {
            let (page, more) = query(store, &f, after, 2).unwrap();
            paged.extend(page.iter().map(|j| j.id));
            after = paged.last().copied().unwrap_or(0);
            if !more {
                break;
            }
        }
        assert_eq!(paged, expected, "seed {seed}: pages of {f:?}");
    }
}

#[tokio::test]
async fn jobs_of_a_catalog_without_indexes_are_indexed_once() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    e.run(job.id).await.unwrap();
    // An older catalog: the same records, no index entries, no marker.
    let mut batch = WriteBatch::default();
    for (k, _) in store.scan(b"jidx/").unwrap() {
        batch.delete(k);
    }
    batch.delete(&b"meta/schema/job_index"[..]);
    store.write(batch).await.unwrap();
    let succeeded = crate::jobs::index::JobFilter {
        states: vec![JobState::Succeeded.to_proto() as i32],
        ..Default::default()
    };
    assert!(
        crate::jobs::index::query(&store, &succeeded, 0, 10)
            .unwrap()
            .0
            .is_empty()
    );
    assert_eq!(crate::jobs::index::ensure(&store).await.unwrap(), 1);
    assert_eq!(crate::jobs::index::ensure(&store).await.unwrap(), 0, "once");
    assert_index_agrees(&store, 0);
    let (found, _) = crate::jobs::index::query(&store, &succeeded, 0, 10).unwrap();
    assert_eq!(found.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
}

#[tokio::test]
async fn a_retried_submission_with_the_same_request_id_creates_nothing() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let spec = migrate_1_to_4();
    let first = e
        .submit_request(spec.clone(), &view(), false, Some("ddl-7"))
        .await
        .unwrap();
    e.run(first.id).await.unwrap();
    let again = e
        .submit_request(spec, &view(), false, Some("ddl-7"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(record::load_jobs(&store).unwrap().len(), 1);
    // A different request id is a new submission (and here conflicts with nothing).
    let other = e
        .submit_request(
            JobSpec::TransferLeader { rg: 1, to: 2 },
            &view(),
            false,
            Some("ddl-8"),
        )
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    // The same request id for another kind of job is a caller's mistake, named.
    let err = e
        .submit_request(
            JobSpec::TransferLeader { rg: 1, to: 2 },
            &view(),
            false,
            Some("ddl-7"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`request_id`"), "{err}");
    assert_eq!(record::load_jobs(&store).unwrap().len(), 2, "nothing made");
}

#[tokio::test]
async fn ids_at_the_top_of_the_id_space_are_refused_not_overflowed() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let err = e
        .allocate(crate::jobs::spec::NewId::Region, 1, u64::MAX)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ids is used up to"), "{err}");
    let err = e
        .allocate(crate::jobs::spec::NewId::Rg, 10, u64::MAX - 5)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("10 more"), "{err}");
    assert_eq!(
        e.allocate(crate::jobs::spec::NewId::Rg, 1, 7)
            .await
            .unwrap(),
        8
    );
}

#[tokio::test]
async fn at_most_the_configured_number_of_jobs_run_at_once() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    e.set_limits(crate::jobs::limits::Limits {
        max_running_jobs: 1,
        ..Default::default()
    });
    let a = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    let b = e
        .submit(JobSpec::TransferLeader { rg: 2, to: 2 }, &view())
        .await
        .unwrap();
    assert_eq!(e.step_job(a.id).await.unwrap(), Progress::Continue);
    assert!(matches!(
        e.step_job(b.id).await.unwrap(),
        Progress::WaitUntil(_)
    ));
    assert_eq!(
        e.job(b.id).unwrap().state,
        JobState::Pending,
        "a throttled job is left as it was"
    );
    assert_eq!(
        e.run(a.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    assert_eq!(
        e.run(b.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
}

#[tokio::test]
async fn waiting_jobs_start_by_class_then_age() {
    use crate::jobs::queue::Priority;
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    e.set_limits(crate::jobs::limits::Limits {
        max_running_jobs: 1,
        ..Default::default()
    });
    let submit = |spec, priority| {
        let e = &e;
        async move {
            e.submit_inner(spec, &view(), false, None, None, priority)
                .await
                .unwrap()
        }
    };
    let running = submit(migrate_1_to_4(), Priority::Admin).await;
    let balance = submit(JobSpec::TransferLeader { rg: 2, to: 2 }, Priority::Balance).await;
    let repair = submit(JobSpec::TransferLeader { rg: 3, to: 2 }, Priority::Repair).await;
    assert_eq!(repair.priority, Priority::Repair);
    assert_eq!(e.step_job(running.id).await.unwrap(), Progress::Continue);
    for id in [balance.id, repair.id] {
        assert!(matches!(
            e.step_job(id).await.unwrap(),
            Progress::WaitUntil(_)
        ));
    }
    e.run(running.id).await.unwrap();
    // The older balance job still waits: the repair goes first.
    assert!(matches!(
        e.step_job(balance.id).await.unwrap(),
        Progress::WaitUntil(_)
    ));
    assert_eq!(e.job(balance.id).unwrap().state, JobState::Pending);
    assert_eq!(e.step_job(repair.id).await.unwrap(), Progress::Continue);
    e.run(repair.id).await.unwrap();
    assert_eq!(
        e.run(balance.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
}

#[tokio::test]
async fn a_store_receives_at_most_its_steps_per_minute() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let mut limits = crate::jobs::limits::Limits::default();
    limits.per_store.insert(4, (1, 0));
    e.set_limits(limits);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    // Create(4) and AddLearner(4) both load store 4: a minute apart on the virtual clock.
    let execs = record::load_execs(&store, job.id).unwrap();
    let at = |seq| {
        execs
            .iter()
            .find(|r| r.step_seq == seq)
            .unwrap()
            .dispatched_ms
    };
    assert!(at(2) >= at(1) + 60_000, "{} then {}", at(1), at(2));
    assert!(
        at(3) < at(2) + 60_000,
        "Promote goes to the leader, not store 4"
    );
}

/// A DrainStore on store 3 of the test view, able to plan its children.
async fn drain(store: &Arc<MemoryStore>, sim: &Sim, max_parallel: u32) -> (TestEngine, JobId) {
    let e = engine(store, sim, 1);
    e.set_view_source(Arc::new(std::sync::RwLock::new(view())));
    let job = e
        .submit(
            JobSpec::DrainStore {
                store: 3,
                max_parallel,
            },
            &view(),
        )
        .await
        .unwrap();
    (e, job.id)
}

#[tokio::test]
async fn a_drain_moves_every_rg_off_the_store_through_children_under_its_parallelism() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let (e, id) = drain(&store, &sim, 2).await;
    let on_store_3 = view().rgs_on(3);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "the drain does not finish");
        match e.step_job(id).await.unwrap() {
            Progress::Stopped(state) => {
                assert_eq!(state, JobState::Succeeded);
                break;
            }
            Progress::WaitUntil(_) | Progress::Continue => {}
            other => panic!("{other:?}"),
        }
        let parent = e.job(id).unwrap();
        let running: Vec<JobId> = parent
            .children
            .iter()
            .copied()
            .filter(|c| !e.job(*c).unwrap().state.is_final())
            .collect();
        assert!(running.len() <= 2, "at most max_parallel children at once");
        for child in running {
            assert_eq!(e.job(child).unwrap().parent, Some(id));
            assert_eq!(
                e.run(child).await.unwrap(),
                Progress::Stopped(JobState::Succeeded)
            );
        }
    }
    let parent = e.job(id).unwrap();
    let mut moved: Vec<u64> = Vec::new();
    for child in &parent.children {
        let c = e.job(*child).unwrap();
        let JobSpec::MigrateReplica { rg, from, to } = c.spec else {
            panic!("{:?}", c.spec)
        };
        assert_eq!(from, 3);
        assert!(
            !view().rg(rg).unwrap().members.contains_key(&to) && to != 6,
            "RG {rg} moved to a member or a down store ({to})"
        );
        moved.push(rg);
    }
    moved.sort();
    assert_eq!(moved, on_store_3, "each RG of the store moved once");
    // Each child is a decision in the scheduling log, naming the drain and its job.
    let subject = format!("job/{id}");
    let q = crate::history::LogQuery {
        table: crate::history::SCHEDULING,
        from_ms: 0,
        to_ms: 0,
        subject: &subject,
        after: None,
        limit: 100,
    };
    let (decisions, _) =
        crate::history::query::<crate::history::Decision>(&*store, &q, |d| &d.subjects).unwrap();
    assert_eq!(
        decisions.iter().map(|d| d.job_id).collect::<Vec<_>>(),
        parent.children
    );
    assert!(decisions.iter().all(|d| d.taken && d.scheduler == subject));
    assert_eq!(
        e.children_progress(&parent),
        (moved.len() as u32, moved.len() as u32)
    );
    assert!(sim.ran().values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_failed_child_fails_the_drain_naming_it() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    // The first child's AddLearner fails for good; it rolls back and ends Failed.
    sim.inject(2, vec![failed()]);
    let (e, id) = drain(&store, &sim, 1).await;
    assert!(matches!(
        e.step_job(id).await.unwrap(),
        Progress::WaitUntil(_)
    ));
    let child = e.job(id).unwrap().children[0];
    assert_eq!(
        e.run(child).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    assert_eq!(
        e.step_job(id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    let parent = e.job(id).unwrap();
    let error = parent.last_error.unwrap();
    assert!(error.contains(&format!("child job {child}")), "{error}");
}

#[tokio::test]
async fn cancelling_a_drain_cancels_its_unfinished_children() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let (e, id) = drain(&store, &sim, 2).await;
    e.step_job(id).await.unwrap();
    let children = e.job(id).unwrap().children;
    assert_eq!(children.len(), 2);
    // The first child finished before the cancel; the second had not started.
    e.run(children[0]).await.unwrap();
    e.cancel(id).await.unwrap();
    assert_eq!(e.job(children[0]).unwrap().state, JobState::Succeeded);
    assert_eq!(e.job(children[1]).unwrap().state, JobState::Cancelled);
    assert_eq!(
        e.run(id).await.unwrap(),
        Progress::Stopped(JobState::Cancelled)
    );
}

#[tokio::test]
async fn a_command_that_cannot_become_a_job_goes_to_the_error_queue_with_the_reason() {
    use crate::history::{self as logs, Decision, LogQuery, Refused};
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let bad = JobSpec::MigrateReplica {
        rg: 1,
        from: 1,
        to: 6,
    };
    let err = e
        .propose(
            "scheduler/replica-checker",
            bad.clone(),
            &view(),
            None,
            crate::jobs::queue::Priority::Repair,
            "repair RG 1",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, McError::StoreNotUsable { store: 6, .. }),
        "{err}"
    );
    assert!(record::load_jobs(&store).unwrap().is_empty(), "no job");
    let q = |table| LogQuery {
        table,
        from_ms: 0,
        to_ms: 0,
        subject: "rg/1",
        after: None,
        limit: 10,
    };
    let (refused, _) =
        logs::query::<Refused>(&store, &q(logs::ERROR_QUEUE), |r| &r.subjects).unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].spec, bad);
    assert_eq!(refused[0].source, "scheduler/replica-checker");
    assert_eq!(refused[0].reason, err.to_string());
    let (decisions, _) =
        logs::query::<Decision>(&store, &q(logs::SCHEDULING), |d| &d.subjects).unwrap();
    assert_eq!(decisions.len(), 1);
    assert!(!decisions[0].taken && decisions[0].reason.contains("not taken"));
}

#[tokio::test]
async fn ids_are_never_handed_out_twice_and_skip_what_the_view_knows() {
    use crate::jobs::spec::NewId;
    let store = Arc::new(MemoryStore::default());
    let e = engine(&store, &Sim::default(), 1);
    assert_eq!(e.allocate(NewId::Rg, 1, 0).await.unwrap(), 1);
    assert_eq!(e.allocate(NewId::Rg, 3, 0).await.unwrap(), 2);
    assert_eq!(e.allocate(NewId::Rg, 1, 10).await.unwrap(), 11);
    // A new leader's engine continues from the catalog's counter.
    let e = engine(&store, &Sim::default(), 2);
    assert_eq!(e.allocate(NewId::Rg, 1, 0).await.unwrap(), 12);
    assert_eq!(e.allocate(NewId::Region, 1, 0).await.unwrap(), 1);
}

#[tokio::test]
async fn a_refused_submission_spends_no_id() {
    use proto::v1::{CreateRgSpec, JobSpec as Wire, job_spec::Spec};
    let store = Arc::new(MemoryStore::default());
    let e = engine(&store, &Sim::default(), 1);
    let create = |stores: Vec<u64>| Wire {
        spec: Some(Spec::CreateRg(CreateRgSpec {
            store_ids: stores,
            ..Default::default()
        })),
    };
    // Store 9 has not registered yet: refused, and no RG id is used up by the refusal.
    for _ in 0..3 {
        let err = e
            .spec_from_proto(&create(vec![1, 2, 9]), &view())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("store 9"), "{err}");
    }
    match e.spec_from_proto(&create(vec![1, 2, 3]), &view()).await {
        Ok(JobSpec::CreateRg { rg, .. }) => assert_eq!(rg, 6, "the view's RGs end at 5"),
        other => panic!("{other:?}"),
    }
}

/// Step 5 of a migration, Remove(from), is the point of no return.
const REMOVE_FROM: u32 = 5;

#[tokio::test]
async fn a_no_return_step_that_landed_but_timed_out_rolls_forward() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    // Every attempt of Remove(from) lands and every reply is lost (missed deadlines).
    sim.lose_replies(REMOVE_FROM, 100);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded),
        "{:?}",
        e.job(job.id).unwrap().last_error
    );
    assert_eq!(
        names(&sim.order()),
        [
            "create@4",
            "add_learner@leader1",
            "promote@leader1",
            "offline@1",
            "remove@leader1",
            "destroy@1"
        ],
        "the new replica is kept; the old one is destroyed"
    );
}

#[tokio::test]
async fn a_no_return_step_with_an_unknown_outcome_is_not_rolled_back_and_retry_resumes_at_it() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.lose_replies(REMOVE_FROM, 100);
    sim.probes_fail(true);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    let failed = e.job(job.id).unwrap();
    let error = failed.last_error.clone().unwrap();
    assert!(
        error.contains("step 5 (STEP_KIND_REMOVE) may have run")
            && error.contains("not rolled back"),
        "{error}"
    );
    assert!(
        !names(&sim.order())
            .iter()
            .any(|n| n == "destroy@4" || n == "online@1"),
        "nothing undone: {:?}",
        names(&sim.order())
    );
    // The stores answer again: a retry resumes at Remove(from) under fresh keys.
    sim.lose_replies(REMOVE_FROM, 0);
    sim.probes_fail(false);
    let retried = e.retry(job.id, &view()).await.unwrap();
    assert_eq!(
        (retried.state, retried.cursor, retried.seq_base),
        (JobState::Pending, 4, 6)
    );
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    let seqs: Vec<u32> = record::load_execs(&store, job.id)
        .unwrap()
        .iter()
        .map(|r| r.step_seq)
        .collect();
    assert!(
        seqs.contains(&5) && seqs.contains(&11) && seqs.contains(&12),
        "the first run's records are kept, the retry's appended: {seqs:?}"
    );
    assert_eq!(
        names(&sim.order())
            .iter()
            .filter(|n| *n == "create@4")
            .count(),
        1,
        "a retry never runs the steps before the failure again"
    );
}

#[tokio::test]
async fn a_cancel_while_the_no_return_step_is_in_flight_waits_for_its_outcome() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    for _ in 0..4 {
        e.step_job(job.id).await.unwrap();
    }
    let dispatch = e.dispatch(job.id).await.unwrap().unwrap();
    assert_eq!(dispatch.envelope.step_seq, REMOVE_FROM);
    let cancelled = e.cancel(job.id).await.unwrap();
    assert!(cancelled.cancel_requested, "recorded, not taken yet");
    assert_eq!(cancelled.state, JobState::Running);
    // The in-flight Remove(from) commits on the store.
    let outcome = e.send(&dispatch).await;
    e.finish(&dispatch, outcome).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    let done = e.job(job.id).unwrap();
    assert!(
        done.last_error.is_none() || done.state == JobState::Succeeded,
        "{done:?}"
    );
    assert_eq!(
        names(&sim.order()).last().map(String::as_str),
        Some("destroy@1")
    );
    assert!(!names(&sim.order()).contains(&"destroy@4".to_string()));
}

#[tokio::test]
async fn a_cancel_while_an_earlier_step_is_in_flight_undoes_it_once_it_lands() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    e.step_job(job.id).await.unwrap();
    let dispatch = e.dispatch(job.id).await.unwrap().unwrap();
    e.cancel(job.id).await.unwrap();
    let outcome = e.send(&dispatch).await;
    e.finish(&dispatch, outcome).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Cancelled)
    );
    assert_eq!(
        names(&sim.order()),
        [
            "create@4",
            "add_learner@leader1",
            "remove@leader1",
            "destroy@4"
        ]
    );
}

#[tokio::test]
async fn a_cancel_of_a_no_return_step_with_an_unknown_outcome_learns_it_first() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    // Remove(from) lands once, its reply lost; the job backs off to retry it.
    sim.lose_replies(REMOVE_FROM, 1);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    for _ in 0..5 {
        e.step_job(job.id).await.unwrap();
    }
    let waiting = e.job(job.id).unwrap();
    assert_eq!(
        (waiting.state, waiting.uncertain),
        (JobState::Retrying, true)
    );
    let cancelled = e.cancel(job.id).await.unwrap();
    assert!(cancelled.cancel_requested);
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded),
        "the probe found the step done: too late to cancel"
    );
    let done = e.job(job.id).unwrap();
    assert!(!names(&sim.order()).contains(&"destroy@4".to_string()));
    assert!(done.last_error.is_none(), "{:?}", done.last_error);
}

#[tokio::test]
async fn a_retry_after_a_failure_past_the_point_of_no_return_resumes_there() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(6, vec![failed()]);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    // Store 1 is gone for good: the Destroy cannot be sent, so the retry is refused.
    let mut gone = view();
    gone.update_store(1, |x| {
        x.state = crate::cluster::StoreState::Tombstone;
    });
    let err = e.retry(job.id, &gone).await.unwrap_err();
    assert!(err.to_string().contains("store 1"), "{err}");
    assert_eq!(e.job(job.id).unwrap().state, JobState::Failed, "unchanged");
    e.retry(job.id, &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    assert_eq!(
        names(&sim.order()),
        [
            "create@4",
            "add_learner@leader1",
            "promote@leader1",
            "offline@1",
            "remove@leader1",
            "destroy@1",
            "destroy@1"
        ],
        "only Destroy(from) again, under a fresh key (6 + 6)"
    );
    assert_eq!(sim.ran().get(&(job.id, 12)), Some(&1));
}

#[tokio::test]
async fn a_retry_after_a_completed_rollback_plans_again_and_starts_over() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(2, vec![failed()]);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    // The precondition is checked again: store 4 went down meanwhile.
    let mut down = view();
    down.update_store(4, |x| {
        x.state = crate::cluster::StoreState::Down;
    });
    let err = e.retry(job.id, &down).await.unwrap_err();
    assert!(err.to_string().contains("store 4"), "{err}");
    let retried = e.retry(job.id, &view()).await.unwrap();
    assert_eq!((retried.cursor, retried.phase.clone()), (0, Phase::Forward));
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    // First run: create, add_learner (failed), then its rollback; second run: all six.
    assert_eq!(names(&sim.order()).len(), 2 + 2 + 6);
}

#[tokio::test]
async fn a_retry_of_a_failed_rollback_finishes_it_and_another_runs_the_job_again() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    // AddLearner (2) aborts; the rollback's first undo, Remove(to) (seq 6 + 1), fails too.
    sim.inject(2, vec![failed()]);
    sim.inject(7, vec![failed()]);
    let e = engine(&store, &sim, 1);
    let job = e.submit(migrate_1_to_4(), &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    e.retry(job.id, &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed),
        "the rollback is finished, and the job ends as a rolled-back job does"
    );
    e.retry(job.id, &view()).await.unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Succeeded)
    );
    let order = names(&sim.order());
    assert_eq!(
        order[..4],
        [
            "create@4",
            "add_learner@leader1",
            "remove@leader1",
            "remove@leader1"
        ],
        "{order:?}"
    );
    assert_eq!(
        &order[4..],
        [
            "destroy@4",
            "create@4",
            "add_learner@leader1",
            "promote@leader1",
            "offline@1",
            "remove@leader1",
            "destroy@1"
        ]
    );
}

/// A CreateRegion whose outcome never became known rolls back; when the create had not landed,
/// its undo (DeleteRegion) finds no region. That is the undo's goal, not a failure: the rollback
/// runs to its end (it ended in a failed rollback, and a retry of the job repeated the undo).
#[tokio::test]
async fn an_undo_that_finds_its_region_already_gone_completes_the_rollback() {
    let (store, sim) = (Arc::new(MemoryStore::default()), Sim::default());
    sim.inject(1, vec![unavailable(); 40]);
    sim.inject(
        2,
        vec![StepOutcome {
            result: Some(step_outcome::Result::NotFound(proto::v1::NotFound {
                kind: "region".into(),
                id: "12".into(),
            })),
        }],
    );
    let e = engine(&store, &sim, 1);
    let job = e
        .submit(
            JobSpec::CreateRegion {
                rg: 1,
                region: 12,
                object: 100,
                start: b"zz".to_vec(),
                end: b"zzz".to_vec(),
            },
            &view(),
        )
        .await
        .unwrap();
    assert_eq!(
        e.run(job.id).await.unwrap(),
        Progress::Stopped(JobState::Failed)
    );
    let record = e.job(job.id).unwrap();
    let Phase::Rollback { steps, .. } = &record.phase else {
        panic!("not rolled back: {record:?}");
    };
    assert_eq!(
        (record.cursor, steps.len()),
        (1, 1),
        "the rollback ran to its end ({:?})",
        record.last_error
    );
}
