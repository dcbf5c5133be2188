//! Heartbeat ingestion into the MC's live cluster view: 250,000 RGs with 4 regions each (1M
//! regions cached), reported by their leaders.
//!
//! In process: the memory the view takes per cached region (RSS growth while filling it) and
//! the steady-state rate of region heartbeats (same shapes, fresh stats). Over gRPC: a load
//! generator streams batches of 1,000 RG heartbeats to a real HeartbeatService on loopback
//! (both on the same 2 cores), and the rate counts what the service applied.
//!
//! Run: `cargo bench --bench heartbeat_ingest` (env HB_BENCH_RGS, default 250000).

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
    let api = HeartbeatApi::new(
        cluster.clone(),
        Arc::new(MemoryStore::default()),
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
    let mut client = loop {
        if let Ok(c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(HeartbeatServiceClient::new)
        {
            break c;
        }
    };
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
    let batches = |round: u64| -> Vec<RgHeartbeatBatch> {
        (1..=rgs)
            .collect::<Vec<_>>()
            .chunks(1_000)
            .map(|chunk| RgHeartbeatBatch {
                store_id: 1,
                heartbeats: chunk
                    .iter()
                    .map(|rg| RgHeartbeat {
                        leader_store_id: 1,
                        ..heartbeat(*rg, round)
                    })
                    .collect(),
                sent_unix_ms: 0,
            })
            .collect()
    };
    // Fill the view (and persist every shape once), then measure the steady state.
    let fill = batches(0);
    client.rg_heartbeat(tokio_stream::iter(fill)).await.unwrap();
    let steady = batches(1);
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
    // Heartbeats are built outside the measured loops.
    let round0: Vec<RgHeartbeat> = (1..=rgs).map(|rg| heartbeat(rg, 0)).collect();
    let before = rss_bytes();
    for hb in &round0 {
        cluster.rg_heartbeat(hb.leader_store_id, hb, 1).unwrap();
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
    println!(
        "over gRPC: {rate:.0} region heartbeats/s ({} RG heartbeats/s; one client stream, batches of 1,000 RGs, server and generator on the same 2 cores)",
        (rate / 4.0) as u64
    );
}

/// The MC's front door would name the caller; this bench serves HeartbeatApi without it.
#[allow(clippy::result_large_err)]
fn unchecked(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.extensions_mut()
        .insert(mc::server::auth::Caller::Unchecked);
    Ok(r)
}
