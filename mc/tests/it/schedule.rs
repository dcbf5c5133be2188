//! The schedulers on real stores. Scale-out: ten tables (each with two indexes) created on
//! three stores, then two empty stores join; the replica balancer evens replicas out to
//! max/mean <= 1.1 without breaking an affinity group and without an RG ever dropping below
//! three voters. Repair: a store holding a table's replicas is killed; once it is Down the
//! replica checker restores three replicas, with the data, on the live stores.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;
use store_node::client::put_following_leader;

type Cluster = ClusterServiceClient<tonic::transport::Channel>;
type Meta = MetaServiceClient<tonic::transport::Channel>;

async fn clients(mc: &str) -> (Cluster, Meta) {
    let url = format!("http://{mc}");
    (
        store_node::security::pki::admin_connect(url.clone())
            .await
            .map(ClusterServiceClient::new)
            .unwrap(),
        store_node::security::pki::admin_connect(url)
            .await
            .map(MetaServiceClient::new)
            .unwrap(),
    )
}

async fn set_config(c: &mut Cluster, values: &[(&str, &str)]) {
    c.set_config(SetConfigRequest {
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn rgs(c: &mut Cluster) -> Vec<Rg> {
    c.list_rgs(ListRgsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .rgs
}

async fn create_tables(meta: &mut Meta, n: usize) {
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();
    for t in 0..n {
        meta.create_table(CreateTableRequest {
            request_id: format!("t{t}"),
            database: by_path("app"),
            name: format!("t{t}"),
            indexes: ["a", "b"]
                .iter()
                .map(|i| IndexSpec {
                    name: i.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
}

/// Table name → the RGs its regions and its indexes' regions are in.
async fn table_rgs(meta: &mut Meta, n: usize) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out = BTreeMap::new();
    for t in 0..n {
        let routes = meta
            .get_routes(GetRoutesRequest {
                target: Some(get_routes_request::Target::Object(
                    by_path(&format!("app/t{t}")).unwrap(),
                )),
            })
            .await
            .unwrap()
            .into_inner()
            .routes;
        assert_eq!(
            routes.len(),
            3,
            "t{t}: a region for the table and each index"
        );
        out.insert(format!("t{t}"), routes.iter().map(|r| r.rg_id).collect());
    }
    out
}

fn replicas_per_store(rgs: &[Rg], stores: &[u64]) -> BTreeMap<u64, usize> {
    let mut counts: BTreeMap<u64, usize> = stores.iter().map(|s| (*s, 0)).collect();
    for rg in rgs {
        for r in &rg.replicas {
            *counts.entry(r.store_id).or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_out_balances_replicas_keeping_affinity_and_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    // An RG per table (the DDL path would pack these small tables into one).
    let _mc = start_mc_with(
        1,
        &mc_addr,
        &dir.path().join("mc"),
        &[],
        &[
            "--disconnected-after-ms",
            "5000",
            "--down-after-ms",
            "60000",
            "--ddl-rg-max-regions",
            "1",
        ],
    );
    jobs(&mc_addr).await;
    let (mut cluster, mut meta) = clients(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    wait_stores_up(&mc_addr, 3).await;
    const TABLES: usize = 10;
    create_tables(&mut meta, TABLES).await;
    let before = table_rgs(&mut meta, TABLES).await;
    for (t, rgs) in &before {
        assert_eq!(rgs.len(), 1, "{t} and its indexes share one RG");
    }
    assert_eq!(rgs(&mut cluster).await.len(), TABLES);

    // Two empty stores join; the balancer runs every 100 ms.
    set_config(
        &mut cluster,
        &[
            ("schedule.balance-replica.interval-ms", "100"),
            ("schedule.balance-leader.interval-ms", "100"),
        ],
    )
    .await;
    for id in 4..=5 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    let all: Vec<u64> = (1..=5).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let counts = loop {
        let now = rgs(&mut cluster).await;
        for rg in &now {
            let voters = rg
                .replicas
                .iter()
                .filter(|r| r.role == ReplicaRole::Voter as i32)
                .count();
            assert!(voters >= 3, "RG {} has {voters} voters: {rg:?}", rg.id);
        }
        let counts = replicas_per_store(&now, &all);
        let total: usize = counts.values().sum();
        let mean = total as f64 / all.len() as f64;
        let max = *counts.values().max().unwrap() as f64;
        if total == TABLES * 3 && max / mean <= 1.1 {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "not balanced in time: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(counts.values().all(|n| *n == 6), "{counts:?}");
    // Whole RGs moved: every table is still together with its indexes.
    assert_eq!(table_rgs(&mut meta, TABLES).await, before);

    // Why did an RG move? The scheduling log says, with scores.
    let taken = taken_reasons(&mut cluster, "balance-replica").await.len();
    assert!(taken >= 12, "at least 12 moves were logged, got {taken}");

    // The schedulers can be listed, paused and resumed by name.
    let list = cluster
        .list_schedulers(ListSchedulersRequest {})
        .await
        .unwrap()
        .into_inner()
        .schedulers;
    let balance = list.iter().find(|s| s.name == "balance-replica").unwrap();
    assert_eq!(balance.interval_ms, 100);
    assert!(balance.decisions_taken >= 12);
    let paused = cluster
        .pause_scheduler(PauseSchedulerRequest {
            name: "balance-replica".into(),
            duration_secs: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap();
    assert!(paused.paused);
    let e = cluster
        .pause_scheduler(PauseSchedulerRequest {
            name: "no-such".into(),
            duration_secs: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(e.message().contains("no-such"));
    let resumed = cluster
        .resume_scheduler(ResumeSchedulerRequest {
            name: "balance-replica".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .scheduler
        .unwrap();
    assert!(!resumed.paused);
    let e = cluster
        .set_config(SetConfigRequest {
            values: [("schedule.nope.interval-ms".to_string(), "5".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("schedule.nope.interval-ms"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_store_is_replaced_with_its_data_after_max_store_down_time() {
    let (dir, mc_addr, _mc) = one_mc(&[
        "--disconnected-after-ms",
        "500",
        "--down-after-ms",
        "1500",
        "--ddl-rg-max-regions",
        "1",
    ]);
    jobs(&mc_addr).await;
    let (mut cluster, mut meta) = clients(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(Some(
            start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await,
        ));
    }
    wait_stores_up(&mc_addr, 4).await;
    set_config(
        &mut cluster,
        &[
            ("schedule.replica-checker.interval-ms", "100"),
            // Only repair here: no balancing moves in the way.
            ("schedule.balance-replica.interval-ms", "600000"),
            ("schedule.balance-leader.interval-ms", "600000"),
            ("schedule.stray-grace-ms", "500"),
        ],
    )
    .await;
    create_tables(&mut meta, 2).await;
    let routes = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(by_path("app").unwrap())),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    for r in &routes {
        let region = r.region.clone().unwrap();
        let addrs: Vec<String> = r.store_addresses.values().cloned().collect();
        for i in 0..20 {
            let mut key = region.range.clone().unwrap().start;
            key.extend_from_slice(format!("row-{i}").as_bytes());
            put_following_leader(
                &addrs,
                region.id,
                region.epoch.unwrap().version,
                key,
                vec![7; 100],
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        }
    }
    // Kill a store that holds replicas.
    let victim = routes[0].replicas[0].store_id;
    let node = stores[victim as usize - 1].take().unwrap();
    node.stop().await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = rgs(&mut cluster).await;
        let repaired = now
            .iter()
            .all(|rg| rg.replicas.len() == 3 && rg.replicas.iter().all(|r| r.store_id != victim));
        if repaired && now.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not repaired: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The new replicas hold the data: every live store of each RG has all 20 rows of each of
    // its regions.
    for r in &routes {
        let region = r.region.clone().unwrap();
        let range = region.range.clone().unwrap();
        let rg = rgs(&mut cluster)
            .await
            .into_iter()
            .find(|g| g.id == r.rg_id)
            .unwrap();
        for rep in &rg.replicas {
            let node = stores[rep.store_id as usize - 1].as_ref().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (keys, _) = node
                    .store
                    .engine
                    .count_range(&range.start, &range.end)
                    .unwrap();
                if keys == 20 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "store {} has {keys} of region {}'s 20 rows",
                    rep.store_id,
                    region.id
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let reasons = taken_reasons(&mut cluster, "replica-checker").await;
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(&format!("dead store {victim}"))),
        "{reasons:?}"
    );

    // The dead store comes back with its old replicas, no longer members of their RGs: they
    // are destroyed, data and all.
    let back = start_store(victim, dir.path(), std::slice::from_ref(&mc_addr)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !back.store.replicas().is_empty() {
        assert!(
            Instant::now() < deadline,
            "store {victim} still holds replicas of RGs it left: {:?}",
            back.store
                .replicas()
                .iter()
                .map(|r| r.rg)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in &routes {
        let range = r.region.clone().unwrap().range.unwrap();
        // The store drops a destroyed replica from its list before it deletes the data.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (keys, _) = back
                .store
                .engine
                .count_range(&range.start, &range.end)
                .unwrap();
            if keys == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the stray replica's data is not gone: {keys} rows"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stores[victim as usize - 1] = Some(back);

    // An RG with a replica too many (as when a repaired-around store comes back before its
    // replica was removed) goes back to three, keeping every row.
    let rg = routes[0].rg_id;
    let add = submit_when_unlocked(
        &mc_addr,
        job_spec::Spec::AddReplica(AddReplicaSpec {
            rg_id: rg,
            store_id: victim,
            role: ReplicaRole::Voter as i32,
        }),
        "over-replicate",
    )
    .await;
    wait_job(&mc_addr, add.id, succeeded).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let members = loop {
        let info = rgs(&mut cluster)
            .await
            .into_iter()
            .find(|g| g.id == rg)
            .unwrap();
        if info.replicas.len() == 3 {
            break info.replicas;
        }
        assert!(
            Instant::now() < deadline,
            "RG {rg} kept {} replicas",
            info.replicas.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let range = routes[0].region.clone().unwrap().range.unwrap();
    for rep in &members {
        let node = stores[rep.store_id as usize - 1].as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while node
            .store
            .engine
            .count_range(&range.start, &range.end)
            .unwrap()
            .0
            != 20
        {
            assert!(
                Instant::now() < deadline,
                "store {} lost rows",
                rep.store_id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
