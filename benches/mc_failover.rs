//! MC failover: three `mc serve` processes (this binary re-executed) form one group; four
//! store nodes run in this process. Each round migrates a replica of an RG holding ~19 MiB
//! and SIGKILLs the MC leader while the catch-up step is in flight, then measures the time
//! from the kill to the first step the new leader dispatches (its execution record). The
//! killed MC is restarted and rejoins before the next round. Goal: at most 3 s.
//!
//! Run: `cargo bench --bench mc_failover` (env FAILOVER_ROUNDS, default 5).

mod support;

use std::time::{Duration, Instant};

use mc::server::{ServeConfig, parse_peers, serve};
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;
use store_node::client::put_following_leader;
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

const CHILD: &str = "MC_FAILOVER_CHILD";

/// `ID|ADDR|DIR|PEERS`: serve one MC until killed.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let (id, addr, dir, peers) = (parts[0], parts[1], parts[2], parts[3]);
    let peers: Vec<String> = peers.split(',').map(str::to_string).collect();
    let listen = addr.parse().unwrap();
    let config = ServeConfig {
        id: id.parse().unwrap(),
        peers: parse_peers(&peers).unwrap(),
        store_heartbeat_ms: 50,
        rg_heartbeat_ms: 50,
        security: store_node::security::pki::TestPki::shared()
            .security(&store_node::security::Identity::Mc(id.parse().unwrap())),
        ..ServeConfig::single(listen, dir.into())
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        serve(config, listener, std::future::pending())
            .await
            .unwrap();
    });
}

/// Killed when dropped, so a failed run leaves no MC behind.
type McChild = testkit::Killed;

fn spawn_mc(id: u64, group: &[(u64, String)], dir: &std::path::Path) -> McChild {
    let peers: Vec<String> = group.iter().map(|(i, a)| format!("{i}={a}")).collect();
    let spec = format!(
        "{id}|{}|{}|{}",
        group[id as usize - 1].1,
        dir.join(format!("mc{id}")).display(),
        peers.join(",")
    );
    testkit::Killed(support::spawn_self(CHILD, spec))
}

