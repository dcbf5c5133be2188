//! Snapshot catch-up throughput: an RG holding 1 GiB of incompressible data gains a new
//! replica, which receives the RG as a streamed SST snapshot and ingests it. The figure is
//! bytes of user data / time from AddLearner to caught up. Goal: at least 300 MB/s.
//!
//! Run: `cargo bench --bench store_snapshot` (env SNAPSHOT_BENCH_MIB, default 1024).

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::async_runtime::WatchReceiver;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::*;
use store_node::store::RaftTuning;
use support::*;

const VALUE: usize = 4096;
const PER_BATCH: usize = 256;

fn value(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(VALUE);
    while v.len() < VALUE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn main() {
    let mib: u64 = std::env::var("SNAPSHOT_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let raft = RaftTuning {
            heartbeat_ms: 200,
            election_min_ms: 2000,
            election_max_ms: 4000,
            snapshot_after_logs: 1_000_000,
            logs_to_keep: 0,
            ..Default::default()
        };
        let a = start_store(1, dir.path(), raft.clone()).await;
        let b = start_store(2, dir.path(), raft.clone()).await;
        let leader_id = create_rg(&[&a, &b], 1, b"k", b"l").await;
        let leader = if leader_id == 1 { &a } else { &b };

        let batches = mib * (1 << 20) / (VALUE * PER_BATCH) as u64;
        let load = Instant::now();
        let channel = store_node::security::pki::admin_connect(leader.addr.to_string())
            .await
            .unwrap();
        futures::stream::iter(0..batches)
            .for_each_concurrent(4, |n| {
                let mut kv =
                    KvServiceClient::new(channel.clone()).max_encoding_message_size(256 << 20);
                async move {
                    let mutations = (0..PER_BATCH as u64)
                        .map(|i| {
                            let k = n * PER_BATCH as u64 + i;
                            Mutation {
                                op: MutationOp::Put as i32,
                                key: format!("k{k:012}").into_bytes(),
                                value: value(k),
                            }
                        })
                        .collect();
                    let context = Some(RegionContext {
                        region_id: 1,
                        epoch: Some(RegionEpoch {
                            version: 1,
                            conf_ver: 0,
                        }),
                    });
                    let reply = kv
                        .batch_write(BatchWriteRequest { context, mutations })
                        .await
                        .unwrap()
                        .into_inner();
                    assert!(reply.error.is_none(), "{:?}", reply.error);
                }
            })
            .await;
        let bytes = batches * (PER_BATCH * (VALUE + 13)) as u64;
        println!(
            "loaded {:.0} MiB through Raft in {:.1} s",
            bytes as f64 / (1 << 20) as f64,
            load.elapsed().as_secs_f64()
        );

        // A fresh snapshot, and the log purged up to it: a new replica can only catch up by
        // snapshot.
        let raft_handle = leader.store.replica(1).unwrap().raft.clone();
        let t = Instant::now();
        raft_handle.trigger().snapshot().await.unwrap();
        raft_handle
            .wait(Some(Duration::from_secs(600)))
            .metrics(
                |m| {
                    m.snapshot.as_ref().map(|s| s.index) == m.last_applied.as_ref().map(|l| l.index)
                },
                "snapshot built",
            )
            .await
            .unwrap();
        println!("built the snapshot in {:.1} s", t.elapsed().as_secs_f64());
        let upto = raft_handle
            .metrics()
            .borrow_watched()
            .snapshot
            .unwrap()
            .index;
        raft_handle.trigger().purge_log(upto).await.unwrap();

        let c = start_store(3, dir.path(), raft).await;
        ok(&step(
            &c.addr.to_string(),
            1,
            90,
            step_command::Step::Create(CreateStep::default()),
        )
        .await);
        let learner = ReplicaPeer {
            store_id: 3,
            address: c.addr.to_string(),
            role: ReplicaRole::Learner as i32,
        };
        let t = Instant::now();
        ok(&step(
            &leader.addr.to_string(),
            1,
            91,
            step_command::Step::AddLearner(AddLearnerStep {
                learner: Some(learner),
            }),
        )
        .await);
        let elapsed = t.elapsed();
        let (keys, _) = c.store.engine.count_range(b"k", b"l").unwrap();
        assert_eq!(
            keys,
            batches * PER_BATCH as u64,
            "the new replica must hold every key"
        );
        println!(
            "snapshot catch-up: {:.0} MiB in {:.2} s = {:.0} MB/s ({} keys)",
            bytes as f64 / (1 << 20) as f64,
            elapsed.as_secs_f64(),
            bytes as f64 / 1e6 / elapsed.as_secs_f64(),
            keys
        );
        for n in [a, b, c] {
            n.stop().await;
        }
    });
}
