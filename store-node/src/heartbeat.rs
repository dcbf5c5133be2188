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

use crate::rg::region_index::Measure;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct HeartbeatOptions {
    pub mc_endpoints: Vec<String>,
    pub labels: HashMap<String, String>,
    /// 0: the filesystem's, by statvfs.
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
                capacity_bytes: store_stats(store, options).capacity_bytes,
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
    if let Some(access) = &reply.data_access {
        store.data_access.set(&store.engine, access);
    }
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
                let reply = client
                    .store_heartbeat(with_deadline(store, request, UNARY_DEADLINE))
                    .await
                    .map_err(|s| s.message().to_string())?
                    .into_inner();
                if let Some(access) = &reply.data_access {
                    store.data_access.set(&store.engine, access);
                }
            }
            _ = rg_tick.tick() => {
                for heartbeats in in_batches(rg_heartbeats(store), RG_BATCH_BYTES) {
                    let batch = RgHeartbeatBatch { store_id: store.id(), heartbeats, sent_unix_ms: now_ms() };
                    if tx.send(batch).await.is_err() {
                        return Err("RG heartbeat stream closed".into());
                    }
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

/// RG heartbeats go to the MC in batches of at most this many encoded bytes: a store leading
/// thousands of RGs sent them all in one message, and past the MC's 4 MiB message limit the
/// stream failed, and with it every report of the store.
pub const RG_BATCH_BYTES: usize = 1 << 20;

/// Splits heartbeats into batches of at most `limit` encoded bytes (one larger heartbeat goes
/// alone), in order.
pub fn in_batches(heartbeats: Vec<RgHeartbeat>, limit: usize) -> Vec<Vec<RgHeartbeat>> {
    use prost::Message;
    let mut out: Vec<Vec<RgHeartbeat>> = Vec::new();
    let mut bytes = 0usize;
    for hb in heartbeats {
        // Field tag and length prefix: a few bytes each.
        let len = hb.encoded_len() + 8;
        match out.last_mut() {
            Some(batch) if bytes + len <= limit => batch.push(hb),
            _ => {
                bytes = 0;
                out.push(vec![hb]);
            }
        }
        bytes += len;
    }
    out
}

/// The store's capacity and use: capacity and free space from the filesystem unless
/// configured (`capacity_bytes`), used bytes from RocksDB (SST files and memtables), traffic
/// rates since the last call.
pub fn store_stats(store: &Store, options: &HeartbeatOptions) -> StoreStats {
    let replicas = store.replicas();
    let leaders = replicas
        .iter()
        .filter(|r| r.raft.as_leader().is_ok())
        .count();
    let used = store.engine.used_bytes();
    let (capacity, available) = match options.capacity_bytes {
        0 => crate::engine::size::filesystem(&store.options().data_dir).unwrap_or((0, 0)),
        configured => (configured, configured.saturating_sub(used)),
    };
    let rates = store.traffic.rates();
    StoreStats {
        capacity_bytes: capacity,
        used_bytes: used,
        available_bytes: available,
        replica_count: replicas.len() as u32,
        leader_count: leaders as u32,
        snapshots_sending: store.transport.snapshots_sending(),
        snapshots_receiving: store.snapshots_receiving(),
        read_bytes_per_sec: rates.read_bytes,
        write_bytes_per_sec: rates.write_bytes,
        read_ops_per_sec: rates.read_ops,
        write_ops_per_sec: rates.write_ops,
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
                let m = measure(store, &e);
                let (size_bytes, keys) = (m.size_bytes, m.keys);
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
                    split_key: m.split_key,
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

/// Regions below this size are counted and given a split key by a scan; larger ones are
/// estimated from RocksDB's size estimates.
const EXACT_COUNT_BYTES: u64 = 8 << 20;

/// A region's measure is reused while no write reached it, up to this age.
const MEASURE_MAX_AGE_MS: u64 = 60_000;

/// A region's size, keys and split key: measured again only when a write reached the region
/// since (or the last measure is a minute old), so a store of idle regions does no RocksDB
/// work per heartbeat.
fn measure(store: &Store, e: &crate::rg::region_index::RegionEntry) -> Measure {
    let now = store.hibernation().now_ms();
    if let Some(m) = e.stats.fresh_measure(now, MEASURE_MAX_AGE_MS) {
        return m;
    }
    let writes_total = e
        .stats
        .writes_total
        .load(std::sync::atomic::Ordering::Relaxed);
    let (size_bytes, keys, split_key) =
        measure_range(&store.engine, &e.region.start, &e.region.end);
    let m = Measure {
        size_bytes,
        keys,
        split_key,
        writes_total,
        at_ms: now,
    };
    e.stats.set_measure(m.clone());
    m
}

/// Bytes, keys and split key of a region: RocksDB's approximate on-disk size, and an exact
/// key count for small regions (whose data may still sit in memtables, which the size estimate
/// misses) or `size / average entry size of the store` for large ones, so a heartbeat never
/// scans a large region. Small regions get a split key too, from a scan: a region split for
/// its traffic is often small (a hot spot), and the MC can split it only at a key its store
/// reported.
fn measure_range(engine: &crate::engine::Engine, start: &[u8], end: &[u8]) -> (u64, u64, Vec<u8>) {
    let approx = engine.approximate_size(start, end);
    if approx < EXACT_COUNT_BYTES {
        let Ok((keys, bytes)) = engine.count_range(start, end) else {
            return (approx, 0, Vec::new());
        };
        // Half of the bytes the scan counts, not of the estimate: old versions not yet
        // compacted away can make the estimate many times the live data, and no key is past
        // half of it.
        let split_key = engine.middle_key(start, end, bytes).ok().flatten();
        return (bytes.max(approx), keys, split_key.unwrap_or_default());
    }
    let db = engine.db();
    let cf = engine.cf(crate::engine::CF_DATA);
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
    let split_key = engine.split_key(start, end).unwrap_or_default();
    (approx, approx / per_key, split_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A small hot region whose keys are overwritten: until compaction its SST files hold
    /// every old version, so RocksDB's size estimate is several times its live bytes. It still
    /// reports a split key (one past half its live bytes), or it could never be split for its
    /// load.
    #[test]
    fn an_overwritten_small_region_reports_a_split_key() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::engine::Engine::open(dir.path(), false).unwrap();
        let cf = engine.cf(crate::engine::CF_DATA);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3 {
            for k in 0..64u32 {
                let value = crate::engine::noise(&mut x, 4096);
                let key = format!("t{k:04}");
                engine.db().put_cf(cf, key.as_bytes(), &value).unwrap();
            }
            engine.db().flush_cf(cf).unwrap();
        }
        let (live_keys, live_bytes) = engine.count_range(b"t", b"u").unwrap();
        assert_eq!(live_keys, 64);
        let approx = engine.approximate_size(b"t", b"u");
        assert!(
            approx > 2 * live_bytes,
            "three flushed versions: estimate {approx}, live {live_bytes}"
        );
        let (size, keys, split_key) = measure_range(&engine, b"t", b"u");
        assert_eq!(keys, 64);
        assert!(size >= live_bytes);
        assert_eq!(
            split_key,
            b"t0032".to_vec(),
            "the key past half the live bytes"
        );
    }

    fn heartbeat(rg: u64, regions: usize) -> RgHeartbeat {
        RgHeartbeat {
            rg_id: rg,
            leader_store_id: 1,
            regions: (0..regions)
                .map(|i| RegionStats {
                    region_id: rg * 100 + i as u64,
                    range: Some(KeyRange {
                        start: vec![7; 24],
                        end: vec![8; 24],
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn thousands_of_rg_heartbeats_go_in_batches_under_the_limit_in_order() {
        let all: Vec<RgHeartbeat> = (1..=20_000).map(|rg| heartbeat(rg, 4)).collect();
        let one_message = RgHeartbeatBatch {
            store_id: 1,
            heartbeats: all.clone(),
            sent_unix_ms: 0,
        };
        assert!(
            one_message.encoded_len() > 4 << 20,
            "the MC's default 4 MiB message limit: {} bytes",
            one_message.encoded_len()
        );
        let batches = in_batches(all.clone(), RG_BATCH_BYTES);
        assert!(batches.len() > 4);
        for b in &batches {
            let msg = RgHeartbeatBatch {
                store_id: 1,
                heartbeats: b.clone(),
                sent_unix_ms: u64::MAX,
            };
            assert!(
                msg.encoded_len() <= RG_BATCH_BYTES + 16,
                "{}",
                msg.encoded_len()
            );
        }
        let flat: Vec<u64> = batches.into_iter().flatten().map(|h| h.rg_id).collect();
        assert_eq!(flat, (1..=20_000).collect::<Vec<u64>>());
        // One heartbeat larger than the limit still goes, alone.
        let big = in_batches(vec![heartbeat(1, 1), heartbeat(2, 20_000)], 1 << 10);
        assert_eq!(big.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
        assert!(in_batches(vec![], RG_BATCH_BYTES).is_empty());
    }
}
