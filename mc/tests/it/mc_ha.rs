//! Three `mc serve` processes form one MC group; four store nodes report to all of them.
//! Jobs are submitted through a follower (forwarded to the leader). The leader is killed
//! with SIGKILL while a MigrateReplica's catch-up step is in flight: a new leader is elected,
//! finds the job in the replicated catalog, re-sends the step under its higher term, and the
//! job completes with no step run twice, every acknowledged write on the new replica and
//! nothing left on the old one.

use crate::common;

use common::*;
use proto::v1::*;
use store_node::client::BackgroundWriter;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_mc_leader_resumes_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let group: Vec<(u64, String)> = (1..=3).map(|id| (id, free_addr())).collect();
    let mut mcs: Vec<Option<McProcess>> = group
        .iter()
        .map(|(id, addr)| {
            Some(start_mc(
                *id,
                addr,
                &dir.path().join(format!("mc{id}")),
                &group,
            ))
        })
        .collect();
    let addrs: Vec<String> = group.iter().map(|(_, a)| a.clone()).collect();
    let before = members(&addrs[0]).await;
    assert_eq!(before.members.len(), 3, "{before:?}");
    let leader = before.leader_id;
    let follower = group
        .iter()
        .find(|(id, _)| *id != leader)
        .unwrap()
        .1
        .clone();

    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(start_store(id, dir.path(), &addrs).await);
    }
    let store_addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();
    // Through a follower: forwarded to the leader.
    create_rg_and_region(&follower).await;
    // Enough data that the learner's catch-up takes a while.
    for i in 0..300 {
        put(&store_addrs, i, vec![i as u8; 16 << 10]).await;
    }

    let writer = BackgroundWriter::start(store_addrs.clone(), 1, 1, 300, key, |_| b"v".to_vec());
    let migrate = submit(
        &follower,
        job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 1,
            to_store_id: 4,
        }),
        "migrate",
    )
    .await;
    // Kill the leader while AddLearner (the catch-up) is in flight on the stores.
    wait_job(&follower, migrate.id, |j| {
        j.current_step >= 2 || succeeded(j)
    })
    .await;
    let killed_at_ms = now_ms();
    mcs[leader as usize - 1].take().unwrap().kill();

    let done = wait_job(&follower, migrate.id, succeeded).await;
    let after = members(&follower).await;
    assert_ne!(after.leader_id, leader, "a surviving MC leads");
    assert!(after.term > before.term, "{before:?} -> {after:?}");
    let records = records(&follower, migrate.id).await;
    assert!(
        records.iter().any(|r| r.mc_term == before.term),
        "the old leader dispatched steps: {records:?}"
    );
    let first_new = records
        .iter()
        .filter(|r| r.mc_term == after.term)
        .map(|r| r.dispatched_unix_ms)
        .min()
        .expect("the new leader dispatched steps of the job");
    let failover_ms = first_new.saturating_sub(killed_at_ms);
    println!(
        "failover: MC {leader} killed; MC {} dispatched its first step {failover_ms} ms later",
        after.leader_id
    );
    assert!(
        failover_ms < 10_000,
        "the new leader took {failover_ms} ms to resume the job"
    );
    assert!(
        done.steps
            .iter()
            .all(|s| s.state == StepState::Succeeded as i32),
        "{:?}",
        done.steps
    );
    assert_no_step_ran_twice(&stores, migrate.id);

    // Everything the old leader committed is there: the earlier jobs, their records.
    let mut c = jobs(&follower).await;
    let listed = c
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed.len(), 3, "CreateRg, CreateRegion, MigrateReplica");
    assert!(listed.iter().all(succeeded), "{listed:?}");

    let written = writer.stop().await;
    assert_rg_moved_from_1_to_4(&stores, written).await;
    for s in stores {
        s.stop().await;
    }
}
