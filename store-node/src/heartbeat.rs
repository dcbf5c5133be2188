//! Reports to the MC: registration, store heartbeats, and RG heartbeats from the RGs this
//! store leads, batched on one client stream. The MC being unreachable never stops the store
//! from serving; the reporter retries with backoff and resumes when the MC is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use proto::v1::heartbeat_service_client::HeartbeatServiceClient;
use proto::v1::{
    KeyRange, RegionEpoch, RegionStats, RegisterStoreRequest, Replica as ReplicaProto, ReplicaRole,
    RgHeartbeat, RgHeartbeatBatch, StoreHeartbeatRequest, StoreStats,
};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::store::Store;

#[derive(Clone, Debug)]
pub struct HeartbeatOptions {
    pub mc_endpoints: Vec<String>,
    pub labels: HashMap<String, String>,
    pub capacity_bytes: u64,
    pub store_interval: Duration,
    pub rg_interval: Duration,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs until `shutdown` flips to true.
pub async fn run(
    store: Arc<Store>,
    options: HeartbeatOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    if options.mc_endpoints.is_empty() {
        return;
    }
    let mut endpoint_idx = 0;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let endpoint = &options.mc_endpoints[endpoint_idx % options.mc_endpoints.len()];
        endpoint_idx += 1;
        let mut registered = false;
        let result = match connect(&store, endpoint).await {
            Ok(client) => session(&store, &options, client, &mut shutdown, &mut registered).await,
            Err(e) => Err(e),
        };
        // A session that got as far as registering reached a working MC: the next failure
        // is a new one, so its retry starts fast again (an ever-growing backoff made stores
        // miss the MC's disconnect threshold after a few leader changes).
        if registered {
            backoff = Duration::from_millis(100);
        }
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(endpoint, error = %e, "MC unreachable; store keeps serving and retries");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn connect(store: &Store, endpoint: &str) -> Result<HeartbeatServiceClient<Channel>, String> {
    // No channel-wide timeout: the RG heartbeat stream lives as long as the session, and a
    // timeout on the channel cut it every few seconds (each cut cost a re-registration and a
    // gap in heartbeats). Unary calls carry their own deadline; a dead MC is noticed by
    // HTTP/2 keepalive.
    let channel = store
        .security()
        .endpoint(endpoint)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(HeartbeatServiceClient::new(channel))
}

/// How long a registration or a store heartbeat may take before the session starts over.
const UNARY_DEADLINE: Duration = Duration::from_secs(5);

fn with_deadline<T>(store: &Store, message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = store.transport.request(message);
    request.set_timeout(deadline);
    request
}

/// Registers, then reports until an RPC fails (Err) or shutdown (Ok).
async fn session(
    store: &Arc<Store>,
    options: &HeartbeatOptions,
    mut client: HeartbeatServiceClient<Channel>,
    shutdown: &mut watch::Receiver<bool>,
    registered: &mut bool,
) -> Result<(), String> {
    let reply = client
        .register_store(with_deadline(
            store,
            RegisterStoreRequest {
                store_id: store.id(),
                address: store.advertise().to_string(),
                labels: options.labels.clone(),
                capacity_bytes: options.capacity_bytes,
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            UNARY_DEADLINE,
        ))
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    *registered = true;
    store
        .heartbeat_sessions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if reply.store_id != 0 {
        store
            .assign_id(reply.store_id)
            .await
            .map_err(|e| e.to_string())?;
    }
    // A store joins the cluster of the first MC that registers it; an MC of another cluster
    // (a wiped and re-created one) is not reported to.
    store
        .adopt_cluster_id(reply.cluster_id)
        .map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<RgHeartbeatBatch>(4);
    let mut stream_client = client.clone();
    let stream_request = store
        .transport
        .request(tokio_stream::wrappers::ReceiverStream::new(rx));
    let stream = tokio::spawn(async move { stream_client.rg_heartbeat(stream_request).await });
    let mut store_tick = tokio::time::interval(options.store_interval);
    let mut rg_tick = tokio::time::interval(options.rg_interval);
    loop {
        tokio::select! {
            _ = store_tick.tick() => {
                let request = StoreHeartbeatRequest {
                    store_id: store.id(),
                    stats: Some(store_stats(store, options)),
                    sent_unix_ms: now_ms(),
                    hosted_rg_ids: store.replicas().iter().map(|r| r.rg).collect(),
                    unhealthy: store.unhealthy().unwrap_or_default(),
                };
                client
                    .store_heartbeat(with_deadline(store, request, UNARY_DEADLINE))
                    .await
                    .map_err(|s| s.message().to_string())?;
            }
            _ = rg_tick.tick() => {
                let batch = RgHeartbeatBatch { store_id: store.id(), heartbeats: rg_heartbeats(store), sent_unix_ms: now_ms() };
                if tx.send(batch).await.is_err() {
                    return Err("RG heartbeat stream closed".into());
                }
            }
            _ = shutdown.changed() => {
                drop(tx);
                let _ = stream.await;
                return Ok(());
            }
        }
        if stream.is_finished() {
            return Err("RG heartbeat stream ended".into());
        }
    }
}

pub fn store_stats(store: &Store, options: &HeartbeatOptions) -> StoreStats {
    let replicas = store.replicas();
    let leaders = replicas
        .iter()
        .filter(|r| r.raft.as_leader().is_ok())
        .count();
    let used = store.engine.approximate_size(b"", b"");
    StoreStats {
        capacity_bytes: options.capacity_bytes,
        used_bytes: used,
        available_bytes: options.capacity_bytes.saturating_sub(used),
        replica_count: replicas.len() as u32,
        leader_count: leaders as u32,
        snapshots_sending: 0,
        snapshots_receiving: store.snapshots_receiving(),
        read_bytes_per_sec: 0,
        write_bytes_per_sec: 0,
        read_ops_per_sec: 0,
        write_ops_per_sec: 0,
        uptime_secs: store.uptime().as_secs(),
    }
}

/// Heartbeats of the RGs this store leads; region counters are reset by reading them.
pub fn rg_heartbeats(store: &Store) -> Vec<RgHeartbeat> {
    let mut out = Vec::new();
    for replica in store.replicas() {
        if replica.raft.as_leader().is_err() {
            continue;
        }
        let metrics = replica.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, _)| ReplicaProto {
                store_id: *id,
                role: if voters.contains(id) {
                    ReplicaRole::Voter as i32
                } else {
                    ReplicaRole::Learner as i32
                },
                offline: false,
            })
            .collect();
        let last = metrics.last_log_index.unwrap_or(0);
        let conf_ver: u64 = store
            .engine
            .get_meta(&crate::engine::keys::rg_record(replica.rg, "conf_ver"))
            .ok()
            .flatten()
            .unwrap_or(0);
        let lagging_store_ids = metrics
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .filter(|(_, matched)| {
                        matched.as_ref().map(|l| l.index).unwrap_or(0) + 64 < last
                    })
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        let regions = store
            .regions()
            .of_rg(replica.rg)
            .into_iter()
            .map(|e| {
                let (read_bytes, write_bytes, read_ops, write_ops) = e.stats.take();
                let (size_bytes, keys) = region_size(store, &e.region.start, &e.region.end);
                RegionStats {
                    region_id: e.region.id,
                    object_id: e.region.object_id,
                    range: Some(KeyRange {
                        start: e.region.start.clone(),
                        end: e.region.end.clone(),
                    }),
                    epoch: Some(RegionEpoch {
                        version: e.region.version,
                        conf_ver,
                    }),
                    size_bytes,
                    keys,
                    read_bytes,
                    write_bytes,
                    read_ops,
                    write_ops,
                }
            })
            .collect();
        out.push(RgHeartbeat {
            rg_id: replica.rg,
            leader_store_id: store.id(),
            term: metrics.current_term,
            applied_index: store.applied_index(replica.rg),
            commit_index: metrics
                .local_committed
                .as_ref()
                .map(|l| l.index)
                .unwrap_or(0),
            conf_ver,
            members,
            regions,
            lagging_store_ids,
        });
    }
    out
}

/// Regions below this size are counted exactly at each heartbeat; larger ones are estimated.
const EXACT_COUNT_BYTES: u64 = 8 << 20;

/// Bytes and keys of a region: RocksDB's approximate on-disk size, and an exact key count for
/// small regions (whose data may still sit in memtables, which the size estimate misses) or
/// `size / average entry size of the store` for large ones, so a heartbeat never scans a
/// large region.
fn region_size(store: &Store, start: &[u8], end: &[u8]) -> (u64, u64) {
    let approx = store.engine.approximate_size(start, end);
    if approx < EXACT_COUNT_BYTES {
        return store
            .engine
            .count_range(start, end)
            .map(|(k, b)| (b.max(approx), k))
            .unwrap_or((approx, 0));
    }
    let db = store.engine.db();
    let cf = store.engine.cf(crate::engine::CF_DATA);
    let total_keys = db
        .property_int_value_cf(cf, "rocksdb.estimate-num-keys")
        .ok()
        .flatten()
        .unwrap_or(0);
    let total_bytes = db
        .property_int_value_cf(cf, "rocksdb.total-sst-files-size")
        .ok()
        .flatten()
        .unwrap_or(0);
    let per_key = total_bytes.checked_div(total_keys).unwrap_or(1).max(1);
    (approx, approx / per_key)
}