async fn members(addr: &str) -> GetMembersResponse {
    loop {
        if let Ok(mut c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(ClusterServiceClient::new)
            && let Ok(r) = c.get_members(GetMembersRequest {}).await
            && r.get_ref().leader_id != 0
        {
            return r.into_inner();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn submit(addr: &str, spec: job_spec::Spec, request_id: String) -> Job {
    loop {
        let mut c = match store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(JobServiceClient::new)
        {
            Ok(c) => c,
            Err(_) => continue,
        };
        let req = SubmitJobRequest {
            request_id: request_id.clone(),
            spec: Some(JobSpec {
                spec: Some(spec.clone()),
            }),
            ..Default::default()
        };
        match c.submit_job(req).await {
            Ok(r) => return r.into_inner().job.unwrap(),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => panic!("submit: {s:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn job(addr: &str, id: u64) -> Option<(Job, Vec<ExecutionRecord>)> {
    let mut c = store_node::security::pki::admin_connect(format!("http://{addr}"))
        .await
        .map(JobServiceClient::new)
        .ok()?;
    let r = c
        .get_job(GetJobRequest {
            job_id: id,
            include_records: true,
        })
        .await
        .ok()?
        .into_inner();
    Some((r.job?, r.records))
}

async fn wait_done(addr: &str, id: u64) -> Vec<ExecutionRecord> {
    loop {
        if let Some((j, records)) = job(addr, id).await {
            assert_ne!(j.state, JobState::Failed as i32, "{:?}", j.last_error);
            if j.state == JobState::Succeeded as i32 {
                return records;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let rounds: usize = std::env::var("FAILOVER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let group: Vec<(u64, String)> = (1..=3)
            .map(|id| (id, testkit::free_addr()))
            .collect();
        let addrs: Vec<String> = group.iter().map(|(_, a)| a.clone()).collect();
        let mut mcs: Vec<McChild> = (1..=3).map(|id| spawn_mc(id, &group, dir.path())).collect();
        members(&addrs[0]).await;
        let raft = RaftTuning {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            ..Default::default()
        };
        let mut stores = Vec::new();
        for id in 1..=4 {
            stores.push(
                StoreNode::start_on_loopback(
                    id,
                    dir.path(),
                    raft.clone(),
                    addrs.clone(),
                    Duration::from_millis(50),
                )
                .await
                .unwrap(),
            );
        }
        let store_addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();
        let rg = submit(
            &addrs[0],
            job_spec::Spec::CreateRg(CreateRgSpec {
                store_ids: vec![1, 2, 3],
                leader_store_id: 1,
                ..Default::default()
            }),
            "rg".into(),
        )
        .await;
        wait_done(&addrs[0], rg.id).await;
        let region = submit(
            &addrs[0],
            job_spec::Spec::CreateRegion(CreateRegionSpec {
                rg_id: 1,
                object_id: 7,
                range: Some(KeyRange {
                    start: b"a".to_vec(),
                    end: b"z".to_vec(),
                }),
                region_id: 0,
            }),
            "region".into(),
        )
        .await;
        wait_done(&addrs[0], region.id).await;
        for i in 0..600u64 {
            put_following_leader(
                &store_addrs,
                1,
                1,
                format!("k{i:08}").into_bytes(),
                vec![i as u8; 32 << 10],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        }

        let mut samples = Vec::new();
        let (mut from, mut to) = (1u64, 4u64);
        let mut round = 0;
        while samples.len() < rounds {
            round += 1;
            let before = members(&addrs[0]).await;
            let leader = before.leader_id;
            let migrate = submit(
                &before.leader_address,
                job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
                    rg_id: 1,
                    from_store_id: from,
                    to_store_id: to,
                }),
                format!("migrate-{round}"),
            )
            .await;
            // Kill while the catch-up (step 2) is in flight.
            let started = Instant::now();
            loop {
                if let Some((j, _)) = job(&before.leader_address, migrate.id).await
                    && (j.current_step >= 2 || j.state == JobState::Succeeded as i32)
                {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(30));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let killed_at = now_ms();
            let victim = &mut mcs[leader as usize - 1].0;
            victim.kill().unwrap();
            victim.wait().unwrap();
            let survivor = group.iter().find(|(id, _)| *id != leader).unwrap().1.clone();
            let records = wait_done(&survivor, migrate.id).await;
            let after = members(&survivor).await;
            let first = records
                .iter()
                .filter(|r| r.mc_term == after.term)
                .map(|r| r.dispatched_unix_ms)
                .min();
            match first {
                Some(at) => {
                    let d = Duration::from_millis(at.saturating_sub(killed_at));
                    println!(
                        "round {round}: MC {leader} killed, MC {} (term {}) dispatched after {}",
                        after.leader_id,
                        after.term,
                        support::ms(d)
                    );
                    samples.push(d);
                }
                None => println!("round {round}: the job finished before the kill; not counted"),
            }
            mcs[leader as usize - 1] = spawn_mc(leader, &group, dir.path());
            // The restarted MC must have rejoined before the next kill, or the group would
            // lose its quorum.
            let deadline = Instant::now() + Duration::from_secs(30);
            while members(&group[leader as usize - 1].1).await.term != after.term {
                assert!(Instant::now() < deadline, "MC {leader} did not rejoin");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            std::mem::swap(&mut from, &mut to);
        }
        samples.sort();
        println!(
            "mc failover (kill -9 of the leader -> first step dispatched by the new leader), {} rounds: p50 {}, max {}",
            samples.len(),
            support::ms(support::percentile(&samples, 0.5)),
            support::ms(*samples.last().unwrap())
        );
        for s in stores {
            s.stop().await;
        }
        drop(mcs);
    });
}
