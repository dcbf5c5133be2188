//! `mc playground`: one MC and three store nodes in this process, on loopback ports, with their
//! data under one directory, and a demo database and table. Everything is the real thing (the
//! replicated catalog, openraft RGs on RocksDB, gRPC between them); only the processes are
//! shared, so Ctrl-C stops everything and nothing is left behind. A restart on the same
//! directory reuses the data: the DDL calls use fixed request ids and answer as before.

use std::path::PathBuf;
use std::time::Duration;

use infra::security::pki::{Authority, LOCAL_HOSTS};
use infra::security::{Identity, Security};
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;
use store_node::heartbeat::HeartbeatOptions;
use store_node::server::StoreNode;
use store_node::store::{RaftTuning, StoreOptions};
use tokio::sync::watch;

use crate::cluster::LivenessConfig;
use crate::error::{McError, Result};
use crate::server::{McRaftTuning, ServeConfig, serve};

#[derive(Clone, Debug)]
pub struct PlaygroundConfig {
    pub data_dir: PathBuf,
    /// Delete the data directory first.
    pub clean: bool,
    /// The MC listens here; the stores on the next three ports.
    pub port: u16,
}

fn err(what: &str, e: impl std::fmt::Display) -> McError {
    McError::Unavailable {
        reason: format!("{what}: {e}"),
        retry_after_ms: 0,
    }
}

/// Runs until `shutdown` resolves, then stops the stores and the MC.
pub async fn run(
    config: PlaygroundConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if config.clean && config.data_dir.exists() {
        std::fs::remove_dir_all(&config.data_dir).map_err(|e| err("--clean", e))?;
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| err("data directory", e))?;
    let certs = config.data_dir.join("certs");
    let pki = Pki::ensure(&certs)?;
    let mc_addr = format!("127.0.0.1:{}", config.port);
    let listener = tokio::net::TcpListener::bind(&mc_addr)
        .await
        .map_err(|e| err(&format!("cannot listen on {mc_addr}"), e))?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let serve_config = ServeConfig {
        id: 1,
        listen: mc_addr.parse().map_err(|e| err("address", e))?,
        advertise: mc_addr.clone(),
        peers: Default::default(),
        data_dir: config.data_dir.join("mc"),
        liveness: LivenessConfig {
            disconnected_after_ms: 5_000,
            down_after_ms: 60_000,
        },
        store_heartbeat_ms: 1_000,
        rg_heartbeat_ms: 1_000,
        raft: McRaftTuning::default(),
        security: pki.security(&Identity::Mc(1))?,
        admin_user: Some("admin".into()),
        metrics_listen: Some(
            format!("127.0.0.1:{}", config.port + 10)
                .parse()
                .map_err(|e| err("address", e))?,
        ),
        ddl_wait_ms: 60_000,
        ddl_rg_max_regions: crate::objects::plan::DdlConfig::default().rg_max_regions,
        evidence: Default::default(),
        audit_retention_ms: crate::history::AUDIT_RETENTION_MS,
    };
    let mc = tokio::spawn(serve(serve_config, listener, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));

    let mut stores = Vec::new();
    let mut metric_tasks = Vec::new();
    for id in 1..=3u64 {
        let addr = format!("127.0.0.1:{}", config.port + id as u16);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| err(&format!("cannot listen on {addr}"), e))?;
        let options = StoreOptions {
            store_id: id,
            data_dir: config.data_dir.join(format!("store{id}")),
            advertise: addr,
            raft: RaftTuning {
                heartbeat_ms: 500,
                election_min_ms: 2_000,
                election_max_ms: 4_000,
                ..Default::default()
            },
            sync: true,
            snapshot_rate: 0,
            security: pki.security(&Identity::Store(id))?,
        };
        let heartbeat = HeartbeatOptions {
            mc_endpoints: vec![mc_addr.clone()],
            labels: [
                ("zone".to_string(), format!("z{id}")),
                ("host".to_string(), format!("h{id}")),
            ]
            .into(),
            capacity_bytes: 100 << 30,
            store_interval: Duration::from_secs(1),
            rg_interval: Duration::from_secs(1),
        };
        let node = StoreNode::start(listener, options, heartbeat)
            .await
            .map_err(|e| err(&format!("store {id}"), e))?;
        let metrics_addr = format!("127.0.0.1:{}", config.port + 10 + id as u16);
        let metrics = tokio::net::TcpListener::bind(&metrics_addr)
            .await
            .map_err(|e| err(&format!("cannot listen on {metrics_addr}"), e))?;
        let store = node.store.clone();
        metric_tasks.push(tokio::spawn(infra::prometheus::serve(
            metrics,
            std::sync::Arc::new(move || store_node::metrics::render(&store)),
            std::future::pending(),
        )));
        stores.push(node);
    }

    let ready = async {
        let admin = pki.security(&Identity::User("admin".into()))?;
        demo(&admin, &mc_addr).await?;
        println!("mc playground ready");
        println!("  MC:     {mc_addr}");
        for s in &stores {
            println!("  store {}: {}", s.store.id(), s.addr);
        }
        println!(
            "  metrics: http://127.0.0.1:{}/metrics (MC), ports {}-{} (stores)",
            config.port + 10,
            config.port + 11,
            config.port + 13
        );
        println!("  data:   {}", config.data_dir.display());
        println!();
        println!("Try:");
        // The mcctl built next to this binary, when there is one (`./dev playground`
        // builds both).
        let mcctl = std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.join("mcctl")))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "mcctl".into());
        let user = |ext: &str| {
            certs
                .join(format!("user-admin.{ext}"))
                .display()
                .to_string()
        };
        println!("  TLS is on: mcctl finds the CA and the admin's certificate through");
        println!(
            "  export MC_TLS_CA={} MC_TLS_CERT={} MC_TLS_KEY={}",
            certs.join("ca.pem").display(),
            user("pem"),
            user("key")
        );
        let m = format!("{mcctl} --endpoint {mc_addr}");
        println!("  {m} store list");
        println!("  {m} object tree");
        println!("  {m} rg list");
        println!("  {m} job migrate --rg 1 --from 1 --to 2 --watch   # refused: typed reason");
        println!("  {m} history --kind audit");
        println!();
        println!(
            "Ctrl-C stops everything; a restart reuses {}.",
            config.data_dir.display()
        );
        Ok::<(), McError>(())
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let outcome = tokio::select! {
        r = ready => match r {
            Ok(()) => {
                (&mut shutdown).await;
                Ok(())
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(e)
            }
        },
        _ = &mut shutdown => Ok(()),
    };
    println!("mc playground stopping");
    for m in metric_tasks {
        m.abort();
    }
    for s in stores {
        s.stop().await;
    }
    let _ = stop_tx.send(true);
    match mc.await {
        Ok(r) => r?,
        Err(e) => return Err(err("mc task", e)),
    }
    println!("mc playground stopped");
    outcome
}

