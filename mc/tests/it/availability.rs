//! How long a region goes without an acknowledged write while the cluster changes an RG under
//! it, at the stores' default Raft timing (2 s heartbeats, 6-12 s election timeouts).
//!
//! A routine group split: twelve tables with four indexes each packed into one RG (60
//! regions), written continuously; three more indexes on six of them pass the RG's limit of 64
//! regions and the split checker moves a group into a new RG. No table may go a second
//! without an acknowledged write (before the parent's leader campaigned for the new RG,
//! nothing led it for an election timeout: 8 of 12 tables stalled 19.9 s).

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mc::client::Client;
use proto::v1::*;
use store_node::security::pki::TestPki;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_split_out_of_a_shared_rg_stalls_no_table_for_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc_with(
        1,
        &mc_addr,
        &dir.path().join("mc"),
        &[],
        &["--store-heartbeat-ms", "1000", "--rg-heartbeat-ms", "1000"],
    );
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        let node = store_node::server::StoreNode::start_on_loopback(
            id,
            &dir.path().join(format!("s{id}")),
            store_node::store::RaftTuning::default(),
            vec![mc_addr.clone()],
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        stores.push(node);
    }
    wait_stores_up(&mc_addr, 3).await;
    let client = Arc::new(
        Client::connect(&mc_addr, TestPki::shared().admin())
            .await
            .unwrap(),
    );
    let watch = client.watch();
    let mut meta = client.meta();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    let mut tables = Vec::new();
    for t in 0..12 {
        let created = meta
            .create_table(app_table(&format!("t{t}"), 4))
            .await
            .unwrap()
            .into_inner();
        tables.push(created.table.unwrap().id);
    }
    let rgs_of = |routes: &[Route]| routes.iter().map(|r| r.rg_id).collect::<BTreeSet<_>>();
    let mut all = BTreeSet::new();
    for t in &tables {
        all.extend(rgs_of(&client.load_object(*t).await.unwrap()));
    }
    assert_eq!(all.len(), 1, "the twelve tables share one RG: {all:?}");
    let parent = *all.first().unwrap();

    // One writer per table; each records its longest gap between acknowledged writes.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = tables
        .iter()
        .map(|t| {
            let (client, stop, t) = (client.clone(), stop.clone(), *t);
            tokio::spawn(async move {
                let mut last = Instant::now();
                let mut longest = Duration::ZERO;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = topology::keys::key(topology::ObjectId(t), &i.to_be_bytes());
                    client.put(&key, b"v").await.unwrap();
                    longest = longest.max(last.elapsed());
                    last = Instant::now();
                    i += 1;
                }
                (t, longest, i)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Three more indexes on six tables: 78 regions, past the RG's limit of 64.
    for t in 0..6 {
        for i in 4..7 {
            meta.create_index(CreateIndexRequest {
                request_id: format!("t{t}_i{i}"),
                parent: by_path(&format!("app/t{t}")),
                index: Some(IndexSpec {
                    name: format!("t{t}_i{i}"),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    // The split checker (every 10 s) moves a group out; then a few seconds more of writes.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut rgs = BTreeSet::new();
        for t in &tables {
            rgs.extend(rgs_of(&client.load_object(*t).await.unwrap()));
        }
        if rgs.len() > 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no group was split out of RG {parent}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut worst = (0, Duration::ZERO);
    for w in writers {
        let (t, longest, n) = w.await.unwrap();
        assert!(n > 0, "table {t} took no write");
        if longest > worst.1 {
            worst = (t, longest);
        }
    }
    assert!(
        worst.1 < Duration::from_secs(1),
        "table {} went {:?} without an acknowledged write",
        worst.0,
        worst.1
    );
    watch.abort();
    for s in stores {
        s.stop().await;
    }
}

/// A maintenance window: the MC moves every leader off the store, the store is stopped and
/// stays away past `--down-after-ms` without being repaired (no replica moved, no job made),
/// its tables keep taking writes, and its report after the restart ends the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_in_maintenance_hands_its_leaders_over_and_is_not_repaired() {
    use proto::v1::cluster_service_client::ClusterServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc_with(
        1,
        &mc_addr,
        &dir.path().join("mc"),
        &[],
        &["--disconnected-after-ms", "1000", "--down-after-ms", "3000"],
    );
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    wait_stores_up(&mc_addr, 3).await;
    let client = Arc::new(
        Client::connect(&mc_addr, TestPki::shared().admin())
            .await
            .unwrap(),
    );
    let mut meta = client.meta();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    let t = meta
        .create_table(app_table("t", 1))
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap()
        .id;
    let routes = client.load_object(t).await.unwrap();
    let leader = routes[0].leader_store_id;
    assert_ne!(leader, 0);
    let mut admin = ClusterServiceClient::new(
        TestPki::shared()
            .admin()
            .connect(&format!("http://{mc_addr}"))
            .await
            .unwrap(),
    );
    let r = admin
        .set_store_maintenance(SetStoreMaintenanceRequest {
            store_id: leader,
            window_secs: 120,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.store.unwrap().maintenance_until_unix_ms > 0);
    // Its leaders move away (the maintenance scheduler runs every second).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = admin
            .get_store(GetStoreRequest { store_id: leader })
            .await
            .unwrap()
            .into_inner()
            .store
            .unwrap();
        if s.leader_count == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store {leader} still leads {}",
            s.leader_count
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopped, and away for longer than --down-after-ms.
    let i = stores.iter().position(|s| s.store.id() == leader).unwrap();
    let stopped = stores.remove(i);
    let addr = stopped.addr;
    stopped.stop().await;
    let row = topology::keys::key(topology::ObjectId(t), b"row");
    tokio::time::sleep(Duration::from_secs(5)).await;
    client.put(&row, b"while away").await.unwrap();
    let s = admin
        .get_store(GetStoreRequest { store_id: leader })
        .await
        .unwrap()
        .into_inner()
        .store
        .unwrap();
    assert_eq!(s.state, StoreState::Disconnected as i32, "not Down: {s:?}");
    let repairs = jobs(&mc_addr)
        .await
        .list_jobs(ListJobsRequest {
            types: vec![
                JobType::AddReplica as i32,
                JobType::MigrateReplica as i32,
                JobType::RemoveReplica as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(
        repairs.is_empty(),
        "a store in maintenance was repaired: {repairs:?}"
    );
    // Back: its first report ends the window.
    let back = restart_store(leader, addr, dir.path(), std::slice::from_ref(&mc_addr)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = admin
            .get_store(GetStoreRequest { store_id: leader })
            .await
            .unwrap()
            .into_inner()
            .store
            .unwrap();
        if s.maintenance_until_unix_ms == 0 && s.state == StoreState::Up as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "the window did not end: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        client.get(&row).await.unwrap(),
        Some(b"while away".to_vec())
    );
    back.stop().await;
    for s in stores {
        s.stop().await;
    }
}
