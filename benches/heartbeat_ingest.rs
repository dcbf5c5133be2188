//! Heartbeat ingestion into the MC's live cluster view: 250,000 RGs with 4 regions each (1M
//! regions cached), reported by their leaders and checked against the shapes the jobs made
//! (every report is taken: members, regions and ranges agree).
//!
//! In process: the memory the view takes per cached region (RSS growth while filling it) and
//! the steady-state rate of region heartbeats (same shapes, fresh stats). Over gRPC: a load
//! generator streams batches of 1,000 RG heartbeats to a real HeartbeatService on loopback
//! (both on the same 2 cores), and the rate counts what the service applied.
//!
//! After a failover: a new leader restores the view from a durable catalog (a one-member Raft
//! catalog on RocksDB) holding every RG's shape, takes in the first heartbeat of every RG of
//! its term over gRPC (writing the shapes that changed while no leader listened, in commits of
//! up to 128 KiB: 1% of the RGs, then all of them), and runs its first full scheduling round.
//!
//! Run: `cargo bench --bench heartbeat_ingest` (env HB_BENCH_RGS, default 250000).

mod support;

use std::sync::Arc;
use std::time::Instant;

use mc::api::heartbeat::HeartbeatApi;
use mc::catalog::memory::MemoryStore;
use mc::clock::SystemClock;
use mc::cluster::{LiveCluster, LivenessConfig};
use proto::v1::heartbeat_service_client::HeartbeatServiceClient;
use proto::v1::heartbeat_service_server::HeartbeatServiceServer;
use proto::v1::{
    HeartbeatIntervals, KeyRange, RegionEpoch, RegionStats, RegisterStoreRequest, Replica,
    ReplicaRole, RgHeartbeat, RgHeartbeatBatch,
};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn heartbeat(rg: u64, round: u64) -> RgHeartbeat {
    RgHeartbeat {
        rg_id: rg,
        leader_store_id: 1 + rg % 3,
        term: 1,
        applied_index: round,
        commit_index: round,
        conf_ver: 1,
        members: (1..=3)
            .map(|s| Replica {
                store_id: s,
                role: ReplicaRole::Voter as i32,
                offline: false,
            })
            .collect(),
        regions: (0..4)
            .map(|r| {
                let id = rg * 4 + r;
                RegionStats {
                    region_id: id,
                    object_id: rg,
                    range: Some(KeyRange {
                        start: id.to_be_bytes().to_vec(),
                        end: (id + 1).to_be_bytes().to_vec(),
                    }),
                    epoch: Some(RegionEpoch {
                        version: 1,
                        conf_ver: 1,
                    }),
                    size_bytes: 64 << 20,
                    keys: 100_000 + round,
                    read_bytes: round,
                    write_bytes: round,
                    read_ops: round,
                    write_ops: round,
                    split_key: vec![],
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// Streams every RG's heartbeat, in batches of 1,000 per store, to a HeartbeatService on
/// loopback; returns region heartbeats applied per second.
async fn over_grpc(rgs: u64) -> f64 {
    let cluster = Arc::new(LiveCluster::new(LivenessConfig::default()));
    let mut client = serve(cluster.clone(), Arc::new(MemoryStore::default())).await;
    register(&mut client).await;
    for rg in 1..=rgs {
        cluster.restore_rg(support::made_rg(rg, None, 0));
    }
    // Fill the view (and persist every shape once), then measure the steady state.
    let fill = batches(rgs, 0, 0, 0);
    client.rg_heartbeat(tokio_stream::iter(fill)).await.unwrap();
    let steady = batches(rgs, 1, 0, 0);
    let started = Instant::now();
    let reply = client
        .rg_heartbeat(tokio_stream::iter(steady))
        .await
        .unwrap()
        .into_inner();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(reply.heartbeats, rgs);
    (rgs * 4) as f64 / secs
}

/// Every RG's heartbeat in batches of 1,000 from its leader's store; `moved_per_mille` in a
/// thousand RGs have a leader `moves` stores on and a term `moves` newer than at round 0.
fn batches(rgs: u64, round: u64, moved_per_mille: u64, moves: u64) -> Vec<RgHeartbeatBatch> {
    let mut by_leader: std::collections::BTreeMap<u64, Vec<RgHeartbeat>> = Default::default();
    for rg in 1..=rgs {
        let mut hb = heartbeat(rg, round);
        if rg % 1_000 < moved_per_mille {
            hb.leader_store_id = 1 + (hb.leader_store_id - 1 + moves) % 3;
            hb.term += moves;
        }
        by_leader.entry(hb.leader_store_id).or_default().push(hb);
    }
    by_leader
        .into_iter()
        .flat_map(|(store_id, hbs)| {
            hbs.chunks(1_000)
                .map(|chunk| RgHeartbeatBatch {
                    store_id,
                    heartbeats: chunk.to_vec(),
                    sent_unix_ms: 0,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn register(client: &mut HeartbeatServiceClient<tonic::transport::Channel>) {
    for s in 1..=3 {
        client
            .register_store(RegisterStoreRequest {
                store_id: s,
                address: format!("127.0.0.1:{}", 7000 + s),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// A HeartbeatService over `cluster` and `catalog` on loopback, and a client of it.
async fn serve<S: mc::catalog::CatalogStore>(
    cluster: Arc<LiveCluster>,
    catalog: Arc<S>,
) -> HeartbeatServiceClient<tonic::transport::Channel> {
    let api = HeartbeatApi::new(
        cluster.clone(),
        catalog,
        SystemClock,
        HeartbeatIntervals::default(),
        1,
        0x7e57,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        store_node::security::pki::TestPki::shared()
            .security(&store_node::security::Identity::Mc(1))
            .server()
            .unwrap()
            .add_service(HeartbeatServiceServer::with_interceptor(api, unchecked))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    loop {
        if let Ok(c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(HeartbeatServiceClient::new)
        {
            return c;
        }
    }
}

/// A new leader after a failover: restore from the durable catalog, the first heartbeat of
/// every RG in its term, the first full round. Prints what each took.
async fn failover(rgs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = mc::catalog::raft::RaftCatalog::open_single(dir.path())
        .await
        .unwrap();
    // The old leader's term: every shape in the catalog.
    {
        let old = Arc::new(LiveCluster::new(LivenessConfig::default()));
        let mut client = serve(old.clone(), catalog.clone()).await;
        register(&mut client).await;
        for rg in 1..=rgs {
            old.restore_rg(support::made_rg(rg, None, 0));
        }
        client
            .rg_heartbeat(tokio_stream::iter(batches(rgs, 0, 0, 0)))
            .await
            .unwrap();
    }
    // Each new leader sees other leaders than the catalog holds: 1% of the RGs, then all.
    for (moves, moved, what) in [
        (1, 10, "1% of shapes changed"),
        (2, 1_000, "every shape changed"),
    ] {
        let started = Instant::now();
        let cluster = Arc::new(LiveCluster::new(LivenessConfig::default()));
        for s in 1..=3 {
            cluster.restore(
                mc::cluster::StoreInfo {
                    id: s,
                    address: format!("127.0.0.1:{}", 7000 + s),
                    state: mc::cluster::StoreState::Up,
                    labels: Default::default(),
                    capacity_bytes: 0,
                },
                0,
            );
        }
        let records = mc::cluster::rgs::load(&*catalog).unwrap();
        for record in records {
            cluster.restore_rg(record);
        }
        let restored = started.elapsed();
        let mut client = serve(cluster.clone(), catalog.clone()).await;
        let started = Instant::now();
        let reply = client
            .rg_heartbeat(tokio_stream::iter(batches(rgs, 0, moved, moves)))
            .await
            .unwrap()
            .into_inner();
        let heard = started.elapsed();
        assert_eq!(reply.heartbeats, rgs);
        let changed = mc::cluster::rgs::load(&*catalog)
            .unwrap()
            .iter()
            .filter(|r| r.rg.term == 1 + moves)
            .count();
        assert_eq!(
            changed as u64,
            rgs * moved / 1_000,
            "every changed shape written"
        );
        let config = mc::schedule::ScheduleConfig::default();
        let objects = mc::schedule::ObjectPlacement::default();
        cluster.watch(config.watch());
        cluster.affinity(&objects.affinity);
        let started = Instant::now();
        let planned = cluster.read_with_heard(|view, _| {
            mc::schedule::round::Round::new(config.clone()).plan(
                view,
                &objects,
                &Default::default(),
                &Default::default(),
                0,
            )
        });
        let round = started.elapsed();
        println!(
            "after a failover ({what}; {changed} RG shapes at the new term in the catalog): restore {} regions from the catalog {:.2} s; first heartbeat of every RG {:.2} s ({:.0} region heartbeats/s, changed shapes written durably in commits of up to 128 KiB); first full round {:.1} ms ({} decisions)",
            rgs * 4,
            restored.as_secs_f64(),
            heard.as_secs_f64(),
            (rgs * 4) as f64 / heard.as_secs_f64(),
            round.as_secs_f64() * 1e3,
            planned.len()
        );
    }
    catalog.shutdown().await;
}

fn main() {
    let rgs: u64 = std::env::var("HB_BENCH_RGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250_000);
    let cluster = LiveCluster::new(LivenessConfig::default());
    for s in 1..=3 {
        cluster
            .register(
                &RegisterStoreRequest {
                    store_id: s,
                    address: format!("127.0.0.1:{}", 7000 + s),
                    ..Default::default()
                },
                0,
            )
            .unwrap();
    }
    // Shapes and heartbeats are built outside the measured loops. The view holds what the
    // jobs made, filled in by the first heartbeat of every RG.
    let round0: Vec<RgHeartbeat> = (1..=rgs).map(|rg| heartbeat(rg, 0)).collect();
    let before = rss_bytes();
    for rg in 1..=rgs {
        cluster.restore_rg(support::made_rg(rg, None, 0));
    }
    for hb in &round0 {
        assert!(cluster.rg_heartbeat(hb.leader_store_id, hb, 1).unwrap());
    }
    let after = rss_bytes();
    drop(round0);
    let regions = rgs * 4;
    println!(
        "view with {regions} regions in {rgs} RGs: {} B per cached region (RSS +{} MiB)",
        (after.saturating_sub(before)) / regions,
        (after.saturating_sub(before)) >> 20
    );
    let round1: Vec<RgHeartbeat> = (1..=rgs).map(|rg| heartbeat(rg, 1)).collect();
    let started = Instant::now();
    for hb in &round1 {
        cluster.rg_heartbeat(hb.leader_store_id, hb, 2).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "steady state: {:.0} RG heartbeats/s, {:.0} region heartbeats/s (one thread, {regions} regions cached)",
        rgs as f64 / secs,
        regions as f64 / secs
    );
    drop(cluster);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rate = rt.block_on(over_grpc(rgs));
    rt.block_on(failover(rgs));
    println!(
        "over gRPC: {rate:.0} region heartbeats/s ({} RG heartbeats/s; one client stream, batches of 1,000 RGs, server and generator on the same 2 cores)",
        (rate / 4.0) as u64
    );
}

/// The MC's front door would name the caller; this bench serves HeartbeatApi without it.
#[allow(clippy::result_large_err)]
fn unchecked(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.extensions_mut().insert(mc::api::auth::Caller::Unchecked);
    Ok(r)
}
