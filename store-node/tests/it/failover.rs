//! Three real store processes; an RG with 10,000 keys written through KvService; the leader is
//! killed with SIGKILL; writes continue on the new leader; the killed store restarts and every
//! acknowledged key is readable on every replica.

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_survive_leader_kill_and_every_replica_has_every_key() {
    let mut cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    put_all(&cluster, 0..10_000, 64).await;

    let old_leader = cluster.wait_leader(RG).await;
    cluster.store(old_leader).kill9();
    let new_leader = cluster.wait_leader(RG).await;
    assert_ne!(new_leader, old_leader);
    put_all(&cluster, 10_000..11_000, 32).await;

    cluster.store(old_leader).restart();
    wait_ready(&cluster.addr(old_leader)).await;
    for id in [1, 2, 3] {
        let pairs = scan_on(&cluster, id, 100 + id).await;
        assert_eq!(pairs.len(), 11_000, "store {id} misses keys");
        for (i, pair) in pairs.iter().enumerate() {
            assert_eq!(pair.key, key(i as u64));
            assert_eq!(pair.value, format!("v{i}").into_bytes());
        }
    }
}
