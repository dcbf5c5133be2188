//! Wires a store to its gRPC services on one listener and runs until shutdown.

use std::sync::Arc;
use std::time::Duration;

use proto::v1::kv_service_server::KvServiceServer;
use proto::v1::raft_service_server::RaftServiceServer;
use proto::v1::store_service_server::StoreServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::error::Result;
use crate::heartbeat::{self, HeartbeatOptions};
use crate::kv::KvServer;
use crate::security::{GuardLayer, Identity, Peer, Policy, Security};
use crate::steps::StepServer;
use crate::store::{Store, StoreOptions};
use crate::transport::service::RaftServer;

/// Largest gRPC message: an AppendEntries of 32 large entries, or one BatchWrite.
pub const MAX_MESSAGE: usize = 256 << 20;

/// Largest KvService request: one write of `kv::MAX_WRITE_BYTES`, with room for its keys'
/// framing and context.
pub const MAX_KV_MESSAGE: usize = crate::kv::MAX_WRITE_BYTES as usize + (1 << 20);

/// Who may call a store: StoreService only MCs, RaftService only stores (and, in the
/// service, only members of the RG a message is for), KvService MCs and the users the MC
/// names as holding `data.read` or `data.write` (see `access`). MCs and stores must be of
/// this store's cluster.
struct StorePolicy {
    store: Arc<Store>,
}

impl Policy for StorePolicy {
    fn admit(
        &self,
        path: &str,
        peer: &Peer,
        headers: &http::HeaderMap,
    ) -> std::result::Result<(), tonic::Status> {
        let who = match peer {
            Peer::Unchecked => return Ok(()),
            Peer::Anonymous => {
                return Err(tonic::Status::unauthenticated(format!(
                    "store {} takes calls only with a client certificate of the cluster CA",
                    self.store.id()
                )));
            }
            Peer::Authenticated(who) => who,
        };
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let allowed = match service {
            "mc.v1.StoreService" => matches!(who, Identity::Mc(_)),
            "mc.v1.RaftService" => matches!(who, Identity::Store(_)),
            "mc.v1.KvService" => match who {
                Identity::User(user) => return self.admit_user(path, user),
                // An MC reads for its own checks; a store has no business with rows it
                // does not replicate.
                Identity::Mc(_) => true,
                Identity::Store(_) => false,
            },
            _ => false,
        };
        if !allowed {
            let only = match service {
                "mc.v1.StoreService" => "MC certificates",
                "mc.v1.RaftService" => "store certificates",
                "mc.v1.KvService" => "MCs and users granted data.read or data.write",
                _ => "nobody",
            };
            let service: String = service.chars().take(64).collect();
            return Err(tonic::Status::permission_denied(format!(
                "{service} accepts {only}; the caller is {who}"
            )));
        }
        self.store
            .check_cluster(crate::security::cluster_id_of(headers), who)
            .map_err(|e| e.to_proto().into_status())
    }
}

impl StorePolicy {
    /// A user reads or writes rows only as far as its roles grant, by the MC's last list.
    fn admit_user(&self, path: &str, user: &str) -> std::result::Result<(), tonic::Status> {
        use crate::access::{DataPermission, Refusal};
        let method = path.rsplit('/').next().unwrap_or("");
        let Some(permission) = DataPermission::of_method(method) else {
            return Err(tonic::Status::permission_denied(format!(
                "KvService has no method `{}`",
                method.chars().take(64).collect::<String>()
            )));
        };
        match self.store.data_access.check(user, permission) {
            Ok(()) => Ok(()),
            Err(Refusal::NotLearned) => Err(tonic::Status::unavailable(format!(
                "store {} has not yet learned from the MC who may read and write data; retry \
                 once it has registered",
                self.store.id()
            ))),
            Err(Refusal::NotGranted) => Err(tonic::Status::permission_denied(format!(
                "user/{user} lacks permission {} on store {} (its roles in the MC's catalog \
                 grant no such access, or it is no user there)",
                permission.name(),
                self.store.id()
            ))),
        }
    }
}

