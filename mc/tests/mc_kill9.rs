//! `mc serve` as a real process with four store nodes: CreateRg, CreateRegion and a
//! MigrateReplica submitted over gRPC while a client writes. The MC is killed with SIGKILL in
//! the middle of the migration and restarted on its data directory: the job completes, its
//! in-flight step was re-sent under the new term, every acknowledged write is on the new
//! replica, and the old store holds nothing of the RG.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;
use store_node::client::{BackgroundWriter, put_following_leader};
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

/// Killed when dropped, so a failing test leaves no MC behind.
struct McProcess(Child);

impl McProcess {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for McProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mc(addr: &str, dir: &std::path::Path) -> McProcess {
    McProcess(
        Command::new(env!("CARGO_BIN_EXE_mc"))
            .args([
                "serve",
                "--listen",
                addr,
                "--store-heartbeat-ms",
                "50",
                "--rg-heartbeat-ms",
                "50",
            ])
            .args([
                "--disconnected-after-ms",
                "5000",
                "--down-after-ms",
                "60000",
                "--data-dir",
            ])
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn mc"),
    )
}

async fn jobs(addr: &str) -> JobServiceClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = JobServiceClient::connect(format!("http://{addr}")).await {
            return c;
        }
        assert!(Instant::now() < deadline, "mc at {addr} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_store(id: u64, dir: &std::path::Path, mc: &str) -> StoreNode {
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    StoreNode::start_on_loopback(
        id,
        dir,
        raft,
        vec![mc.to_string()],
        Duration::from_millis(50),
    )
    .await
    .unwrap()
}

/// Submits until the MC's view knows enough to accept it (stores registered, RG reported).
async fn submit(addr: &str, spec: job_spec::Spec, request_id: &str) -> Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = jobs(addr).await;
        let req = SubmitJobRequest {
            request_id: request_id.into(),
            spec: Some(JobSpec {
                spec: Some(spec.clone()),
            }),
            ..Default::default()
        };
        match c.submit_job(req).await {
            Ok(r) => return r.into_inner().job.unwrap(),
            Err(s) if s.code() == tonic::Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(s) => panic!("submit failed: {s:?}"),
        }
    }
}

async fn wait_job(addr: &str, id: u64, until: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut c) = JobServiceClient::connect(format!("http://{addr}")).await
            && let Ok(r) = c
                .get_job(GetJobRequest {
                    job_id: id,
                    include_records: false,
                })
                .await
        {
            let job = r.into_inner().job.unwrap();
            if until(&job) {
                return job;
            }
            assert!(
                job.state != JobState::Failed as i32,
                "job {id} failed: {:?}",
                job.last_error
            );
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not get there in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A step re-sent after a crash or failover is answered from the store's step record, never
/// executed a second time.
fn assert_no_step_ran_twice(stores: &[StoreNode], job: u64) {
    for s in stores {
        for ((job_id, step), n) in s.store.steps_executed() {
            assert!(
                job_id != job || n == 1,
                "store {} ran step {step} of job {job} {n} times",
                s.store.id()
            );
        }
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

async fn put(addrs: &[String], i: u64) {
    put_following_leader(addrs, 1, 1, key(i), b"v".to_vec(), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_survives_kill_9_of_the_mc() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut mc = start_mc(&mc_addr, &dir.path().join("mc"));
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(start_store(id, dir.path(), &mc_addr).await);
    }
    let addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();

    let rg = submit(
        &mc_addr,
        job_spec::Spec::CreateRg(CreateRgSpec {
            store_ids: vec![1, 2, 3],
            leader_store_id: 1,
            ..Default::default()
        }),
        "rg",
    )
    .await;
    let Some(job_spec::Spec::CreateRg(created)) = rg.spec.as_ref().and_then(|s| s.spec.clone())
    else {
        panic!()
    };
    assert_eq!(created.rg_id, 1, "the allocated RG id is reported");
    wait_job(&mc_addr, rg.id, |j| j.state == JobState::Succeeded as i32).await;
    let range = KeyRange {
        start: b"a".to_vec(),
        end: b"z".to_vec(),
    };
    let region = submit(
        &mc_addr,
        job_spec::Spec::CreateRegion(CreateRegionSpec {
            rg_id: 1,
            object_id: 7,
            range: Some(range),
            region_id: 0,
        }),
        "region",
    )
    .await;
    wait_job(&mc_addr, region.id, |j| {
        j.state == JobState::Succeeded as i32
    })
    .await;
    for i in 0..200 {
        put(&addrs, i).await;
    }

    let writer = BackgroundWriter::start(addrs.clone(), 1, 1, 200, key, |_| b"v".to_vec());
    let migrate = submit(
        &mc_addr,
        job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 1,
            to_store_id: 4,
        }),
        "migrate",
    )
    .await;
    // Kill the MC once the migration is past AddLearner.
    wait_job(&mc_addr, migrate.id, |j| {
        j.current_step >= 3 || j.state == JobState::Succeeded as i32
    })
    .await;
    let killed_at_ms = now_ms();
    mc.kill().unwrap();
    mc.wait().unwrap();
    let mut mc = start_mc(&mc_addr, &dir.path().join("mc"));
    let done = wait_job(&mc_addr, migrate.id, |j| {
        j.state == JobState::Succeeded as i32
    })
    .await;
    let written = writer.stop().await;
    assert!(
        done.steps
            .iter()
            .all(|s| s.state == StepState::Succeeded as i32),
        "{:?}",
        done.steps
    );

    let mut c = jobs(&mc_addr).await;
    let records = c
        .get_job(GetJobRequest {
            job_id: migrate.id,
            include_records: true,
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        records.iter().any(|r| r.dispatched_unix_ms >= killed_at_ms),
        "the restarted MC dispatched the rest of the job: {records:?}"
    );
    assert_no_step_ran_twice(&stores, migrate.id);

    assert!(
        stores[0].store.replica(1).is_none(),
        "store 1 still hosts RG 1"
    );
    assert_eq!(
        stores[0].store.engine.count_range(b"a", b"z").unwrap().0,
        0,
        "store 1 still holds data"
    );
    let s4 = &stores[3].store;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s4.engine.count_range(b"a", b"z").unwrap().0 < written {
        assert!(
            Instant::now() < deadline,
            "store 4 misses acknowledged writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mc.kill().unwrap();
    mc.wait().unwrap();
    for s in stores {
        s.stop().await;
    }
}
