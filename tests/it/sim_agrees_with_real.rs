//! The simulator and a real cluster agree. The same small case — five stores, ten tables
//! with two indexes each created on three of them, then two empty stores joining — runs on a
//! real MC with real store nodes and in `mcsim` with the same scheduler config. Both must
//! propose the same sequence of job types, and move replicas the same way: the same number
//! off each full store and onto each new one.

use crate::common;

use common::store;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mc::server::{ServeConfig, serve};
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;

const SCENARIO: &str = r#"
name = "agreement"
duration_secs = 1800
sample_secs = 30
[cluster]
stores = [{ count = 5, zones = ["z1"] }]
heartbeat_secs = 1
[data]
start = "skewed"
skew_stores = 3
tables = [{ count = 10, indexes = 2 }]
[config]
"schedule.balance-replica.interval-ms" = "100"
"schedule.balance-leader.interval-ms" = "100000000"
"schedule.hot-region.interval-ms" = "100000000"
"schedule.affinity-keeper.interval-ms" = "100000000"
"#;

fn config_values() -> std::collections::HashMap<String, String> {
    [
        ("schedule.balance-replica.interval-ms", "100"),
        ("schedule.balance-leader.interval-ms", "100000000"),
        ("schedule.hot-region.interval-ms", "100000000"),
        ("schedule.affinity-keeper.interval-ms", "100000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn path(p: &str) -> Option<ObjectRef> {
    Some(ObjectRef {
        target: Some(object_ref::Target::Path(p.into())),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulator_and_real_cluster_propose_the_same_moves() {
    // The simulator's run.
    let scenario = simulator::scenario::Scenario::from_toml(SCENARIO).unwrap();
    // Its own single-threaded runtime: on a thread of its own.
    let sim = std::thread::spawn(move || simulator::sim::run(&scenario, "mc", 1))
        .join()
        .unwrap();
    assert!(sim.report.failed_expectations.is_empty());

    // The real one.
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServeConfig::single(addr, dir.path().join("mc"));
    config.store_heartbeat_ms = 50;
    config.rg_heartbeat_ms = 50;
    // An RG per table, as the simulated cluster has (the DDL path would pack them).
    config.ddl_rg_max_regions = 1;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mc = tokio::spawn(serve(config, listener, async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");
    let mut cluster = loop {
        if let Ok(c) = store_node::security::pki::admin_connect(url.clone())
            .await
            .map(ClusterServiceClient::new)
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(store(id, dir.path(), &addr.to_string()).await);
    }
    let up = |stores: Vec<Store>| {
        stores
            .iter()
            .filter(|s| s.state == StoreState::Up as i32)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while up(cluster
        .list_stores(ListStoresRequest::default())
        .await
        .map(|r| r.into_inner().stores)
        .unwrap_or_default())
        < 3
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster
        .set_config(SetConfigRequest {
            values: config_values(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut meta = store_node::security::pki::admin_connect(url.clone())
        .await
        .map(MetaServiceClient::new)
        .unwrap();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    for t in 0..10 {
        meta.create_table(CreateTableRequest {
            request_id: format!("t{t}"),
            database: path("app"),
            name: format!("t{t}"),
            indexes: ["a", "b"]
                .iter()
                .map(|n| IndexSpec {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for id in 4..=5 {
        stores.push(store(id, dir.path(), &addr.to_string()).await);
    }
    // Until the balancer is done: every store holds six replicas.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rgs = cluster
            .list_rgs(ListRgsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .rgs;
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for rg in &rgs {
            for r in &rg.replicas {
                *counts.entry(r.store_id).or_default() += 1;
            }
        }
        if counts.len() == 5 && counts.values().all(|n| *n == 6) {
            break;
        }
        assert!(Instant::now() < deadline, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = cluster
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Scheduling as i32,
            subject: "scheduler/balance-replica".into(),
            page: Some(PageRequest {
                limit: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let mut real_types = Vec::new();
    let mut real_moves: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut decisions: Vec<SchedulingDecision> = log
        .into_iter()
        .filter_map(|e| match e.entry {
            Some(history_entry::Entry::Decision(d)) if d.taken => Some(d),
            _ => None,
        })
        .collect();
    decisions.sort_by_key(|d| d.id);
    for d in decisions {
        if let Some(job_spec::Spec::MigrateReplica(m)) = d.proposed.and_then(|p| p.spec) {
            real_types.push("MigrateReplica".to_string());
            *real_moves
                .entry((m.from_store_id, m.to_store_id))
                .or_default() += 1;
        }
    }
    for s in stores {
        s.stop().await;
    }
    let _ = stop.send(());
    let _ = mc.await;

    assert_eq!(sim.job_types, real_types, "the same sequence of job types");
    // Moves per (from, to) pair may differ with which RG was picked; per store they agree.
    let per_store = |moves: &BTreeMap<(u64, u64), usize>| {
        let mut out: BTreeMap<u64, i64> = BTreeMap::new();
        for ((from, to), n) in moves {
            *out.entry(*from).or_default() -= *n as i64;
            *out.entry(*to).or_default() += *n as i64;
        }
        out
    };
    assert_eq!(
        per_store(&real_moves),
        [(1, -4), (2, -4), (3, -4), (4, 6), (5, 6)].into()
    );
    assert_eq!(sim.report.work.replica_adds, 12);
}
