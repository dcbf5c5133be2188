//! The longest stretch a table goes without an acknowledged write while the cluster changes
//! under it, at default settings with TLS: one `mc serve` (this binary re-executed) and store
//! nodes in this process at the default Raft timing (2 s heartbeats, 6-12 s elections).
//!
//! 1. A group split out of a shared RG: 12 tables with 4 indexes each packed into one RG,
//!    written continuously; 3 more indexes on 6 of them pass the RG's limit and the split
//!    checker moves a group into a new RG.
//! 2. A rolling restart of 4 stores, 8 tables written continuously: each store in turn put in
//!    maintenance (`SetStoreMaintenance`, waited for until it leads nothing), stopped as
//!    SIGTERM stops it (its leaders handed over), started again 2 s later and waited for until
//!    Up; and the same without maintenance or handover (a plain stop), for comparison.
//!
//! Run: `cargo bench --bench availability`.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mc::client::Client;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

const CHILD: &str = "AVAILABILITY_BENCH_MC";
/// How long a store is away while it restarts.
const RESTART_PAUSE: Duration = Duration::from_secs(2);

fn table(name: &str, indexes: usize) -> CreateTableRequest {
    CreateTableRequest {
        request_id: name.into(),
        database: Some(ObjectRef {
            target: Some(object_ref::Target::Path("app".into())),
        }),
        name: name.into(),
        indexes: (0..indexes)
            .map(|i| IndexSpec {
                name: format!("{name}_i{i}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// One writer per table, each keeping its longest gap between acknowledged writes.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Duration)>>,
}

impl Writers {
    fn start(client: &Arc<Client>, tables: &[u64]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = tables
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
                    (t, longest)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// The table that went longest without an acknowledged write, and how long.
    async fn finish(self) -> (u64, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let mut worst = (0, Duration::ZERO);
        for t in self.tasks {
            let (table, longest) = t.await.unwrap();
            if longest > worst.1 {
                worst = (table, longest);
            }
        }
        worst
    }
}

async fn setup(
    dir: &std::path::Path,
    stores: u64,
) -> (String, support::Killed, Vec<StoreNode>, Arc<Client>) {
    let (mc, child) = support::one_mc(CHILD, dir);
    let nodes = support::stores_reporting_to(&mc, dir, stores).await;
    let client = support::admin_client(&mc).await;
    let mut meta = client.meta();
    loop {
        if meta
            .create_database(CreateDatabaseRequest {
                request_id: "db".into(),
                name: "app".into(),
            })
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (mc, child, nodes, client)
}

async fn create_tables(client: &Client, n: usize, indexes: usize) -> Vec<u64> {
    let mut meta = client.meta();
    let mut out = Vec::new();
    for t in 0..n {
        let created = loop {
            match meta.create_table(table(&format!("t{t}"), indexes)).await {
                Ok(r) => break r.into_inner(),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        out.push(created.table.unwrap().id);
    }
    out
}

async fn group_split() {
    let dir = tempfile::tempdir().unwrap();
    let (_mc, _child, stores, client) = setup(dir.path(), 3).await;
    let _watch = client.watch();
    let tables = create_tables(&client, 12, 4).await;
    let writers = Writers::start(&client, &tables);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut meta = client.meta();
    for t in 0..6 {
        for i in 4..7 {
            meta.create_index(CreateIndexRequest {
                request_id: format!("t{t}_i{i}"),
                parent: Some(ObjectRef {
                    target: Some(object_ref::Target::Path(format!("app/t{t}"))),
                }),
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
    let started = Instant::now();
    loop {
        let mut rgs = BTreeSet::new();
        for t in &tables {
            rgs.extend(
                client
                    .load_object(*t)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.rg_id),
            );
        }
        if rgs.len() > 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no split");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let split_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (table, longest) = writers.finish().await;
    println!(
        "group split out of a shared RG (12 tables x 4 indexes, 3 more indexes on 6; split {:.1} s after): longest stretch without an acknowledged write {} (table {table})",
        split_after.as_secs_f64(),
        support::ms(longest)
    );
    for s in stores {
        s.stop().await;
    }
}

async fn rolling_restart(with_maintenance: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (mc, _child, mut stores, client) = setup(dir.path(), 4).await;
    let _watch = client.watch();
    let tables = create_tables(&client, 8, 1).await;
    let mut admin = ClusterServiceClient::new(
        store_node::security::pki::admin_connect(format!("http://{mc}"))
            .await
            .unwrap(),
    );
    let writers = Writers::start(&client, &tables);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    for id in 1..=4u64 {
        let i = stores.iter().position(|s| s.store.id() == id).unwrap();
        let node = stores.remove(i);
        let addr = node.addr;
        if with_maintenance {
            admin
                .set_store_maintenance(SetStoreMaintenanceRequest {
                    store_id: id,
                    window_secs: 600,
                })
                .await
                .unwrap();
            let until = Instant::now() + Duration::from_secs(120);
            loop {
                let s = admin
                    .get_store(GetStoreRequest { store_id: id })
                    .await
                    .unwrap()
                    .into_inner()
                    .store
                    .unwrap();
                if s.leader_count == 0 {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "store {id} still leads {}",
                    s.leader_count
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            node.stop_gracefully(Duration::from_secs(5)).await;
        } else {
            node.stop().await;
        }
        // A process restart takes a while (an upgrade's binary swap, a service manager).
        tokio::time::sleep(RESTART_PAUSE).await;
        let restarted = loop {
            let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match StoreNode::start_listening(
                listener,
                id,
                &dir.path().join(format!("s{id}")),
                RaftTuning::default(),
                vec![mc.clone()],
                Duration::from_secs(10),
                store_node::security::pki::TestPki::shared()
                    .security(&store_node::security::Identity::Store(id)),
            )
            .await
            {
                Ok(n) => break n,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let until = Instant::now() + Duration::from_secs(120);
        loop {
            let s = admin
                .get_store(GetStoreRequest { store_id: id })
                .await
                .unwrap()
                .into_inner()
                .store
                .unwrap();
            if s.state == StoreState::Up as i32 && s.maintenance_until_unix_ms == 0 {
                break;
            }
            assert!(Instant::now() < until, "store {id} not back: {s:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stores.push(restarted);
    }
    let took = started.elapsed();
    let (table, longest) = writers.finish().await;
    println!(
        "rolling restart of 4 stores {} ({:.1} s): longest stretch without an acknowledged write {} (table {table})",
        if with_maintenance {
            "with maintenance windows and SIGTERM handover"
        } else {
            "without maintenance or handover"
        },
        took.as_secs_f64(),
        support::ms(longest)
    );
    for s in stores {
        s.stop().await;
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return support::serve_one_mc(&spec);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // AVAILABILITY_ONLY=split or =restart runs one part.
    let only = std::env::var("AVAILABILITY_ONLY").unwrap_or_default();
    rt.block_on(async {
        if only.is_empty() || only == "split" {
            group_split().await;
        }
        if only.is_empty() || only == "restart" {
            rolling_restart(true).await;
            rolling_restart(false).await;
        }
    });
}
