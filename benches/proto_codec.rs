//! Cost of the wire encoding on the heartbeat path: a batch of 1,000 RG heartbeats, each with
//! 3 members and 4 regions, as a store leading 1,000 RGs sends every interval.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use proto::v1::{
    KeyRange, RegionEpoch, RegionStats, Replica, ReplicaRole, RgHeartbeat, RgHeartbeatBatch,
};

fn batch(rgs: u64) -> RgHeartbeatBatch {
    let heartbeats = (0..rgs)
        .map(|rg| RgHeartbeat {
            rg_id: rg + 1,
            leader_store_id: 1,
            term: 7,
            applied_index: 10_000 + rg,
            commit_index: 10_000 + rg,
            conf_ver: 3,
            members: (1..=3)
                .map(|s| Replica {
                    store_id: s,
                    role: ReplicaRole::Voter as i32,
                    offline: false,
                })
                .collect(),
            regions: (0..4)
                .map(|r| RegionStats {
                    region_id: rg * 4 + r,
                    object_id: rg,
                    range: Some(KeyRange {
                        start: format!("t{rg:08}r{r}").into_bytes(),
                        end: format!("t{rg:08}r{}", r + 1).into_bytes(),
                    }),
                    epoch: Some(RegionEpoch {
                        version: 2,
                        conf_ver: 3,
                    }),
                    size_bytes: 64 << 20,
                    keys: 100_000,
                    read_bytes: 1 << 20,
                    write_bytes: 1 << 19,
                    read_ops: 1000,
                    write_ops: 500,
                    split_key: vec![],
                })
                .collect(),
            lagging_store_ids: vec![],
        })
        .collect();
    RgHeartbeatBatch {
        store_id: 1,
        heartbeats,
        sent_unix_ms: 1,
    }
}

fn rg_heartbeat_batch_codec(c: &mut Criterion) {
    let batch = batch(1_000);
    let bytes = batch.encode_to_vec();
    let mut group = c.benchmark_group("rg_heartbeat_batch_1k_rgs");
    group.throughput(Throughput::Elements(batch.heartbeats.len() as u64));
    group.bench_function("encode", |b| b.iter(|| batch.encode_to_vec()));
    group.bench_function("decode", |b| {
        b.iter(|| RgHeartbeatBatch::decode(bytes.as_slice()).expect("valid batch"))
    });
    group.finish();
}

criterion_group!(benches, rg_heartbeat_batch_codec);
criterion_main!(benches);