/// A running store node: its store, its serving task and its heartbeat reporter.
pub struct StoreNode {
    pub store: Arc<Store>,
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl StoreNode {
    /// Opens the store and serves KvService, StoreService and RaftService on `listener`.
    pub async fn start(
        listener: TcpListener,
        options: StoreOptions,
        heartbeat: HeartbeatOptions,
    ) -> Result<Self> {
        let addr = listener.local_addr()?;
        let store = Store::open(options).await?;
        let (shutdown, rx) = watch::channel(false);
        let mut stop = rx.clone();
        let (health, reflection) = crate::introspection::services(&[
            "mc.v1.KvService",
            "mc.v1.StoreService",
            "mc.v1.RaftService",
        ])
        .await;
        // No server-wide timeout: it cut snapshot streams and long steps (a catch-up of a large
        // RG) at 120 s. Every caller sets its own deadline (grpc-timeout), which the server
        // honours; a dead client is noticed by keepalive (set by `Security::server`).
        let server = store
            .security()
            .server()
            .map_err(|e| crate::error::StoreError::InvalidArgument {
                field: "tls",
                reason: e.to_string(),
            })?
            .http2_adaptive_window(Some(true))
            .layer(GuardLayer::new(
                store.security().clone(),
                Arc::new(StorePolicy {
                    store: store.clone(),
                }),
            ))
            .add_service(
                // A write larger than the store takes is refused before it is decoded: a
                // client's 256 MiB message would otherwise be read whole first.
                KvServiceServer::new(KvServer::new(store.clone()))
                    .max_decoding_message_size(MAX_KV_MESSAGE),
            )
            .add_service(
                StoreServiceServer::new(StepServer::new(store.clone()))
                    .max_decoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                RaftServiceServer::new(RaftServer::new(store.clone()))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            );
        let server = tokio::spawn(server);
        let heartbeats = tokio::spawn(heartbeat::run(store.clone(), heartbeat, rx));
        tracing::info!(store_id = store.id(), %addr, "store node serving");
        Ok(Self {
            store,
            addr,
            shutdown,
            server,
            heartbeats,
        })
    }

    /// A store on a fresh loopback port with its data under `data_dir/s{id}`, with TLS and a
    /// certificate of the process's test CA: what tests and benchmarks start.
    pub async fn start_on_loopback(
        id: u64,
        data_dir: &std::path::Path,
        raft: crate::store::RaftTuning,
        mc_endpoints: Vec<String>,
        heartbeat_interval: Duration,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_listening(
            listener,
            id,
            data_dir,
            raft,
            mc_endpoints,
            heartbeat_interval,
            crate::security::pki::TestPki::shared().security(&Identity::Store(id)),
        )
        .await
    }

    /// `start_on_loopback` at a given address: a store restarted where its RG peers know it.
    pub async fn start_at(
        addr: std::net::SocketAddr,
        id: u64,
        data_dir: &std::path::Path,
        raft: crate::store::RaftTuning,
        mc_endpoints: Vec<String>,
        heartbeat_interval: Duration,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::start_listening(
            listener,
            id,
            data_dir,
            raft,
            mc_endpoints,
            heartbeat_interval,
            crate::security::pki::TestPki::shared().security(&Identity::Store(id)),
        )
        .await
    }

    /// A store on `listener` with the given security: `start_on_loopback` and `start_at` give
    /// it a certificate of the process's test CA; a plaintext baseline passes
    /// `Security::plaintext()`.
    pub async fn start_listening(
        listener: TcpListener,
        id: u64,
        data_dir: &std::path::Path,
        raft: crate::store::RaftTuning,
        mc_endpoints: Vec<String>,
        heartbeat_interval: Duration,
        security: Security,
    ) -> Result<Self> {
        let advertise = listener.local_addr()?.to_string();
        let options = StoreOptions {
            store_id: id,
            data_dir: data_dir.join(format!("s{id}")),
            advertise,
            raft,
            sync: true,
            snapshot_rate: 0,
            security,
        };
        let heartbeat = HeartbeatOptions {
            mc_endpoints,
            labels: [
                ("zone".to_string(), format!("z{id}")),
                ("host".to_string(), format!("h{id}")),
            ]
            .into(),
            capacity_bytes: 100 << 30,
            store_interval: heartbeat_interval,
            rg_interval: heartbeat_interval,
        };
        Self::start(listener, options, heartbeat).await
    }

    /// Hands every RG this store leads to another voter (at most `limit`), then stops: what a
    /// store given SIGTERM does, so a restart costs no region an election timeout.
    pub async fn stop_gracefully(self, limit: Duration) {
        crate::handover::hand_over_leaders(&self.store, limit).await;
        self.stop().await;
    }

    /// Stops serving, stops every replica and flushes the WAL.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        let _ = self.heartbeats.await;
        self.store.shutdown().await;
    }
}
