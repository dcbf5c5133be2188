//! A store that lies. One `mc serve` and three real stores with TLS; a table written through
//! its routes the whole time; store 3's certificate sends seeded random and crafted RG and
//! store heartbeats (invented RGs and regions over the table's keys, other RGs' regions,
//! leadership claims with huge terms, members no job made, ids and numbers at 0 and 2^64-1,
//! another store's id) while an admin keeps calling the MC. Afterwards every RG's members
//! and regions and every region's range are what the jobs made, every acknowledged write
//! reads back, no scheduler run failed, every admin call was answered, and store 3 is named
//! in an alert. `HOSTILE_SECS` sets how long it lies (default 8).

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mc::client::Client;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::heartbeat_service_client::HeartbeatServiceClient;
use proto::v1::*;
use store_node::security::Identity;
use store_node::security::pki::TestPki;

type Admin = ClusterServiceClient<tonic::transport::Channel>;

/// xorshift64*: the same seed, the same lies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// An RG's members (store, role) and regions.
type RgShape = (Vec<(u64, i32)>, Vec<u64>);

/// What the jobs made: per RG its members and regions, per region its RG and range.
#[derive(Debug, PartialEq, Eq)]
struct Shapes {
    rgs: BTreeMap<u64, RgShape>,
    regions: BTreeMap<u64, (u64, Vec<u8>, Vec<u8>)>,
}

