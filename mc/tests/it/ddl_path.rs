//! The DDL path as a SQL engine meets it: `mc serve` and three stores at their default
//! settings (2 s Raft heartbeats, 10-20 s election timeouts, 10 s MC heartbeats), driven
//! through `mc::client` (routes from GetRoutes and WatchRoutes, KV to the leader).
//!
//! CreateTable returns with every region's leader known and serving — no election timeout,
//! no heartbeat waited for; small tables pack into one RG, each table whole; a pre-split
//! table is one CreateRg job; a leader change is pushed to a watching route cache, and a
//! client with a stale cache follows the store's NotLeader answer.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use mc::client::Client;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;
use store_node::security::pki::TestPki;

const DEFAULTS: &[&str] = &[
    "--store-heartbeat-ms",
    "10000",
    "--rg-heartbeat-ms",
    "10000",
];

fn table(request_id: &str, name: &str, indexes: usize, initial_regions: u32) -> CreateTableRequest {
    CreateTableRequest {
        request_id: request_id.into(),
        database: by_path("app"),
        name: name.into(),
        indexes: (0..indexes)
            .map(|i| IndexSpec {
                name: format!("{name}_i{i}"),
                ..Default::default()
            })
            .collect(),
        placement: Some(PlacementHint {
            initial_regions,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn list_rgs(mc: &str) -> Vec<Rg> {
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    c.list_rgs(ListRgsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .rgs
}

async fn await_condition(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_table_at_default_settings_serves_at_once_packs_and_pushes_routes() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc_with(1, &mc_addr, &dir.path().join("mc"), &[], DEFAULTS);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        let node = store_node::server::StoreNode::start_on_loopback(
            id,
            &dir.path().join(format!("s{id}")),
            store_node::store::RaftTuning::default(),
            vec![mc_addr.clone()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        stores.push(node);
    }
    wait_stores_up(&mc_addr, 3).await;
    let client = Client::connect(&mc_addr, TestPki::shared().admin())
        .await
        .unwrap();
    let mut meta = client.meta();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();

    // The first table: a new RG, whose designated leader leads when the call returns.
    let started = Instant::now();
    let created = meta
        .create_table(table("t0", "t0", 2, 0))
        .await
        .unwrap()
        .into_inner();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "CreateTable took {took:?}: it waited for an election timeout (10-20 s)"
    );
    let t0 = created.table.unwrap();
    let routes = client.load_object(t0.id).await.unwrap();
    assert_eq!(routes.len(), 3, "the table and its two indexes");
    for r in &routes {
        assert_ne!(
            r.leader_store_id, 0,
            "leader known from the step outcome: {r:?}"
        );
        assert!(!r.leader_address.is_empty());
    }
    let rg0 = routes[0].rg_id;
    assert!(routes.iter().all(|r| r.rg_id == rg0), "one group, one RG");
    let rg = list_rgs(&mc_addr)
        .await
        .into_iter()
        .find(|g| g.id == rg0)
        .unwrap();
    assert!(rg.term > 0, "the RG's term, from the step outcome: {rg:?}");
    assert!(rg.conf_ver > 0, "{rg:?}");
    assert_eq!(
        routes[0].region.as_ref().unwrap().epoch.unwrap().conf_ver,
        rg.conf_ver,
        "a route carries its RG's membership version"
    );
    // It serves through its routes at once.
    let key = topology::keys::key(topology::ObjectId(t0.id), b"row-1");
    client.put(&key, b"v1").await.unwrap();
    assert_eq!(client.get(&key).await.unwrap(), Some(b"v1".to_vec()));

    // Watch routes from here on.
    let watcher = Client::connect(&mc_addr, TestPki::shared().admin())
        .await
        .unwrap();
    let watching = watcher.watch();
    let cache = watcher.cache();
    await_condition(
        "the watch's first full set",
        Duration::from_secs(10),
        || cache.read().unwrap().len() == 3,
    )
    .await;

    // Twenty small tables more, four callers at a time: packed into the RG with room, each
    // table with its indexes whole in one RG, no Raft group made for any of them.
    let mut calls = Vec::new();
    for i in 1..=20 {
        let mut meta = client.meta();
        calls.push(tokio::spawn(async move {
            meta.create_table(table(&format!("t{i}"), &format!("t{i}"), 2, 0))
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut tables = Vec::new();
    for c in calls {
        tables.push(c.await.unwrap().unwrap().table.unwrap());
    }
    let rgs = list_rgs(&mc_addr).await;
    assert_eq!(
        rgs.len(),
        1,
        "21 tables of 3 regions fit one RG of 64: {rgs:?}"
    );
    for t in &tables {
        let routes = client.load_object(t.id).await.unwrap();
        let homes: BTreeSet<u64> = routes.iter().map(|r| r.rg_id).collect();
        assert_eq!(homes.len(), 1, "{} is whole in one RG", t.name);
        let key = topology::keys::key(topology::ObjectId(t.id), b"k");
        client.put(&key, t.name.as_bytes()).await.unwrap();
    }
    await_condition(
        "the watch saw the new tables",
        Duration::from_secs(10),
        || cache.read().unwrap().len() == 63,
    )
    .await;

    // A pre-split table: one CreateRg job with its 256 regions seeded, every one led.
    let split = meta
        .create_table(table("big", "big", 0, 256))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(split.job_ids.len(), 1, "one job: {:?}", split.job_ids);
    let big = split.table.unwrap();
    let routes = client.load_object(big.id).await.unwrap();
    assert_eq!(routes.len(), 256);
    assert!(routes.iter().all(|r| r.leader_store_id != 0));
    let big_rg = routes[0].rg_id;
    let last = topology::keys::key(topology::ObjectId(big.id), &[0xff, 1]);
    client.put(&last, b"tail").await.unwrap();

    // A leader change is pushed to the watching cache.
    let leader = routes[0].leader_store_id;
    let to = [1, 2, 3].into_iter().find(|s| *s != leader).unwrap();
    let job = submit(
        &mc_addr,
        job_spec::Spec::TransferLeader(TransferLeaderSpec {
            rg_id: big_rg,
            to_store_id: to,
        }),
        "move-leader",
    )
    .await;
    wait_job(&mc_addr, job.id, succeeded).await;
    await_condition(
        "the leader change was pushed",
        Duration::from_secs(10),
        || {
            cache
                .read()
                .unwrap()
                .locate(&last)
                .is_some_and(|r| r.leader_store_id == to)
        },
    )
    .await;
    // `client` has not watched: its cached route names the old leader, whose NotLeader
    // answer it follows.
    let cached_leader = || {
        client
            .cache()
            .read()
            .unwrap()
            .locate(&last)
            .unwrap()
            .leader_store_id
    };
    assert_eq!(cached_leader(), leader);
    assert_eq!(client.get(&last).await.unwrap(), Some(b"tail".to_vec()));
    assert_eq!(cached_leader(), to, "repaired from NotLeader");
    watching.abort();
    for s in stores {
        s.stop().await;
    }
}
