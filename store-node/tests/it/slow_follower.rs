//! Followers slow to take entries in (each AppendEntries with entries waits 300 ms before it
//! is written, as on a loaded disk) still catch up, at the tests' 100 ms Raft heartbeat.
//! Entries used to get openraft's heartbeat-sized timeout (75 ms here): every batch was cut
//! off before the follower wrote it, sent again, cut off again, and nothing committed (in the
//! suite, a migration's learner stalled at one log index for a minute under load).

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_slower_than_a_heartbeat_still_take_entries() {
    let mut cluster = Cluster::start(3).await;
    for id in 1..=3 {
        let store = cluster.store(id);
        store.proc.env.push((
            "MC_FAILPOINTS".into(),
            "store.raft.append=sleep(300)".into(),
        ));
        store.restart();
    }
    for id in 1..=3 {
        wait_ready(&cluster.addr(id)).await;
    }
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    cluster.wait_leader(RG).await;
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    for i in 0..10 {
        store_node::client::put_following_leader(
            &addrs,
            REGION,
            1,
            key(i),
            value(i, 64),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("put {i} did not commit: {e:?}"));
    }
    // Every replica wrote every entry.
    for id in 1..=3 {
        let dir = cluster.stores[id - 1].dir.clone();
        wait_until(
            &format!("store {id} to hold the ten keys"),
            Duration::from_secs(30),
            || keys_in(&dir, b"a", b"z") == 10,
        )
        .await;
    }
}
