//! KV write throughput and latency through a 3-store RG (real gRPC on loopback, real openraft,
//! real RocksDB with fsync), single puts and 100-key batches, against raw RocksDB writes with
//! the same sync setting and the same concurrency, measured in the same run.
//!
//! Each case runs against a plaintext cluster and a TLS one (what every component runs with) in
//! the same run, and reports TLS throughput as a ratio of plaintext.
//!
//! Run: `cargo bench --bench store_kv_write` (env KV_BENCH_SECS to change the 5 s per case).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::*;
use store_node::store::RaftTuning;
use support::*;

const VALUE: usize = 100;

struct Run {
    ops: u64,
    keys: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn report(&self, name: &str) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        let kps = self.keys as f64 / self.elapsed.as_secs_f64();
        println!(
            "{name:<34} {:>9.0} keys/s {:>9.0} req/s  p50 {:>9}  p99 {:>9}",
            kps,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            ms(percentile(&l, 0.5)),
            ms(percentile(&l, 0.99))
        );
        kps
    }
}

/// Runs `concurrency` clients, each issuing requests of `batch` keys, for `secs`.
async fn raft_writes(
    mode: Mode,
    addr: String,
    rg: u64,
    batch: usize,
    concurrency: usize,
    secs: f64,
) -> Run {
    let channel = mode
        .security(store_node::security::Identity::User("admin".into()))
        .connect(&addr)
        .await
        .unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let results: Vec<Vec<Duration>> = futures::stream::iter(0..concurrency)
        .map(|c| {
            let mut kv = KvServiceClient::new(channel.clone());
            async move {
                let mut lat = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let mutations: Vec<Mutation> = (0..batch)
                        .map(|i| Mutation {
                            op: MutationOp::Put as i32,
                            key: format!("k{c:04}-{n:010}-{i:04}").into_bytes(),
                            value: vec![b'x'; VALUE],
                        })
                        .collect();
                    let context = Some(RegionContext {
                        region_id: rg,
                        epoch: Some(RegionEpoch {
                            version: 1,
                            conf_ver: 0,
                        }),
                    });
                    let t = Instant::now();
                    let reply = kv
                        .batch_write(BatchWriteRequest { context, mutations })
                        .await
                        .unwrap()
                        .into_inner();
                    assert!(reply.error.is_none(), "{:?}", reply.error);
                    lat.push(t.elapsed());
                    n += 1;
                }
                lat
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = start.elapsed();
    let latencies: Vec<Duration> = results.into_iter().flatten().collect();
    Run {
        ops: latencies.len() as u64,
        keys: (latencies.len() * batch) as u64,
        elapsed,
        latencies,
    }
}

/// The same shape of work straight into RocksDB: one WriteBatch per request, same sync.
fn raw_writes(
    dir: &std::path::Path,
    batch: usize,
    concurrency: usize,
    secs: f64,
    sync: bool,
) -> Run {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_enable_pipelined_write(true);
    let db = Arc::new(rocksdb::DB::open(&opts, dir).unwrap());
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..concurrency)
        .map(|c| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut wo = rocksdb::WriteOptions::default();
                wo.set_sync(sync);
                let mut lat = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let mut wb = rocksdb::WriteBatch::default();
                    for i in 0..batch {
                        wb.put(format!("k{c:04}-{n:010}-{i:04}"), vec![b'x'; VALUE]);
                    }
                    let t = Instant::now();
                    db.write_opt(wb, &wo).unwrap();
                    lat.push(t.elapsed());
                    n += 1;
                }
                lat
            })
        })
        .collect();
    let latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    Run {
        ops: latencies.len() as u64,
        keys: (latencies.len() * batch) as u64,
        elapsed,
        latencies,
    }
}

fn main() {
    // `cargo bench` passes --bench; accept and ignore harness flags.
    let secs: f64 = std::env::var("KV_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let sync = true;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let raft = RaftTuning {
            heartbeat_ms: 200,
            election_min_ms: 1000,
            election_max_ms: 2000,
            ..Default::default()
        };
        // A plaintext cluster and a TLS one (what every component runs with), side by side.
        let mut leaders = Vec::new();
        let mut clusters = Vec::new();
        for mode in [Mode::Plaintext, Mode::Tls] {
            let sub = dir.path().join(mode.name());
            let nodes = vec![
                start_store_in(mode, 1, &sub, raft.clone()).await,
                start_store_in(mode, 2, &sub, raft.clone()).await,
                start_store_in(mode, 3, &sub, raft.clone()).await,
            ];
            let refs: Vec<&_> = nodes.iter().collect();
            let leader = create_rg(&refs, 1, b"k", b"l").await;
            let addr = nodes
                .iter()
                .find(|n| n.store.id() == leader)
                .unwrap()
                .addr
                .to_string();
            leaders.push((mode, addr));
            clusters.push(nodes);
        }

        println!("3-store RG over loopback, fsync on, {VALUE}-byte values, {secs} s per case");
        let mut ratios = Vec::new();
        let mut tls_ratios = Vec::new();
        for (name, batch, concurrency) in [
            ("single put, 1 client", 1, 1),
            ("single put, 64 clients", 1, 64),
            ("batch of 100, 8 clients", 100, 8),
        ] {
            let mut by_mode = Vec::new();
            for (mode, addr) in &leaders {
                let kps = raft_writes(*mode, addr.clone(), 1, batch, concurrency, secs)
                    .await
                    .report(&format!("raft {:<9} {name}", mode.name()));
                by_mode.push(kps);
            }
            let raw_dir = dir.path().join(format!("raw-{batch}-{concurrency}"));
            let raw_run = tokio::task::spawn_blocking(move || {
                raw_writes(&raw_dir, batch, concurrency, secs, sync)
            })
            .await
            .unwrap()
            .report(&format!("raw   {name}"));
            ratios.push((name, by_mode[1] / raw_run));
            tls_ratios.push((name, by_mode[1] / by_mode[0]));
        }
        for (name, ratio) in tls_ratios {
            println!("tls/plaintext {name:<28} {ratio:.2}");
        }
        for (name, ratio) in ratios {
            println!("ratio raft(tls)/raw  {name:<26} {ratio:.2}");
        }
        for nodes in clusters {
            for n in nodes {
                n.stop().await;
            }
        }
    });
}
