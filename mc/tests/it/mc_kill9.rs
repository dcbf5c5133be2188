//! `mc serve` as a real process with four store nodes: CreateRg, CreateRegion and a
//! MigrateReplica submitted over gRPC while a client writes. The MC is killed with SIGKILL in
//! the middle of the migration and restarted on its data directory: the job completes, the
//! restarted MC re-sent its in-flight step and no step ran twice, every acknowledged write is
//! on the new replica, and the old store holds nothing of the RG.

use crate::common;

use common::*;
use proto::v1::*;
use store_node::client::BackgroundWriter;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_survives_kill_9_of_the_mc() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let mut mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    let addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();
    create_rg_and_region(&mc_addr).await;
    // Enough data that the learner's catch-up takes a while: the kill lands inside it.
    for i in 0..200 {
        put(&addrs, i, vec![i as u8; 16 << 10]).await;
    }

    let writer = BackgroundWriter::start(addrs.clone(), 1, 1, 200, key, |_| b"v".to_vec());
    let migrate = submit(
        &mc_addr,
        job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 1,
            to_store_id: 4,
        }),
        "migrate",
    )
    .await;
    // Kill the MC while AddLearner (the catch-up) is in flight.
    let at_kill = wait_job(&mc_addr, migrate.id, |j| {
        j.current_step >= 2 || succeeded(j)
    })
    .await;
    assert!(
        !succeeded(&at_kill),
        "the migration finished before the kill"
    );
    let killed_at_ms = now_ms();
    mc.kill();
    let _mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    let done = wait_job(&mc_addr, migrate.id, succeeded).await;
    let written = writer.stop().await;
    assert!(
        done.steps
            .iter()
            .all(|s| s.state == StepState::Succeeded as i32),
        "{:?}",
        done.steps
    );
    let records = records(&mc_addr, migrate.id).await;
    assert!(
        records.iter().any(|r| r.dispatched_unix_ms >= killed_at_ms),
        "the restarted MC dispatched the rest of the job: {records:?}"
    );
    assert_no_step_ran_twice(&stores, migrate.id);

    assert_rg_moved_from_1_to_4(&stores, written).await;
    for s in stores {
        s.stop().await;
    }
}
