//! The fault matrix: job types × step boundaries × faults, against real processes, each case
//! checked for what the MC promises — the job ends (succeeded, failed or cancelled, never
//! stuck), every acknowledged write is readable and each key's history is linearizable, no
//! step ran twice on a store, every RG keeps three voters and a leader, the table's regions
//! tile its range, and no store keeps a replica of an RG that does not list it.
//!
//! CI runs `reduced` (every step of a migration, each under another fault, and one case of the
//! other job types). `full` runs every job type at every step boundary under every fault:
//! `cargo test -p mc --test it fault::matrix::full -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use proto::v1::*;

use super::harness::{Boundary, Cluster, Fault, Trigger, Writer, job_end, settled};
use super::linearizable;
use super::shape::*;

const KEYS: u32 = 24;

/// The fault aimed at `(source, target)`.
/// The longest a client trying to write may go without an answer in any case, whatever the
/// fault (at the tests' Raft timing: 100 ms heartbeats, 300-600 ms election timeouts).
const UNANSWERED_BOUND_MS: u64 = 5_000;

fn fault(kind: usize, source: u64, target: u64) -> Fault {
    match kind % 5 {
        0 => Fault::KillMc,
        1 => Fault::KillStore(source),
        2 => Fault::KillStore(target),
        3 => Fault::StopStore(target),
        _ => Fault::CutMc,
    }
}

