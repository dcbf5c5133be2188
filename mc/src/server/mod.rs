//! `mc serve`: one member of the MC group. Every MC keeps a replica of the catalog (openraft
//! on RocksDB) and serves the Raft traffic of the group; the one that leads also runs the job
//! engine, the live cluster view and the client services (see [`leader`]). Client calls that
//! reach a follower are forwarded to the leader (see [`forward`]).
//!
//! The leader's Raft term is the `mc_term` every step carries, so stores refuse steps from a
//! deposed leader that might still be running somewhere. When an MC takes up a term, every
//! unfinished job is recovered and its in-flight step re-sent; the stores answer repeats from
//! their idempotency records.

pub mod forward;
pub mod leader;
pub mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use proto::v1::HeartbeatIntervals;
use proto::v1::raft_service_server::RaftServiceServer;
use tonic::transport::server::TcpIncoming;

use crate::catalog::raft::network::MAX_MESSAGE;
use crate::catalog::raft::{CatalogOptions, RaftCatalog};
use crate::cluster::LivenessConfig;
use crate::error::{McError, Result};
use forward::ForwardLayer;
use leader::{Leadership, TermConfig};

/// Raft timing of the MC group. A failover takes one to two election timeouts: followers
/// honour the dead leader's lease (`election_max_ms`) before they vote for another.
#[derive(Clone, Copy, Debug)]
pub struct McRaftTuning {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl Default for McRaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 800,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub id: u64,
    pub listen: SocketAddr,
    /// The address other MCs, stores and clients dial.
    pub advertise: String,
    /// The other members of the group: id → address. Empty for a one-MC group.
    pub peers: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    pub liveness: LivenessConfig,
    pub store_heartbeat_ms: u32,
    pub rg_heartbeat_ms: u32,
    pub raft: McRaftTuning,
    /// TLS and this MC's identity (`Security::plaintext()` only with `--insecure`).
    pub security: infra::security::Security,
    /// Created as an admin when the catalog has no users yet.
    pub admin_user: Option<String>,
    /// Serve Prometheus metrics over HTTP here (`GET /metrics`).
    pub metrics_listen: Option<SocketAddr>,
    /// How long a DDL call waits for its request before answering Unavailable.
    pub ddl_wait_ms: u64,
    /// A new affinity group joins an existing RG while the RG then holds at most this many
    /// regions (packing small tables); 0 or 1: every group gets an RG of its own.
    pub ddl_rg_max_regions: usize,
    /// How stores' reports that disagree with the catalog are judged.
    pub evidence: crate::cluster::evidence::EvidenceConfig,
    /// Audit records older than this are deleted (`--audit-retention-days`).
    pub audit_retention_ms: u64,
}

impl ServeConfig {
    /// A one-MC group with id 1 listening (and advertised) on `listen`, with TLS and the
    /// certificate of MC 1 from the process's test CA: what tests and benchmarks start. Built
    /// only for them (feature `testing`): `mc serve` takes its config from its flags.
    #[cfg(any(test, feature = "testing"))]
    pub fn single(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            id: 1,
            listen,
            advertise: listen.to_string(),
            peers: BTreeMap::new(),
            data_dir,
            liveness: LivenessConfig::default(),
            store_heartbeat_ms: 10_000,
            rg_heartbeat_ms: 10_000,
            raft: McRaftTuning::default(),
            security: infra::security::pki::TestPki::shared()
                .security(&infra::security::Identity::Mc(1)),
            admin_user: Some("admin".into()),
            metrics_listen: None,
            ddl_wait_ms: 60_000,
            ddl_rg_max_regions: crate::objects::plan::DdlConfig::default().rg_max_regions,
            evidence: Default::default(),
            audit_retention_ms: crate::history::AUDIT_RETENTION_MS,
        }
    }
}

