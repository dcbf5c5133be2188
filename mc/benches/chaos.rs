//! A seeded chaos run against real processes: one MC and five stores, the schedulers on, jobs
//! submitted at random, and random kill -9s of the MC and of stores, SIGSTOPs and cuts of the
//! MC from its stores, for `CHAOS_SECS` (default 300) — while a client writes and reads
//! through the routes. Each round heals the cluster, waits for the schedulers to settle it and
//! checks the writes; the run prints what it did and what held, and fails if anything broke.
//!
//! `cargo build -p store-node && cargo bench -p mc --bench chaos --profile dev`
//! (`CHAOS_SEED`, `CHAOS_SECS` to vary).

#[path = "../tests/it/common.rs"]
mod common;
// The matrix's triggers are not used here: faults land at random moments instead.
#[path = "../tests/it/fault/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../tests/it/fault/linearizable.rs"]
#[allow(dead_code)]
mod linearizable;
#[path = "../tests/it/fault/shape.rs"]
#[allow(dead_code)]
mod shape;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::{Cluster, Fault, Writer, settled};
use linearizable::{Kind, Op};
use proto::v1::*;
use shape::{Shape, TABLE, TYPES, migrate};

const KEYS: u32 = 32;

/// The longest the client may go without an answer, whatever the faults (the fault matrix's
/// bound, at the same Raft timing).
const UNANSWERED_BOUND_MS: u64 = 5_000;

/// SplitMix64: the run's every choice comes from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Keys whose acknowledged last write the final read does not show (it shows nothing, or a
/// value written before that write began).
fn lost_writes(history: &[Op]) -> usize {
    let mut by_key: BTreeMap<&[u8], Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut lost = 0;
    for ops in by_key.values() {
        let Some(last) = ops
            .iter()
            .filter(|o| matches!(o.kind, Kind::Put(_)) && o.ret.is_some())
            .max_by_key(|o| o.ret)
        else {
            continue;
        };
        let Some(Kind::Get(seen)) = ops
            .iter()
            .filter(|o| matches!(o.kind, Kind::Get(_)))
            .max_by_key(|o| o.call)
            .map(|o| &o.kind)
        else {
            continue;
        };
        let shown = seen.as_ref().is_some_and(|v| {
            ops.iter().any(|o| match &o.kind {
                Kind::Put(p) => p == v && (o.ret.is_none() || o.ret >= Some(last.call)),
                Kind::Get(_) => false,
            })
        });
        lost += usize::from(!shown);
    }
    lost
}

/// A job of a random type against the table's shape now; a type the shape does not allow
/// (no second region to merge, no second RG on the same stores) gives way to a migration.
fn random_job(rng: &mut Rng, shape: &Shape) -> Option<(job_spec::Spec, &'static str)> {
    let (name, build) = TYPES[rng.below(TYPES.len() as u64) as usize];
    match build(shape) {
        Some((spec, _, _)) => Some((spec, name)),
        None => migrate(shape).map(|(spec, _, _)| (spec, "MigrateReplica")),
    }
}

fn main() {
    let env = |k: &str, default: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (seed, secs) = (env("CHAOS_SEED", 1), env("CHAOS_SECS", 300));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(seed, secs));
}

