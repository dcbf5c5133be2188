//! Hibernating RGs on real store processes: an idle RG's replicas stop ticking (and no
//! election happens while they sleep), a write wakes them and commits, a sleeping leader's
//! store killed with SIGKILL is replaced by an election among the followers, and a follower
//! restarted while its RG sleeps rejoins without deposing the leader, and a restarted leader
//! leaves no RG waiting for it.

use std::time::{Duration, Instant};

use crate::common::*;

/// Raft heartbeats every 100 ms (elections after 300–600 ms); sleep after 300 ms idle.
const FLAGS: &[&str] = &["--hibernate-after-ms", "300"];

/// (asleep, term, leader) of the RG's replica on each running store.
async fn replicas(cluster: &Cluster) -> Vec<(u64, bool, u64, u64)> {
    let mut out = Vec::new();
    for s in cluster.stores.iter().filter(|s| s.is_running()) {
        if let Ok(status) = status(&s.addr).await
            && let Some(r) = status.replicas.iter().find(|r| r.rg_id == RG)
        {
            out.push((s.id, r.asleep, r.term, r.leader_store_id));
        }
    }
    out
}

async fn wait_all_asleep(cluster: &Cluster, n: usize) -> Vec<(u64, bool, u64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = replicas(cluster).await;
        if now.len() == n && now.iter().all(|r| r.1) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "not every replica sleeps: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three stores, the RG written once (`k1`) and asleep on all of them: the cluster, the
/// stores' addresses, and the sleeping RG's leader and term.
async fn sleeping_rg() -> (Cluster, Vec<String>, u64, u64) {
    let cluster = Cluster::start_with(3, FLAGS).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    cluster.wait_leader(RG).await;
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    put_one(&addrs, REGION, 1, b"k1".to_vec(), b"v1".to_vec()).await;
    let asleep = wait_all_asleep(&cluster, 3).await;
    let (leader, term) = (asleep[0].3, asleep[0].2);
    (cluster, addrs, leader, term)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_rgs_sleep_writes_wake_them_and_no_election_happens_meanwhile() {
    // Long enough idle time to see the RG awake after the write, even with the other tests
    // loading both cores.
    let cluster = Cluster::start_with(3, &["--hibernate-after-ms", "5000"]).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    cluster.wait_leader(RG).await;
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    put_one(&addrs, REGION, 1, b"k1".to_vec(), b"v1".to_vec()).await;

    let asleep = wait_all_asleep(&cluster, 3).await;
    let term = asleep[0].2;
    // Ten election timeouts of sleep: nobody campaigns.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = replicas(&cluster).await;
    assert!(
        still.iter().all(|r| r.1 && r.2 == term),
        "asleep at term {term}, then {still:?}"
    );

    // A write sent straight to the sleeping leader (asleep far past its lease) commits there:
    // not NotLeader (openraft refuses writes on a lapsed lease; the store renews it first),
    // and it wakes every replica.
    let leader = asleep[0].3;
    let started = Instant::now();
    let mut kv = proto::v1::kv_service_client::KvServiceClient::new(
        channel(&cluster.addr(leader)).await.unwrap(),
    );
    let reply = kv
        .put(proto::v1::PutRequest {
            context: Some(proto::v1::RegionContext {
                region_id: REGION,
                epoch: Some(proto::v1::RegionEpoch {
                    version: 1,
                    conf_ver: 0,
                }),
            }),
            key: b"k2".to_vec(),
            value: b"v2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.error, None, "the sleeping leader took the write");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "the write took {took:?}");
    let awake = replicas(&cluster).await;
    assert!(
        awake.iter().any(|r| !r.1 && r.0 == r.3),
        "the leader wakes for the write (took {took:?}): {awake:?}"
    );
    // And it sleeps again, at the same term, every replica holding both keys.
    let again = wait_all_asleep(&cluster, 3).await;
    assert!(again.iter().all(|r| r.2 == term), "{again:?}");
    let leader = again[0].3;
    let pairs = scan_all(&cluster.addr(leader), 1).await;
    assert_eq!(pairs.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sleeping_rgs_killed_leader_is_replaced_by_its_followers() {
    let (mut cluster, _, leader, term) = sleeping_rg().await;

    cluster.store(leader).kill9();
    // The followers hear no store beat from the leader's store, wake and elect.
    let rest: Vec<String> = (1..=3)
        .filter(|id| *id != leader)
        .map(|id| cluster.addr(id))
        .collect();
    let started = Instant::now();
    put_one(&rest, REGION, 1, b"k2".to_vec(), b"v2".to_vec()).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "a new leader took {took:?}");
    let now = replicas(&cluster).await;
    assert!(
        now.iter().all(|r| r.2 > term && r.3 != leader),
        "a new term under a new leader: {now:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_restarted_while_its_rg_sleeps_rejoins_without_an_election() {
    let (mut cluster, addrs, leader, term) = sleeping_rg().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    cluster.store(follower).kill9();
    cluster.store(follower).restart();
    wait_ready(&cluster.addr(follower)).await;
    // Back with its log whole, it hears the leader's beat (or, woken by the new incarnation,
    // its heartbeats) before its election timer runs out; then all sleep again.
    let again = wait_all_asleep(&cluster, 3).await;
    assert!(
        again.iter().all(|r| r.2 == term && r.3 == leader),
        "leader {leader} at term {term} before, then {again:?}"
    );
    put_one(&addrs, REGION, 1, b"k2".to_vec(), b"v2".to_vec()).await;
    let pairs = scan_all(&cluster.addr(leader), 1).await;
    assert_eq!(pairs.len(), 2);
}

/// The same restart on a loaded machine, made exact: the restarted store sends its first beat
/// only after twice the longest election timeout and answers none of its peers' beats until
/// then, so its leader's store learns of the restart late. Its replica must not campaign
/// meanwhile (the sleeping peers' leases have lapsed, so they would grant its pre-vote and the
/// term would rise): a replica opened at start-up holds its election until its store's peers
/// have heard the new incarnation and had time to reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_follower_whose_leader_hears_of_it_late_does_not_campaign() {
    let (mut cluster, addrs, leader, term) = sleeping_rg().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // Asleep for longer than a lease (the longest election timeout, 600 ms): as an RG that
    // sleeps for hours, nobody's lease stands in the restarted replica's way.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let deaf = cluster.tmp.path().join("deaf");
    std::fs::write(&deaf, b"").unwrap();
    cluster.store(follower).proc.env.push((
        "MC_FAILPOINTS".into(),
        format!(
            "store.beat.send=sleep(1200)@1;store.beat.received=error_while({})",
            deaf.display()
        ),
    ));
    cluster.store(follower).restart();
    wait_ready(&cluster.addr(follower)).await;
    // The leader's store hears of the restart from the late beat, and wakes the RG.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = replicas(&cluster).await;
        if now.iter().any(|r| r.0 == leader && !r.1) {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never woke: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&deaf).unwrap();
    let again = wait_all_asleep(&cluster, 3).await;
    assert!(
        again.iter().all(|r| r.2 == term && r.3 == leader),
        "leader {leader} at term {term} before, then {again:?}"
    );
    put_one(&addrs, REGION, 1, b"k2".to_vec(), b"v2".to_vec()).await;
    assert_eq!(scan_all(&cluster.addr(leader), 1).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sleeping_rgs_leader_restarted_at_once_leaves_no_rg_without_a_leader() {
    let (mut cluster, addrs, leader, term) = sleeping_rg().await;
    // Back before its peers could take it for silent: they must not sleep on, waiting for a
    // leader that no longer leads.
    cluster.store(leader).kill9();
    cluster.store(leader).restart();
    wait_ready(&cluster.addr(leader)).await;
    put_one(&addrs, REGION, 1, b"k2".to_vec(), b"v2".to_vec()).await;
    // (openraft may resume the restarted store's leadership at its term, or elect anew.)
    let again = wait_all_asleep(&cluster, 3).await;
    let now_leader = again[0].3;
    assert!(
        again.iter().all(|r| r.3 == now_leader && r.2 >= term),
        "one leader for all: {again:?}"
    );
    let pairs = scan_all(&cluster.addr(again[0].3), 1).await;
    assert_eq!(pairs.len(), 2);
}
