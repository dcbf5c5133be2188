//! `mc serve`: one MC with its catalog on local RocksDB (fsync, group commit), the live
//! cluster view fed by heartbeats, the job engine driving jobs against stores over gRPC, and
//! the Heartbeat and Job services.
//!
//! Every start raises the MC term stored in the catalog, so stores refuse steps from an
//! earlier incarnation that might still be running somewhere. Unfinished jobs are recovered
//! and driven again; their in-flight steps are re-sent and answered from the stores'
//! idempotency records.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::v1::HeartbeatIntervals;
use proto::v1::cluster_service_server::ClusterServiceServer;
use proto::v1::heartbeat_service_server::HeartbeatServiceServer;
use proto::v1::job_service_server::JobServiceServer;
use tonic::transport::server::TcpIncoming;

use crate::api::cluster::ClusterApi;
use crate::api::heartbeat::HeartbeatApi;
use crate::api::jobs::JobApi;
use crate::catalog::rocks::RocksCatalog;
use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::{Clock, SystemClock};
use crate::cluster::{LiveCluster, LivenessConfig};
use crate::error::{McError, Result};
use crate::jobs::engine::{Engine, EngineConfig};
use crate::jobs::grpc_executor::GrpcExecutor;
use crate::jobs::runner::JobRunner;

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub liveness: LivenessConfig,
    pub store_heartbeat_ms: u32,
    pub rg_heartbeat_ms: u32,
}

/// Raises and persists the MC term; returns the new one.
async fn next_term(catalog: &impl CatalogStore) -> Result<u64> {
    let term: u64 = match catalog.get(b"meta/term")? {
        Some(b) => String::from_utf8_lossy(&b)
            .parse()
            .map_err(|_| McError::Catalog("bad term record".into()))?,
        None => 0,
    };
    let mut batch = WriteBatch::default();
    batch.put(&b"meta/term"[..], (term + 1).to_string());
    catalog.write(batch).await?;
    Ok(term + 1)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| McError::Catalog(e.to_string()))?;
    let catalog = Arc::new(RocksCatalog::open(&config.data_dir.join("catalog"), true)?);
    let term = next_term(&catalog).await?;
    let cluster = Arc::new(LiveCluster::new(config.liveness.clone()));
    let engine_config = EngineConfig {
        mc_term: term,
        max_attempts: 30,
        backoff_max_ms: 2_000,
        ..Default::default()
    };
    let engine = Arc::new(Engine::new(
        catalog.clone(),
        GrpcExecutor::new(cluster.clone()),
        SystemClock,
        engine_config,
    ));
    if let Some(saved) = catalog.get(crate::api::cluster::LIMITS_KEY)? {
        let limits = serde_json::from_slice(&saved)
            .map_err(|e| McError::Catalog(format!("saved limits: {e}")))?;
        engine.set_limits(limits);
    }
    let runner = JobRunner::new(engine.clone());
    for id in engine.recover()? {
        runner.drive(id);
    }
    let ticker = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                for (store, state) in cluster.tick(SystemClock.now_ms()) {
                    tracing::warn!(store, ?state, "store liveness changed");
                }
            }
        })
    };
    let intervals = HeartbeatIntervals {
        store_heartbeat_ms: config.store_heartbeat_ms,
        rg_heartbeat_ms: config.rg_heartbeat_ms,
    };
    let addr = listener
        .local_addr()
        .map_err(|e| McError::Catalog(e.to_string()))?;
    println!("mc ready addr={addr} term={term}");
    tracing::info!(%addr, term, "mc serving");
    let result = tonic::transport::Server::builder()
        .add_service(HeartbeatServiceServer::new(HeartbeatApi::new(
            cluster.clone(),
            SystemClock,
            intervals,
            term,
        )))
        .add_service(JobServiceServer::new(JobApi::new(runner, cluster.clone())))
        .add_service(ClusterServiceServer::new(ClusterApi::new(
            cluster,
            catalog,
            engine.clone(),
            addr.to_string(),
            term,
        )))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    ticker.abort();
    result.map_err(|e| McError::Catalog(format!("server: {e}")))
}
