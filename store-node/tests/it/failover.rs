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

/// A store given SIGTERM hands the RGs it leads to another voter before it exits: at the
/// default Raft timing (6-12 s election timeouts) the RG has a new leader at once, not after
/// an election timeout, and takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_given_sigterm_hands_its_leaders_over_first() {
    let mut cluster = Cluster::start_with(3, &["--raft-heartbeat-ms", "2000"]).await;
    let peers: Vec<_> = (1..=3).map(|id| cluster.peer(id)).collect();
    // Store 1 gets its Create last and campaigns: it leads from the start.
    for id in [2, 3, 1] {
        let outcome = step(
            &cluster.addr(id),
            RG,
            1,
            1,
            proto::v1::step_command::Step::Create(proto::v1::CreateStep {
                bootstrap: true,
                members: peers.clone(),
                campaign: id == 1,
                regions: vec![proto::v1::RegionDescriptor {
                    region_id: REGION,
                    object_id: 7,
                    range: Some(proto::v1::KeyRange {
                        start: b"a".to_vec(),
                        end: b"z".to_vec(),
                    }),
                    epoch: Some(proto::v1::RegionEpoch {
                        version: 1,
                        conf_ver: 0,
                    }),
                }],
            }),
        )
        .await;
        assert_ok(&outcome);
    }
    assert_eq!(cluster.wait_leader(RG).await, 1);
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    put_one(&addrs, REGION, 1, key(1), b"v1".to_vec()).await;
    cluster.store(1).signal("TERM");
    let started = std::time::Instant::now();
    let others = [cluster.addr(2), cluster.addr(3)];
    let new_leader = loop {
        let mut led = None;
        for (i, addr) in others.iter().enumerate() {
            if let Some(r) = replica_status(addr, RG).await
                && r.is_leader
            {
                led = Some(i as u64 + 2);
            }
        }
        if let Some(l) = led {
            break l;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no new leader"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_millis(2_500),
        "store {new_leader} led {took:?} after the SIGTERM (an election timeout is 6-12 s here)"
    );
    put_one(&others, REGION, 1, key(2), b"v2".to_vec()).await;
}
