//! Writes too large for one Raft entry are refused with a typed error that names the field
//! (two concurrent ~150 MiB puts used to make one AppendEntries larger than the Raft message
//! limit, which then failed the same way forever and wedged the RG), and large writes that
//! fit replicate to every member.

use crate::common::*;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::*;

fn put(key: &[u8], len: usize) -> PutRequest {
    PutRequest {
        context: ctx(1),
        key: key.to_vec(),
        value: vec![key[0]; len],
    }
}

async fn kv(addr: &str) -> KvServiceClient<tonic::transport::Channel> {
    KvServiceClient::new(channel(addr).await.unwrap())
        .max_encoding_message_size(300 << 20)
        .max_decoding_message_size(300 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_write_is_refused_by_name_and_big_writes_do_not_wedge_the_rg() {
    // One-second Raft heartbeats (elections after 3–6 s): tens of MiB in flight on a loaded
    // 2-core machine delay them past the 100 ms other tests use, and past half a second.
    let _heavy = heavy().await;
    let cluster = Cluster::start_with(3, &["--raft-heartbeat-ms", "1000"]).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    let leader = cluster.wait_leader(RG).await;
    let addr = cluster.addr(leader);

    let refused = kv(&addr)
        .await
        .put(put(b"big", (16 << 20) + 1))
        .await
        .unwrap()
        .into_inner()
        .error
        .expect("refused");
    assert_eq!(refused.code(), ErrorCode::InvalidArgument);
    match refused.detail {
        Some(error::Detail::InvalidArgument(i)) => {
            assert_eq!(i.field, "value");
            assert!(i.reason.contains("at most 16777216 bytes"), "{}", i.reason);
        }
        other => panic!("{other:?}"),
    }
    let too_many = kv(&addr)
        .await
        .batch_write(BatchWriteRequest {
            context: ctx(1),
            mutations: (0..4)
                .map(|i| Mutation {
                    op: MutationOp::Put as i32,
                    key: format!("b{i}").into_bytes(),
                    value: vec![1; (4 << 20) + (128 << 10)],
                })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .error
        .expect("refused");
    assert!(
        matches!(&too_many.detail, Some(error::Detail::InvalidArgument(i)) if i.field == "mutations"),
        "{too_many:?}"
    );
    // A message past what any write may carry is refused before it is decoded.
    let huge = kv(&addr)
        .await
        .batch_write(BatchWriteRequest {
            context: ctx(1),
            mutations: (0..5)
                .map(|i| Mutation {
                    op: MutationOp::Put as i32,
                    key: format!("c{i}").into_bytes(),
                    value: vec![1; 4 << 20],
                })
                .collect(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            huge.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{huge:?}"
    );
    assert!(huge.message().contains("too large"), "{huge:?}");

    // Four 15 MiB puts at once (batches above 16 MiB go out in several AppendEntries).
    // (Leadership may move while they replicate; the writers follow it.)
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    let mut puts = Vec::new();
    for i in 0..4u8 {
        let addrs = addrs.clone();
        puts.push(tokio::spawn(async move {
            let key = vec![b'k', b'0' + i];
            store_node::client::put_following_leader(
                &addrs,
                1,
                1,
                key.clone(),
                vec![key[0]; 15 << 20],
                std::time::Duration::from_secs(60),
            )
            .await
        }));
    }
    for p in puts {
        p.await.unwrap().unwrap();
    }
    // The RG still takes writes, and every replica holds the big values.
    store_node::client::put_following_leader(
        &addrs,
        1,
        1,
        b"small".to_vec(),
        vec![1; 10],
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    for id in 1..=3 {
        let dir = cluster.stores[id - 1].dir.clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while big_values(&dir) < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "store {id} holds {} of the four big values",
                big_values(&dir)
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// How many of the four 15 MiB values a store's RocksDB holds (opened read-only beside it).
fn big_values(dir: &std::path::Path) -> usize {
    let cfs = ["default", "raft_log", "meta"];
    let Ok(db) = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        dir.join("db"),
        cfs,
        false,
    ) else {
        return 0;
    };
    let cf = db.cf_handle("default").unwrap();
    (0..4u8)
        .filter(|i| {
            db.get_cf(cf, [b'k', b'0' + i])
                .ok()
                .flatten()
                .is_some_and(|v| v.len() == 15 << 20)
        })
        .count()
}