/// Parses `ID=HOST:PORT` members, as `--peers` takes them.
pub fn parse_peers(items: &[String]) -> Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for item in items {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| McError::invalid("peers", format!("`{item}` is not ID=HOST:PORT")))?;
        let id: u64 = id.trim().parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            McError::invalid("peers", format!("`{id}` is not an MC id (1 or more)"))
        })?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(McError::invalid(
                "peers",
                format!("`{addr}` is not HOST:PORT"),
            ));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(McError::invalid(
                "peers",
                format!("MC {id} is listed twice"),
            ));
        }
    }
    Ok(peers)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    match config.security.me() {
        None | Some(infra::security::Identity::Mc(_)) => {}
        Some(other) => {
            return Err(McError::invalid(
                "tls_cert",
                format!("the certificate names {other}, not an MC"),
            ));
        }
    }
    if let Some(infra::security::Identity::Mc(n)) = config.security.me()
        && *n != config.id
    {
        return Err(McError::invalid(
            "tls_cert",
            format!("the certificate names mc/{n}, but this is MC {}", config.id),
        ));
    }
    let mut members = config.peers.clone();
    match members.get(&config.id) {
        Some(addr) if *addr != config.advertise => {
            return Err(McError::invalid(
                "peers",
                format!(
                    "lists MC {} at {addr}, but it advertises {}",
                    config.id, config.advertise
                ),
            ));
        }
        _ => {
            members.insert(config.id, config.advertise.clone());
        }
    }
    let catalog = RaftCatalog::open(CatalogOptions {
        id: config.id,
        members,
        data_dir: config.data_dir.join("catalog"),
        sync: true,
        heartbeat_ms: config.raft.heartbeat_ms,
        election_min_ms: config.raft.election_min_ms,
        election_max_ms: config.raft.election_max_ms,
        security: config.security.clone(),
        ..CatalogOptions::single(config.id, config.advertise.clone(), PathBuf::new())
    })
    .await?;
    let leadership = Arc::new(Leadership::default());
    let follower = tokio::spawn(leader::follow(
        catalog.clone(),
        leadership.clone(),
        TermConfig {
            liveness: config.liveness.clone(),
            intervals: HeartbeatIntervals {
                store_heartbeat_ms: config.store_heartbeat_ms,
                rg_heartbeat_ms: config.rg_heartbeat_ms,
            },
            admin_user: config.admin_user.clone(),
            ddl_wait: std::time::Duration::from_millis(config.ddl_wait_ms),
            ddl_rg_max_regions: config.ddl_rg_max_regions,
            security: config.security.clone(),
            evidence: config.evidence.clone(),
            audit_retention_ms: config.audit_retention_ms,
        },
    ));
    let addr = listener.local_addr().map_err(McError::internal)?;
    println!("mc ready addr={addr} id={}", config.id);
    tracing::info!(%addr, id = config.id, "mc serving");
    let raft_service = RaftServiceServer::new(catalog.service())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let metrics_task = match config.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| McError::invalid("metrics_listen", format!("{addr}: {e}")))?;
            println!("mc metrics addr={}", listener.local_addr().unwrap_or(addr));
            let (catalog, leadership) = (catalog.clone(), leadership.clone());
            let render = Arc::new(move || {
                metrics::render(&catalog, leadership.current().map(|t| t.metrics.clone()))
            });
            Some(tokio::spawn(infra::prometheus::serve(
                listener,
                render,
                std::future::pending(),
            )))
        }
        None => None,
    };
    let (health, reflection) = infra::introspection::services(&[
        "mc.v1.MetaService",
        "mc.v1.JobService",
        "mc.v1.ClusterService",
        "mc.v1.HeartbeatService",
        "mc.v1.RaftService",
    ])
    .await;
    let server = match config.security.server() {
        Ok(server) => server,
        Err(e) => {
            follower.abort();
            if let Some(m) = metrics_task {
                m.abort();
            }
            leadership.step_down();
            drop(leadership);
            catalog.shutdown().await;
            release(catalog).await;
            return Err(McError::invalid("tls", e.to_string()));
        }
    };
    let result = server
        .layer(ForwardLayer {
            catalog: catalog.clone(),
            leadership: leadership.clone(),
            security: config.security.clone(),
        })
        .add_service(raft_service)
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    follower.abort();
    if let Some(m) = metrics_task {
        m.abort();
    }
    leadership.step_down();
    drop(leadership);
    catalog.shutdown().await;
    release(catalog).await;
    result.map_err(|e| McError::internal(format!("server: {e}")))
}

/// Waits until the catalog's RocksDB is closed, so that its directory is free when `serve`
/// returns: the tasks just stopped (Raft's, the leader's, the WAL syncer's) let go of it as the
/// runtime drops them, and an MC started again in the same process (a test, an embedding
/// tool) found the directory still locked when it came first.
async fn release(catalog: Arc<RaftCatalog>) {
    let held = catalog.storage();
    drop(catalog);
    let started = std::time::Instant::now();
    while held.strong_count() > 0 {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            tracing::warn!(
                holders = held.strong_count(),
                "the catalog's storage is still open 30 s after the server stopped"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tracing::debug!(waited = ?started.elapsed(), "catalog released");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_are_named() {
        let p = parse_peers(&["1=10.0.0.1:6000".into(), " 2 = mc2:6000 ".into()]).unwrap();
        assert_eq!(p[&1], "10.0.0.1:6000");
        assert_eq!(p[&2], "mc2:6000");
        for (bad, says) in [
            ("10.0.0.1:6000", "is not ID=HOST:PORT"),
            ("one=10.0.0.1:6000", "is not an MC id"),
            ("0=10.0.0.1:6000", "is not an MC id"),
            ("1=10.0.0.1", "is not HOST:PORT"),
        ] {
            match parse_peers(&[bad.into()]) {
                Err(McError::InvalidArgument { field, reason }) => {
                    assert_eq!(field, "peers");
                    assert!(reason.contains(says), "{bad}: {reason}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let twice = parse_peers(&["1=a:1".into(), "1=b:2".into()]).unwrap_err();
        assert!(twice.to_string().contains("listed twice"), "{twice}");
    }

    #[tokio::test]
    async fn a_member_list_naming_this_mc_at_another_address_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = std::env::temp_dir().join(format!("mc-peers-test-{}", std::process::id()));
        let config = ServeConfig {
            peers: parse_peers(&["1=127.0.0.1:1".into()]).unwrap(),
            ..ServeConfig::single(addr, dir)
        };
        let err = serve(config, listener, async {}).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("lists MC 1 at 127.0.0.1:1, but it advertises"),
            "{err}"
        );
    }
}
