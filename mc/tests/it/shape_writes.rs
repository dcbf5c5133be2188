//! RG heartbeats against a real HeartbeatService over gRPC: the catalog is written only when
//! an RG's shape changed, in one commit per batch, and a new leader restored from the catalog
//! writes nothing for RGs whose shape did not change while no leader listened.

use std::sync::Arc;

use mc::api::heartbeat::HeartbeatApi;
use mc::catalog::memory::MemoryStore;
use mc::clock::SystemClock;
use mc::cluster::{LiveCluster, LivenessConfig, rgs};
use proto::v1::heartbeat_service_client::HeartbeatServiceClient;
use proto::v1::heartbeat_service_server::HeartbeatServiceServer;
use proto::v1::*;

fn heartbeat(rg: u64, leader: u64, term: u64, applied: u64, written: u64) -> RgHeartbeat {
    RgHeartbeat {
        rg_id: rg,
        leader_store_id: leader,
        term,
        conf_ver: 1,
        applied_index: applied,
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
                    size_bytes: (1 << 20) + written,
                    keys: 1_000 + written,
                    write_bytes: written,
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// The shape the jobs made of `rg`, not yet reported by a leader.
fn made(rg: u64) -> rgs::RgRecord {
    let regions: Vec<mc::cluster::RegionInfo> = (0..4)
        .map(|r| {
            let id = rg * 4 + r;
            mc::cluster::RegionInfo {
                id,
                rg,
                object: rg,
                start: id.to_be_bytes().to_vec().into(),
                end: (id + 1).to_be_bytes().to_vec().into(),
                version: 1,
                size_bytes: 0,
                keys: 0,
            }
        })
        .collect();
    rgs::RgRecord {
        schema: rgs::SCHEMA_VERSION,
        rg: mc::cluster::RgInfo {
            id: rg,
            members: (1..=3).map(|s| (s, mc::cluster::Role::Voter)).collect(),
            regions: regions.iter().map(|r| r.id).collect(),
            conf_ver: 1,
            ..Default::default()
        },
        regions,
    }
}

#[allow(clippy::result_large_err)]
fn unchecked(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.extensions_mut().insert(mc::api::auth::Caller::Unchecked);
    Ok(r)
}

/// A HeartbeatService over `cluster` and `catalog` on loopback, and a client of it.
async fn serve(
    cluster: Arc<LiveCluster>,
    catalog: Arc<MemoryStore>,
    term: u64,
) -> HeartbeatServiceClient<tonic::transport::Channel> {
    let api = HeartbeatApi::new(
        cluster,
        catalog,
        SystemClock,
        HeartbeatIntervals::default(),
        term,
        0x5ea,
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
    store_node::security::pki::admin_connect(format!("http://{addr}"))
        .await
        .map(HeartbeatServiceClient::new)
        .unwrap()
}

/// The heartbeats in one stream, a batch per leader store (a store reports the RGs it leads).
async fn send(
    client: &mut HeartbeatServiceClient<tonic::transport::Channel>,
    hbs: Vec<RgHeartbeat>,
) {
    let mut by_leader: std::collections::BTreeMap<u64, Vec<RgHeartbeat>> = Default::default();
    for hb in hbs {
        by_leader.entry(hb.leader_store_id).or_default().push(hb);
    }
    let batches: Vec<RgHeartbeatBatch> = by_leader
        .into_iter()
        .map(|(store_id, heartbeats)| RgHeartbeatBatch {
            store_id,
            heartbeats,
            sent_unix_ms: 0,
        })
        .collect();
    let n = batches.len() as u64;
    let reply = client
        .rg_heartbeat(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.batches, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rg_heartbeats_write_changed_shapes_once_per_batch_and_a_new_leader_writes_none_unchanged()
{
    let catalog = Arc::new(MemoryStore::default());
    let cluster = Arc::new(LiveCluster::new(LivenessConfig::default()));
    let mut client = serve(cluster.clone(), catalog.clone(), 1).await;
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
    let base = catalog.writes();
    let writes = || catalog.writes() - base;
    let rgs_: Vec<u64> = (1..=10).collect();

    // Ten RGs the jobs made; their leaders' first reports (who leads, in what term) in one
    // batch: one commit.
    for rg in &rgs_ {
        cluster.restore_rg(made(*rg));
    }
    send(
        &mut client,
        rgs_.iter().map(|rg| heartbeat(*rg, 1, 5, 10, 0)).collect(),
    )
    .await;
    assert_eq!(writes(), 1, "ten new shapes, one batch");

    // Writes only: sizes, key counts, traffic and applied indexes moved. Nothing to write.
    send(
        &mut client,
        rgs_.iter().map(|rg| heartbeat(*rg, 1, 5, 99, 7)).collect(),
    )
    .await;
    assert_eq!(
        writes(),
        1,
        "a heartbeat that changed no shape wrote the catalog"
    );

    // RG 3's leader moved to store 2: one write of one shape.
    let moved = |rg: u64| {
        if rg == 3 {
            heartbeat(rg, 2, 6, 120, 9)
        } else {
            heartbeat(rg, 1, 5, 120, 9)
        }
    };
    send(&mut client, rgs_.iter().map(|rg| moved(*rg)).collect()).await;
    assert_eq!(writes(), 2);
    let stored = rgs::load(&*catalog).unwrap();
    assert_eq!(stored.len(), 10);
    let rg3 = stored.iter().find(|r| r.rg.id == 3).unwrap();
    assert_eq!((rg3.rg.leader, rg3.rg.term), (Some(2), 6));

    // A new leader restores the view from the catalog; every RG's first report in its term
    // has the shape the catalog holds: nothing is written.
    let next = Arc::new(LiveCluster::new(LivenessConfig::default()));
    for store in cluster.view().stores.values() {
        next.restore(store.clone(), 0);
    }
    for record in rgs::load(&*catalog).unwrap() {
        next.restore_rg(record);
    }
    let mut client = serve(next.clone(), catalog.clone(), 2).await;
    send(&mut client, rgs_.iter().map(|rg| moved(*rg)).collect()).await;
    assert_eq!(writes(), 2, "the new leader rewrote unchanged shapes");
    assert!(
        next.rg_heard(3).is_some(),
        "the new leader took the reports in"
    );

    // A shape that changed while no leader listened is written once.
    let changed = |rg: u64| {
        if rg == 7 {
            heartbeat(rg, 3, 7, 130, 9)
        } else {
            moved(rg)
        }
    };
    send(&mut client, rgs_.iter().map(|rg| changed(*rg)).collect()).await;
    assert_eq!(writes(), 3);
    let rg7 = rgs::load(&*catalog)
        .unwrap()
        .into_iter()
        .find(|r| r.rg.id == 7)
        .unwrap();
    assert_eq!(rg7.rg.leader, Some(3));

    // A job's write of RG 7's shape committed after that heartbeat's: what the catalog holds
    // is no longer known, and the next heartbeat writes the view's shape again.
    let job_write = mc::cluster::ShapeChanges {
        put: vec![rg7],
        deleted: vec![],
    };
    mc::cluster::ViewSource::shapes_committed(&*next, &job_write);
    send(&mut client, rgs_.iter().map(|rg| changed(*rg)).collect()).await;
    assert_eq!(writes(), 4);
}