async fn set_schedulers(cluster: &Cluster, paused: bool) {
    let mut c = cluster.cluster_client().await;
    let names: Vec<String> = c
        .list_schedulers(ListSchedulersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schedulers
        .into_iter()
        .map(|s| s.name)
        .collect();
    for name in names {
        if paused {
            let _ = c
                .pause_scheduler(PauseSchedulerRequest {
                    name,
                    duration_secs: 0,
                })
                .await;
        } else {
            let _ = c.resume_scheduler(ResumeSchedulerRequest { name }).await;
        }
    }
}

async fn next_job_id(cluster: &Cluster) -> u64 {
    let mut c = cluster.jobs().await;
    let mut high = 0;
    let mut after = String::new();
    loop {
        let page = c
            .list_jobs(ListJobsRequest {
                page: Some(PageRequest {
                    limit: 500,
                    page_token: after.clone(),
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        high = page.jobs.iter().map(|j| j.id).max().unwrap_or(0).max(high);
        match page.page {
            Some(p) if !p.next_page_token.is_empty() => after = p.next_page_token,
            _ => return high + 1,
        }
    }
}

/// The cluster every case runs on: one MC, five stores, a table of two regions.
async fn cluster() -> Cluster {
    let cluster = Cluster::start(5).await;
    let mut meta = cluster.meta().await;
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    meta.create_table(CreateTableRequest {
        request_id: "t".into(),
        database: Some(ObjectRef {
            target: Some(object_ref::Target::Path("app".into())),
        }),
        name: "t".into(),
        placement: Some(PlacementHint {
            initial_regions: 2,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    cluster
}

/// One case: the job of `build` with the fault at its `step`'s `boundary`; panics naming the
/// case if any invariant fails. Returns the job's final state.
/// One case: the job of `build` with the fault at its `step`'s `boundary`; panics naming the
/// case if any invariant fails. Returns the job's final state and how many steps it had, or
/// `None` when the cluster's shape does not allow the job now.
async fn case(
    cluster: &Cluster,
    n: usize,
    name: &str,
    build: Build,
    step: u32,
    boundary: Boundary,
    fault_kind: usize,
) -> Option<(i32, u32, u64)> {
    let mut key_base = object_start(cluster).await;
    key_base.extend_from_slice(format!("c{n:03}-").as_bytes());
    let mut split_key = key_base.clone();
    split_key.extend_from_slice(format!("k{:04}", KEYS / 2).as_bytes());
    // The schedulers pause and their last jobs end before the shape is read, so the job is
    // planned against the cluster it will run on.
    set_schedulers(cluster, true).await;
    no_active_jobs(cluster).await;
    let mut shape = Shape::read(cluster, split_key.clone()).await;
    for round in 0..3 {
        if build(&shape).is_some() {
            break;
        }
        prepare(cluster, name, &shape, &format!("case-{n}-setup-{round}")).await;
        shape = Shape::read(cluster, split_key.clone()).await;
    }
    let Some((spec, source, target)) = build(&shape) else {
        set_schedulers(cluster, false).await;
        return None;
    };
    let fault = fault(fault_kind, source, target);
    let label = format!("case {n}: {name} step {step} {boundary:?} {fault:?}");
    let writer = Writer::start(
        cluster.mc_addr(),
        TABLE.into(),
        key_base.clone(),
        KEYS,
        n as u64 + 7,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let job = next_job_id(cluster).await;
    cluster.arm(Trigger {
        job,
        step,
        boundary,
        fault,
    });
    let submitted = crate::common::submit(&cluster.mc_addr(), spec, &format!("case-{n}")).await;
    assert_eq!(
        submitted.id, job,
        "{label}: the job got another id than armed"
    );
    let steps = submitted.steps.len() as u32;
    let end = job_end(cluster, job, Duration::from_secs(180)).await;
    let fired = cluster.disarm();
    cluster.heal().await;
    set_schedulers(cluster, false).await;
    if let Err(e) = settled(cluster, TABLE).await {
        panic!(
            "{label}: {e} (job ended {:?})\nerrors logged:\n{}",
            end.state(),
            cluster.errors(10)
        );
    }
    let unanswered = writer.longest_unanswered_ms();
    let (history, acked) = writer
        .finish(&cluster.mc_addr(), TABLE, &key_base, KEYS)
        .await;
    if let Err((key, ops)) = linearizable::check(&history) {
        panic!(
            "{label}: key {:?} is not linearizable: {ops:#?}",
            String::from_utf8_lossy(&key)
        );
    }
    assert!(
        fired || step > steps,
        "{label}: the fault never fired (the job has {steps} steps)"
    );
    assert!(
        unanswered <= UNANSWERED_BOUND_MS,
        "{label}: the client went {unanswered} ms without an answer (bound {UNANSWERED_BOUND_MS} ms)"
    );
    println!(
        "{label}: job {job} {:?}, {acked} acknowledged writes, {} operations checked, \
         longest without an answer {unanswered} ms",
        end.state(),
        history.len()
    );
    Some((end.state, steps, unanswered))
}

/// Moves the cluster towards the shape a job type needs, with plain jobs (no fault armed): a
/// SplitRg needs an RG holding two of the table's regions, a MergeRg two RGs on the same
/// stores (the source's replicas migrate to the target's stores).
async fn prepare(cluster: &Cluster, name: &str, shape: &Shape, request: &str) {
    let mut setup: Vec<job_spec::Spec> = Vec::new();
    match name {
        "SplitRg" => setup.extend(split_region(shape).map(|(spec, _, _)| spec)),
        "MergeRg" if shape.rgs.len() < 2 => match split_rg(shape) {
            Some((spec, _, _)) => setup.push(spec),
            None => setup.extend(split_region(shape).map(|(spec, _, _)| spec)),
        },
        "MergeRg" => {
            let (_, target, _) = &shape.rgs[0];
            let (source, members, _) = &shape.rgs[1];
            let from = members.iter().filter(|s| !target.contains(s));
            let to = target.iter().filter(|s| !members.contains(s));
            for (from, to) in from.zip(to) {
                setup.push(job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
                    rg_id: *source,
                    from_store_id: *from,
                    to_store_id: *to,
                }));
            }
        }
        _ => {}
    }
    for (i, spec) in setup.into_iter().enumerate() {
        let job = crate::common::submit(&cluster.mc_addr(), spec, &format!("{request}-{i}")).await;
        let end = job_end(cluster, job.id, Duration::from_secs(120)).await;
        // A setup job may fail cleanly (the cluster moved meanwhile); the case then finds no
        // shape, and the next case's settle still checks every invariant.
        if end.state() != JobState::Succeeded {
            println!(
                "  {request}: setup job {} for a {name} case ended {:?}: {:?}",
                job.id,
                end.state(),
                end.last_error.map(|e| e.message)
            );
            return;
        }
    }
}

/// Waits until no job is pending, running, retrying or rolling back.
async fn no_active_jobs(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let active = cluster
            .jobs()
            .await
            .list_jobs(ListJobsRequest {
                states: vec![
                    JobState::Pending as i32,
                    JobState::Running as i32,
                    JobState::Retrying as i32,
                    JobState::RollingBack as i32,
                ],
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().jobs.len())
            .unwrap_or(1);
        if active == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{active} scheduler jobs still active 2 minutes after the schedulers paused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn object_start(cluster: &Cluster) -> Vec<u8> {
    let mut meta = cluster.meta().await;
    meta.get_object_tree(GetObjectTreeRequest {
        root: Some(ObjectRef {
            target: Some(object_ref::Target::Path(TABLE.into())),
        }),
        max_depth: 1,
    })
    .await
    .unwrap()
    .into_inner()
    .roots[0]
        .object
        .as_ref()
        .unwrap()
        .key_range
        .as_ref()
        .unwrap()
        .start
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reduced() {
    let cluster = cluster().await;
    let mut n = 0;
    // Every step of a migration, each under another fault at one boundary or the other.
    for step in 1..=6u32 {
        n += 1;
        let boundary = if step % 2 == 0 {
            Boundary::Replied
        } else {
            Boundary::Dispatched
        };
        case(
            &cluster,
            n,
            "MigrateReplica",
            migrate,
            step,
            boundary,
            step as usize,
        )
        .await;
    }
    // The point of no return (Remove) with the MC killed after the store ran it.
    n += 1;
    case(
        &cluster,
        n,
        "MigrateReplica",
        migrate,
        5,
        Boundary::Replied,
        0,
    )
    .await;
    // One case of each other type.
    for (i, (name, build)) in TYPES.iter().enumerate().skip(1) {
        n += 1;
        case(&cluster, n, name, *build, 1, Boundary::Replied, i + 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the full matrix takes about 15 minutes: run it with --ignored"]
async fn full() {
    // MATRIX_TYPES=MergeRg,SplitRg runs only those types' cases.
    let only: Option<Vec<String>> = std::env::var("MATRIX_TYPES")
        .ok()
        .map(|v| v.split(',').map(|t| t.trim().to_string()).collect());
    let cluster = cluster().await;
    let mut n = 0;
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    // Per fault kind, the longest a client went without an answer in any of its cases.
    let mut longest_by_fault: std::collections::BTreeMap<String, u64> = Default::default();
    // Each type's step count, learned from its first case.
    let mut steps: Vec<u32> = vec![1; TYPES.len()];
    // The types take turns, so each finds the shape it needs (a split before a merge, two RGs
    // before a MergeRg) left by the ones before it.
    let mut step = 1;
    while step <= steps.iter().copied().max().unwrap_or(1) {
        for boundary in [Boundary::Dispatched, Boundary::Replied] {
            for kind in 0..5 {
                for (t, (name, build)) in TYPES.iter().enumerate() {
                    if step > steps[t]
                        || only.as_ref().is_some_and(|o| !o.iter().any(|x| x == name))
                    {
                        continue;
                    }
                    n += 1;
                    let Some((state, of, unanswered)) =
                        case(&cluster, n, name, *build, step, boundary, kind).await
                    else {
                        continue;
                    };
                    let fault = format!("{:?}", fault(kind, 0, 0))
                        .split('(')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let worst = longest_by_fault.entry(fault).or_default();
                    *worst = (*worst).max(unanswered);
                    steps[t] = steps[t].max(of);
                    let state = JobState::try_from(state).unwrap_or(JobState::Unspecified);
                    *outcomes.entry(format!("{name} {state:?}")).or_default() += 1;
                }
            }
        }
        step += 1;
    }
    let run: usize = outcomes.values().sum();
    println!(
        "{run} cases run of {n} tried (the others found no shape for their job); outcomes: {outcomes:#?}; longest without an answer by fault (ms): {longest_by_fault:?}"
    );
}
