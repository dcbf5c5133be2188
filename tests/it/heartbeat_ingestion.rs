//! Real store nodes report to the MC's HeartbeatService over gRPC: the live view learns the
//! stores (address, labels) and the RG (members, leader, regions); a store that stops goes
//! Disconnected, then Down, and comes back Up when it returns. The RG's shape is the MC's;
//! its leader's reports say who leads and how large it is.

use crate::common;

use common::store;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mc::api::heartbeat::HeartbeatApi;
use mc::clock::{Clock, SystemClock};
use mc::cluster::{LiveCluster, LivenessConfig, StoreState};
use proto::v1::heartbeat_service_server::HeartbeatServiceServer;
use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::*;

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_view_follows_real_stores() {
    let cluster = Arc::new(LiveCluster::new(LivenessConfig {
        disconnected_after_ms: 500,
        down_after_ms: 1_500,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mc = listener.local_addr().unwrap().to_string();
    let catalog = Arc::new(mc::catalog::memory::MemoryStore::default());
    let api = HeartbeatApi::new(
        cluster.clone(),
        catalog.clone(),
        SystemClock,
        HeartbeatIntervals {
            store_heartbeat_ms: 50,
            rg_heartbeat_ms: 50,
        },
        1,
        0x7e57,
    );
    tokio::spawn(
        store_node::security::pki::TestPki::shared()
            .security(&store_node::security::Identity::Mc(1))
            .server()
            .unwrap()
            .add_service(HeartbeatServiceServer::with_interceptor(api, unchecked))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let s1 = store(1, dir.path(), &mc).await;
    let s2 = store(2, dir.path(), &mc).await;
    until("both stores registered", || {
        cluster.view().stores.len() == 2
    })
    .await;
    let view = cluster.view();
    assert_eq!(
        view.store(2)
            .unwrap()
            .labels
            .get("zone")
            .map(String::as_str),
        Some("z2")
    );
    assert_eq!(view.store(1).unwrap().address, s1.addr.to_string());

    // An RG on both stores: its leader reports it.
    let members: Vec<ReplicaPeer> = [&s1, &s2]
        .iter()
        .map(|n| ReplicaPeer {
            store_id: n.store.id(),
            address: n.addr.to_string(),
            role: ReplicaRole::Voter as i32,
        })
        .collect();
    // The MC knows an RG's shape from the job that made it (here: as if a CreateRg job's
    // effect had put it in); its leader's reports fill in who leads and how large it is.
    let made = mc::cluster::rgs::RgRecord {
        schema: mc::cluster::rgs::SCHEMA_VERSION,
        rg: mc::cluster::RgInfo {
            id: 4,
            members: [&s1, &s2]
                .iter()
                .map(|n| (n.store.id(), mc::cluster::Role::Voter))
                .collect(),
            regions: [9].into_iter().collect(),
            ..Default::default()
        },
        regions: vec![mc::cluster::RegionInfo {
            id: 9,
            rg: 4,
            object: 3,
            start: b"a".to_vec().into(),
            end: b"b".to_vec().into(),
            version: 1,
            size_bytes: 0,
            keys: 0,
        }],
    };
    cluster.restore_rg(made);
    for n in [&s1, &s2] {
        let mut client = store_node::security::pki::mc_connect(format!("http://{}", n.addr))
            .await
            .map(StoreServiceClient::new)
            .unwrap();
        let create = CreateStep {
            campaign: false,
            bootstrap: true,
            members: members.clone(),
            regions: vec![RegionDescriptor {
                region_id: 9,
                object_id: 3,
                range: Some(KeyRange {
                    start: b"a".to_vec(),
                    end: b"b".to_vec(),
                }),
                epoch: Some(RegionEpoch {
                    version: 1,
                    conf_ver: 0,
                }),
            }],
        };
        let request = ExecuteStepRequest {
            envelope: Some(StepEnvelope {
                job_id: 1,
                step_seq: 1,
                attempt: 1,
                mc_term: 1,
                rg_id: 4,
                deadline_ms: 0,
            }),
            command: Some(StepCommand {
                step: Some(step_command::Step::Create(create)),
            }),
        };
        // As the MC of the stores' cluster (they adopted its id at registration).
        let mut request = tonic::Request::new(request);
        store_node::security::tag(&mut request, 0x7e57);
        client.execute_step(request).await.unwrap();
    }
    until("the RG and its region in the view", || {
        let v = cluster.view();
        v.rg(4).is_some_and(|rg| {
            rg.members.len() == 2 && rg.leader.is_some() && rg.regions.contains(&9) && rg.heard
        })
    })
    .await;
    assert_eq!(cluster.view().region(9).unwrap().object, 3);
    assert!(cluster.stats(1).is_some_and(|s| s.replica_count == 1));

    // The catalog holds the stores (what a new MC leader restores before any heartbeat) and
    // the RG's shape as last reported: a view rebuilt from it places RG 4 and region 9 as the
    // live one does.
    let restored = LiveCluster::new(LivenessConfig::default());
    for s in mc::cluster::stores::load(&*catalog).unwrap() {
        restored.restore(s, 0);
    }
    for rg in mc::cluster::rgs::load(&*catalog).unwrap() {
        restored.restore_rg(rg);
    }
    let (live, back) = (cluster.view(), restored.view());
    assert_eq!(back.stores.len(), 2);
    assert_eq!(
        back.store(1).unwrap().address,
        live.store(1).unwrap().address
    );
    // Restored as not heard from in the new term, without an applied index (not part of the
    // shape: it moves with every write); otherwise as the live view has it.
    assert!(!back.rg(4).unwrap().heard);
    assert_eq!(back.rg(4).unwrap().applied_index, 0);
    let restored_rg = mc::cluster::RgInfo {
        heard: true,
        applied_index: live.rg(4).unwrap().applied_index,
        ..back.rg(4).unwrap().clone()
    };
    assert_eq!(Some(&restored_rg), live.rg(4));
    assert_eq!(back.region(9).unwrap().start, b"a".to_vec());
    assert_eq!(back.region(9).unwrap().rg, 4);

    // Store 2 stops: Disconnected, then Down. Ticks are driven here, as the MC's timer would.
    s2.stop().await;
    let clock = SystemClock;
    until("store 2 disconnected", || {
        cluster.tick(clock.now_ms());
        cluster.view().store(2).unwrap().state == StoreState::Disconnected
    })
    .await;
    until("store 2 down", || {
        cluster.tick(clock.now_ms());
        cluster.view().store(2).unwrap().state == StoreState::Down
    })
    .await;
    assert_eq!(cluster.view().store(1).unwrap().state, StoreState::Up);

    // It returns with its data: Up again.
    let s2 = store(2, dir.path(), &mc).await;
    until("store 2 up again", || {
        cluster.tick(clock.now_ms());
        cluster.view().store(2).unwrap().state == StoreState::Up
    })
    .await;
    s1.stop().await;
    s2.stop().await;
}

/// The MC's front door would name the caller; this test serves HeartbeatApi without it.
#[allow(clippy::result_large_err)]
fn unchecked(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.extensions_mut().insert(mc::api::auth::Caller::Unchecked);
    Ok(r)
}
