//! The MC's job engine driving real store nodes over gRPC on loopback: CreateRg, CreateRegion
//! and a MigrateReplica under a concurrent KV writer. Afterwards every acknowledged write is
//! readable on the new replica and the old store holds nothing of the RG.
//!
//! The cluster view is updated by hand between jobs, as the MC's heartbeat ingestion (not yet
//! built) will do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use mc::catalog::memory::MemoryStore;
use mc::clock::SystemClock;
use mc::cluster::{ClusterView, RegionInfo, RgInfo, Role, StoreInfo, StoreState};
use mc::jobs::JobSpec;
use mc::jobs::engine::{Engine, EngineConfig, Progress};
use mc::jobs::grpc_executor::GrpcExecutor;
use mc::jobs::state::JobState;
use store_node::client::{BackgroundWriter, put_following_leader};
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

async fn start_store(id: u64, dir: &std::path::Path) -> StoreNode {
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    let node = StoreNode::start_on_loopback(id, dir, raft, vec![], Duration::from_secs(10))
        .await
        .unwrap();
    // No MC tells it who may write: the test CA's admin may (what the writers dial as).
    node.store.data_access.bootstrap(&["admin".into()]);
    node
}

fn value(i: u64) -> Vec<u8> {
    format!("v{i}").into_bytes()
}

use testkit::key;

/// Puts through whichever store leads RG 1, following NotLeader hints; true once acknowledged.
async fn put(nodes: &[String], i: u64) {
    let value = format!("v{i}").into_bytes();
    put_following_leader(nodes, 1, 1, key(i), value, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engine_migrates_a_replica_on_real_stores_under_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for id in 1..=4 {
        nodes.push(start_store(id, dir.path()).await);
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
    let mut view = ClusterView::default();
    for n in &nodes {
        let id = n.store.id();
        view.put_store(StoreInfo {
            capacity_bytes: 0,
            id,
            address: n.addr.to_string(),
            state: StoreState::Up,
            labels: BTreeMap::new(),
        });
    }
    let view = Arc::new(RwLock::new(view));
    let engine = Engine::new(
        MemoryStore::default(),
        GrpcExecutor::new(
            view.clone(),
            store_node::security::pki::TestPki::shared()
                .security(&store_node::security::Identity::Mc(1)),
            0,
        ),
        SystemClock,
        EngineConfig::default(),
    );
    let run = |spec: JobSpec| {
        let (engine, view) = (&engine, view.clone());
        async move {
            let snapshot = view.read().unwrap().clone();
            let job = engine.submit(spec, &snapshot).await.unwrap();
            let progress = engine.run(job.id).await.unwrap();
            let job = engine.job(job.id).unwrap();
            assert_eq!(
                progress,
                Progress::Stopped(JobState::Succeeded),
                "{:?} ended {:?}: {:?}",
                job.spec,
                job.state,
                job.last_error
            );
            job
        }
    };

    run(JobSpec::CreateRg {
        regions: vec![],
        rg: 1,
        stores: vec![1, 2, 3],
        leader: Some(1),
    })
    .await;
    view.write().unwrap().put_rg(RgInfo {
        term: 0,
        conf_ver: 0,
        applied_index: 0,
        id: 1,
        members: [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)]
            .into_iter()
            .collect(),
        leader: Some(1),
        regions: BTreeSet::new().into(),
        offline: false,
        heard: true,
    });
    run(JobSpec::CreateRegion {
        rg: 1,
        region: 1,
        object: 7,
        start: b"a".to_vec(),
        end: b"z".to_vec(),
    })
    .await;
    {
        let mut v = view.write().unwrap();
        v.update_rg(1, |x| {
            x.regions.insert(1);
        });
        v.put_region(RegionInfo {
            keys: 0,
            id: 1,
            rg: 1,
            object: 7,
            start: b"a".to_vec().into(),
            end: b"z".to_vec().into(),
            version: 1,
            size_bytes: 0,
        });
    }
    for i in 0..500 {
        put(&addrs, i).await;
    }

    let writer = BackgroundWriter::start(addrs.clone(), 1, 1, 500, key, value);
    let job = run(JobSpec::MigrateReplica {
        rg: 1,
        from: 1,
        to: 4,
    })
    .await;
    let written = writer.stop().await;
    assert!(
        written > 500,
        "the writer made no progress during the migration"
    );

    let execs = mc::jobs::record::load_execs(engine.store(), job.id).unwrap();
    assert_eq!(
        execs.iter().map(|r| r.step_seq).max(),
        Some(6),
        "six steps, each persisted"
    );
    assert!(
        nodes[0].store.replica(1).is_none(),
        "store 1 still hosts RG 1"
    );
    assert_eq!(
        nodes[0].store.engine.count_range(b"a", b"z").unwrap().0,
        0,
        "store 1 still holds data of RG 1"
    );
    let s4 = &nodes[3].store;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s4.engine.count_range(b"a", b"z").unwrap().0 < written {
        assert!(Instant::now() < deadline, "store 4 did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..written {
        let v = s4
            .engine
            .db()
            .get_cf(s4.engine.cf("default"), key(i))
            .unwrap();
        assert_eq!(
            v,
            Some(format!("v{i}").into_bytes()),
            "key {i} missing on store 4"
        );
    }
    for n in nodes {
        n.stop().await;
    }
}