/// The playground's CA and certificates under `data_dir/certs`, made at its first start.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn ensure(dir: &std::path::Path) -> Result<Self> {
        if !dir.join("ca.pem").exists() {
            let ca = Authority::generate("playground").map_err(|e| err("certificates", e))?;
            ca.write_ca(dir).map_err(|e| err("certificates", e))?;
            let hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| h.to_string()).collect();
            let mut who = vec![Identity::Mc(1), Identity::User("admin".into())];
            who.extend((1..=3).map(Identity::Store));
            for w in &who {
                ca.write_issued(dir, w, &hosts)
                    .map_err(|e| err("certificates", e))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn security(&self, who: &Identity) -> Result<Security> {
        let stem = who.file_stem();
        Security::from_files(
            &self.dir.join("ca.pem"),
            &self.dir.join(format!("{stem}.pem")),
            &self.dir.join(format!("{stem}.key")),
        )
        .map_err(|e| err("certificates", e))
    }
}

/// Waits for the stores, then creates the demo database and table (idempotent).
async fn demo(security: &Security, mc_addr: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut cluster = loop {
        match security.connect(mc_addr).await {
            Ok(c) => break ClusterServiceClient::new(c),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "MC not up yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(err("MC", e)),
        }
    };
    loop {
        let up = cluster
            .list_stores(ListStoresRequest::default())
            .await
            .map(|r| {
                r.into_inner()
                    .stores
                    .iter()
                    .filter(|s| s.state == StoreState::Up as i32)
                    .count()
            })
            .unwrap_or(0);
        if up >= 3 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(err("stores", "not registered within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut meta =
        MetaServiceClient::new(security.connect(mc_addr).await.map_err(|e| err("MC", e))?);
    meta.create_database(CreateDatabaseRequest {
        request_id: "playground-demo".into(),
        name: "demo".into(),
    })
    .await
    .map_err(|e| err("create demo database", e.message()))?;
    let index = |name: &str| IndexSpec {
        name: name.into(),
        ..Default::default()
    };
    meta.create_table(CreateTableRequest {
        request_id: "playground-demo-orders".into(),
        database: Some(ObjectRef {
            target: Some(object_ref::Target::Path("demo".into())),
        }),
        name: "orders".into(),
        indexes: vec![index("by_customer"), index("by_date")],
        ..Default::default()
    })
    .await
    .map_err(|e| err("create demo table", e.message()))?;
    Ok(())
}