async fn shapes(admin: &mut Admin) -> Shapes {
    let rgs = admin
        .list_rgs(ListRgsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .rgs
        .into_iter()
        .map(|rg| {
            let mut members: Vec<(u64, i32)> =
                rg.replicas.iter().map(|r| (r.store_id, r.role)).collect();
            members.sort();
            let mut regions = rg.region_ids.clone();
            regions.sort();
            (rg.id, (members, regions))
        })
        .collect();
    let regions = admin
        .list_regions(ListRegionsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .regions
        .into_iter()
        .map(|r| {
            let range = r.range.unwrap_or_default();
            (r.id, (r.rg_id, range.start, range.end))
        })
        .collect();
    Shapes { rgs, regions }
}

fn lie(rng: &mut Rng, known: &Shapes) -> RgHeartbeat {
    let real_rgs: Vec<u64> = known.rgs.keys().copied().collect();
    let real_regions: Vec<u64> = known.regions.keys().copied().collect();
    let huge = [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, 9_000_000];
    let rg = match rng.next() % 3 {
        0 => rng.pick(&huge),
        1 => rng.next(),
        _ => rng.pick(&real_rgs),
    };
    let region = match rng.next() % 3 {
        0 => rng.pick(&huge),
        1 => rng.next(),
        _ => rng.pick(&real_regions),
    };
    // Over the keys of a real region: a grab of the table's routes.
    let over = &known.regions[&rng.pick(&real_regions)];
    let members = match rng.next() % 3 {
        0 => vec![3],
        1 => vec![3, rng.next() % 8],
        _ => vec![1, 2, 3],
    };
    let (any_term, any_conf) = (rng.next(), rng.next());
    RgHeartbeat {
        rg_id: rg,
        leader_store_id: 3,
        term: rng.pick(&[u64::MAX, 1 << 40, any_term, 7]),
        applied_index: rng.next(),
        commit_index: rng.next(),
        conf_ver: rng.pick(&[u64::MAX, any_conf, 1]),
        members: members
            .into_iter()
            .map(|s| Replica {
                store_id: s,
                role: ReplicaRole::Voter as i32,
                offline: false,
            })
            .collect(),
        regions: vec![RegionStats {
            region_id: region,
            object_id: rng.next(),
            range: Some(KeyRange {
                start: over.1.clone(),
                end: if rng.next().is_multiple_of(2) {
                    vec![]
                } else {
                    over.2.clone()
                },
            }),
            epoch: Some(RegionEpoch {
                version: rng.pick(&huge),
                conf_ver: rng.pick(&huge),
            }),
            size_bytes: rng.pick(&huge),
            keys: rng.pick(&huge),
            read_bytes: rng.pick(&huge),
            write_bytes: rng.pick(&huge),
            read_ops: rng.next(),
            write_ops: rng.next(),
            split_key: rng.next().to_be_bytes().to_vec(),
        }],
        lagging_store_ids: vec![rng.next()],
    }
}

fn store_lie(rng: &mut Rng) -> StoreHeartbeatRequest {
    let huge = [0, u64::MAX, 1 << 62];
    StoreHeartbeatRequest {
        store_id: 3,
        stats: Some(StoreStats {
            capacity_bytes: rng.pick(&huge),
            used_bytes: rng.pick(&huge),
            available_bytes: rng.pick(&huge),
            read_bytes_per_sec: rng.pick(&huge),
            write_bytes_per_sec: rng.pick(&huge),
            ..Default::default()
        }),
        sent_unix_ms: rng.next(),
        hosted_rg_ids: (0..64).map(|_| rng.next()).collect(),
        unhealthy: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lying_store_changes_no_shape_loses_no_write_and_is_named() {
    let secs: u64 = std::env::var("HOSTILE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc_with(
        1,
        &mc_addr,
        &dir.path().join("mc"),
        &[],
        &[
            "--disconnected-after-ms",
            "5000",
            "--down-after-ms",
            "600000",
            "--report-grace-ms",
            "1000",
        ],
    );
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    wait_stores_up(&mc_addr, 3).await;
    let mut admin: Admin = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    // Shapes change only by the jobs this test runs: no scheduler moves anything meanwhile.
    let names: Vec<String> = admin
        .list_schedulers(ListSchedulersRequest {})
        .await
        .unwrap()
        .into_inner()
        .schedulers
        .into_iter()
        .map(|s| s.name)
        .collect();
    for name in &names {
        admin
            .pause_scheduler(PauseSchedulerRequest {
                name: name.clone(),
                duration_secs: 0,
            })
            .await
            .unwrap();
    }
    let client = Arc::new(
        Client::connect(&mc_addr, TestPki::shared().admin())
            .await
            .unwrap(),
    );
    let mut meta = client.meta();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "demo".into(),
    })
    .await
    .unwrap();
    let orders = meta
        .create_table(CreateTableRequest {
            request_id: "orders".into(),
            database: by_path("demo"),
            name: "orders".into(),
            indexes: vec![IndexSpec {
                name: "by_user".into(),
                ..Default::default()
            }],
            placement: Some(PlacementHint {
                initial_regions: 2,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    let made = shapes(&mut admin).await;
    assert!(!made.rgs.is_empty() && made.regions.len() >= 3, "{made:?}");

    // A writer through the table's routes the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = topology::keys::key(topology::ObjectId(orders.id), &i.to_be_bytes());
                client.put(&key, &i.to_be_bytes()).await.unwrap();
                acked.store(i + 1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    // An admin keeps asking the MC; every call must be answered.
    let answered = Arc::new(AtomicU64::new(0));
    let asker = {
        let (mut admin, stop, answered) = (admin.clone(), stop.clone(), answered.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let stores = admin.list_stores(ListStoresRequest::default());
                let stores = tokio::time::timeout(Duration::from_secs(5), stores).await;
                stores.expect("ListStores answered in 5 s").unwrap();
                let s = admin.list_schedulers(ListSchedulersRequest {});
                tokio::time::timeout(Duration::from_secs(5), s)
                    .await
                    .expect("ListSchedulers answered in 5 s")
                    .unwrap();
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Store 3's own certificate, its cluster's id: everything a compromised store holds.
    let cluster_id = stores[2].store.cluster_id();
    let channel = TestPki::shared()
        .security(&Identity::Store(3))
        .connect(&format!("http://{mc_addr}"))
        .await
        .unwrap();
    let mut liar = HeartbeatServiceClient::new(channel);
    fn tagged<T>(r: T, cluster_id: u64) -> tonic::Request<T> {
        let mut r = tonic::Request::new(r);
        store_node::security::tag(&mut r, cluster_id);
        r
    }
    let mut rng = Rng(0x5eed_0bad_f00d);
    let (mut batches, mut refused_stats) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        let batch = RgHeartbeatBatch {
            store_id: 3,
            heartbeats: (0..32).map(|_| lie(&mut rng, &made)).collect(),
            sent_unix_ms: rng.next(),
        };
        liar.rg_heartbeat(tagged(tokio_stream::iter(vec![batch]), cluster_id))
            .await
            .unwrap();
        batches += 1;
        // Numbers past any disk are refused whole, naming the field.
        match liar
            .store_heartbeat(tagged(store_lie(&mut rng), cluster_id))
            .await
        {
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                assert!(s.message().contains("stats."), "{s:?}");
                refused_stats += 1;
            }
            Err(s) => panic!("{s:?}"),
            Ok(_) => {}
        }
        // It cannot speak for another store.
        let as_store_1 = StoreHeartbeatRequest {
            store_id: 1,
            ..Default::default()
        };
        let denied = liar
            .store_heartbeat(tagged(as_store_1, cluster_id))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        batches > 10 && refused_stats > 0,
        "{batches} {refused_stats}"
    );

    // Honest reports settle what the lies left (a leadership claim the members contradict).
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    asker.await.unwrap();
    assert!(answered.load(Ordering::Relaxed) > 10);

    assert_eq!(shapes(&mut admin).await, made, "a shape no job made");
    let n = acked.load(Ordering::Relaxed);
    assert!(n > 0, "no write was acknowledged");
    for i in 0..n {
        let key = topology::keys::key(topology::ObjectId(orders.id), &i.to_be_bytes());
        assert_eq!(
            client.get(&key).await.unwrap(),
            Some(i.to_be_bytes().to_vec()),
            "acknowledged write {i} lost"
        );
    }
    let schedulers = admin
        .list_schedulers(ListSchedulersRequest {})
        .await
        .unwrap()
        .into_inner()
        .schedulers;
    assert!(schedulers.iter().all(|s| s.failures == 0), "{schedulers:?}");
    let alerts = admin
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(
        alerts.iter().any(|a| a.subject == "store/3/reports"),
        "the liar is not named: {alerts:?}"
    );
    assert!(
        alerts
            .iter()
            .all(|a| !a.subject.starts_with("store/1") && !a.subject.starts_with("store/2")),
        "an honest store was blamed: {alerts:?}"
    );
}
