//! A leader that lost its quorum answers reads and writes with a retryable error
//! (`Unavailable`, or `NotLeader` naming no leader) within a bounded wait. openraft's own waits have no end: before the bound, a Get or a Put
//! sent to such a leader hung until the client gave up (a SQL engine at default settings
//! waits with no deadline at all).

use std::time::{Duration, Instant};

use crate::common::*;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_without_a_quorum_answers_unavailable_in_bounded_time() {
    let mut cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    let leader = cluster.wait_leader(RG).await;
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    put_one(&addrs, REGION, 1, b"k1".to_vec(), b"v1".to_vec()).await;
    for id in (1..=3).filter(|id| *id != leader) {
        cluster.store(id).kill9();
    }

    let mut kv = KvServiceClient::new(channel(&cluster.addr(leader)).await.unwrap());
    let started = Instant::now();
    let got = kv
        .get(GetRequest {
            context: ctx(1),
            key: b"k1".to_vec(),
        })
        .await
        .expect("the store answers, within the channel's minute")
        .into_inner();
    let error = got
        .error
        .expect("no quorum: the read cannot be linearizable");
    assert!(
        matches!(error.code(), ErrorCode::Unavailable | ErrorCode::NotLeader),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the read waited {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let put = kv
        .put(PutRequest {
            context: ctx(1),
            key: b"k2".to_vec(),
            value: b"v2".to_vec(),
        })
        .await
        .expect("the store answers, within the channel's minute")
        .into_inner();
    let error = put.error.expect("no quorum: the write cannot commit");
    assert!(
        matches!(error.code(), ErrorCode::Unavailable | ErrorCode::NotLeader),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the write waited {:?}",
        started.elapsed()
    );
}