async fn run(seed: u64, secs: u64) {
    let mut rng = Rng(seed);
    let cluster = Cluster::start(5).await;
    let mut meta = cluster.meta().await;
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    let table = meta
        .create_table(CreateTableRequest {
            request_id: "t".into(),
            database: Some(ObjectRef {
                target: Some(object_ref::Target::Path("app".into())),
            }),
            name: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let start_key = table.table.unwrap().key_range.unwrap().start;
    let until = Instant::now() + Duration::from_secs(secs);
    let (mut rounds, mut acked, mut lost, mut longest, mut ops) = (0u64, 0, 0, 0, 0);
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    // Per fault kind, the longest stretch without an answer that overlapped one of its faults.
    let mut unanswered: BTreeMap<&str, u64> = BTreeMap::new();
    let mut submitted: BTreeMap<&str, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    while Instant::now() < until {
        rounds += 1;
        let mut base = start_key.clone();
        base.extend_from_slice(format!("r{rounds:05}-").as_bytes());
        let writer = Writer::start(
            cluster.mc_addr(),
            TABLE.into(),
            base.clone(),
            KEYS,
            rng.next(),
        );
        // A few jobs and as many faults, at random moments of the round.
        let stores = cluster.store_ids();
        let mut injected: Vec<(&str, Instant)> = Vec::new();
        for _ in 0..=rng.below(3) {
            let mut split_key = base.clone();
            split_key.extend_from_slice(format!("k{:04}", rng.below(KEYS as u64)).as_bytes());
            let shape = Shape::read(&cluster, split_key).await;
            if let Some((spec, name)) = random_job(&mut rng, &shape) {
                let mut c = cluster.jobs().await;
                let request = SubmitJobRequest {
                    spec: Some(JobSpec { spec: Some(spec) }),
                    ..Default::default()
                };
                if c.submit_job(request).await.is_ok() {
                    *submitted.entry(name).or_default() += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.below(1_500))).await;
            let store = stores[rng.below(stores.len() as u64) as usize];
            let (fault, name) = match rng.below(4) {
                0 => (Fault::KillMc, "kill -9 MC"),
                1 => (Fault::KillStore(store), "kill -9 store"),
                2 => (Fault::StopStore(store), "SIGSTOP store"),
                _ => (Fault::CutMc, "cut MC from stores"),
            };
            injected.push((name, Instant::now()));
            cluster.inject_now(fault).await;
            *faults.entry(name).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(500 + rng.below(2_000))).await;
        }
        tokio::time::sleep(Duration::from_millis(harness::STOP_MS)).await;
        cluster.heal().await;
        if let Err(e) = settled(&cluster, TABLE).await {
            violations.push(format!("round {rounds}: {e}"));
        }
        longest = longest.max(writer.longest_unanswered_ms());
        // A fault is in effect from its injection until the next one (the last: until healed).
        let healed = Instant::now();
        for (i, (name, at)) in injected.iter().enumerate() {
            let until = injected.get(i + 1).map_or(healed, |(_, next)| *next);
            let worst = unanswered.entry(name).or_default();
            *worst = (*worst).max(writer.longest_unanswered_between_ms(*at, until));
        }
        let (history, n) = writer.finish(&cluster.mc_addr(), TABLE, &base, KEYS).await;
        acked += n;
        ops += history.len();
        lost += lost_writes(&history);
        if let Err((key, _)) = linearizable::check(&history) {
            violations.push(format!(
                "round {rounds}: key {:?} not linearizable",
                String::from_utf8_lossy(&key)
            ));
        }
        println!(
            "round {rounds}: {n} acknowledged writes, {} operations",
            history.len()
        );
    }
    // Every job ended (none stuck), by outcome.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (stuck, outcomes) = loop {
        let mut c = cluster.jobs().await;
        // Every page (a page holds at most 1,000 jobs).
        let (mut jobs, mut token) = (Vec::new(), String::new());
        loop {
            let page = c
                .list_jobs(ListJobsRequest {
                    page: Some(PageRequest {
                        limit: 1_000,
                        page_token: token,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            jobs.extend(page.jobs);
            token = page.page.map(|p| p.next_page_token).unwrap_or_default();
            if token.is_empty() {
                break;
            }
        }
        let is_final = |s: i32| {
            [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
                .iter()
                .any(|f| *f as i32 == s)
        };
        let open: Vec<u64> = jobs
            .iter()
            .filter(|j| !is_final(j.state))
            .map(|j| j.id)
            .collect();
        if open.is_empty() || Instant::now() > deadline {
            let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
            for j in &jobs {
                *outcomes.entry(format!("{:?}", j.state())).or_default() += 1;
            }
            break (open, outcomes);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let off_target = match settled(&cluster, TABLE).await {
        Ok(()) => 0,
        Err(e) => e.split("; ").filter(|p| p.starts_with("RG ")).count(),
    };
    println!("chaos seed={seed} secs={secs}");
    println!("rounds: {rounds}");
    println!("faults: {faults:?}");
    println!("jobs submitted by the run: {submitted:?}");
    println!("jobs by outcome (the run's and the schedulers'): {outcomes:?}");
    println!("acknowledged writes: {acked} ({ops} operations checked)");
    println!("lost writes: {lost}");
    println!("stuck jobs: {}", stuck.len());
    println!("RGs off target: {off_target}");
    println!("longest stretch without an answered client operation: {longest} ms");
    println!("longest stretch without an answer, by the fault in effect (ms): {unanswered:?}");
    println!("violations: {violations:?}");
    assert!(lost == 0 && stuck.is_empty() && off_target == 0 && violations.is_empty());
    assert!(
        longest <= UNANSWERED_BOUND_MS,
        "the client went {longest} ms without an answer (bound {UNANSWERED_BOUND_MS} ms)"
    );
}
