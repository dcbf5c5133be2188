//! kill -9 of a new replica while it receives a snapshot. After restart it either completes
//! catch-up (and holds exactly the RG's data) or is removed and destroyed cleanly.

use crate::common;

use std::time::Duration;

use common::*;
use proto::v1::*;
use step_command::Step;

const FLAGS: &[&str] = &[
    "--snapshot-after-logs",
    "10",
    "--logs-to-keep",
    "2",
    "--snapshot-rate-bytes",
    "2000000",
];
const KEYS: u64 = 1_500;
const SIZE: usize = 4_096;

fn add_learner(cluster: &Cluster, id: u64, deadline_ms: u32) -> ExecuteStepRequest {
    ExecuteStepRequest {
        envelope: Some(StepEnvelope {
            job_id: 60 + id,
            step_seq: 2,
            attempt: 1,
            mc_term: 1,
            rg_id: RG,
            deadline_ms,
        }),
        command: Some(StepCommand {
            step: Some(Step::AddLearner(AddLearnerStep {
                learner: Some(cluster.peer(id)),
            })),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_snapshot_then_catches_up_or_is_destroyed_cleanly() {
    let _heavy = heavy().await;
    let mut cluster = Cluster::start_with(3, FLAGS).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    batch_put(&cluster, 0..KEYS, SIZE).await;
    let leader = cluster.wait_leader(RG).await;

    // Store 4: killed mid-transfer, restarted, and the leader's AddLearner still completes.
    cluster.add_store(4);
    let s4 = cluster.store(4).dir.clone();
    wait_ready(&cluster.addr(4)).await;
    assert_ok(
        &step(
            &cluster.addr(4),
            RG,
            64,
            1,
            Step::Create(CreateStep::default()),
        )
        .await,
    );
    let leader_addr = cluster.addr(leader);
    let adding = tokio::spawn({
        let req = add_learner(&cluster, 4, 60_000);
        async move { execute(&leader_addr, req).await }
    });
    // Under a loaded machine the leader may take a while to start the transfer: wait for it,
    // however long a debug build on shared cores needs.
    wait_until(
        "store 4 to receive a snapshot",
        Duration::from_secs(90),
        || receiving_snapshot(&s4),
    )
    .await;
    cluster.store(4).kill9();
    cluster.store(4).restart();
    wait_ready(&cluster.addr(4)).await;
    let added = adding.await.unwrap();
    assert_ok(added.outcome.as_ref().unwrap());
    assert!(
        !receiving_snapshot(&s4),
        "no partial snapshot may be left behind"
    );
    assert_ok(
        &leader_step(
            &cluster,
            RG,
            64,
            3,
            Step::Promote(PromoteStep { store_id: 4 }),
        )
        .await,
    );
    let pairs = scan_on(&cluster, 4, 65).await;
    assert_eq!(pairs.len() as u64, KEYS);
    for (i, pair) in pairs.iter().enumerate() {
        assert_eq!(
            (&pair.key, &pair.value),
            (&key(i as u64), &value(i as u64, SIZE)),
            "store 4 holds corrupt data"
        );
    }

    // Store 5: killed mid-transfer, restarted, then removed and destroyed.
    let leader = cluster.wait_leader(RG).await;
    cluster.add_store(5);
    let s5 = cluster.store(5).dir.clone();
    wait_ready(&cluster.addr(5)).await;
    assert_ok(
        &step(
            &cluster.addr(5),
            RG,
            66,
            1,
            Step::Create(CreateStep::default()),
        )
        .await,
    );
    let leader_addr = cluster.addr(leader);
    let adding = tokio::spawn({
        let req = add_learner(&cluster, 5, 3_000);
        async move { execute(&leader_addr, req).await }
    });
    wait_until(
        "store 5 to receive a snapshot",
        Duration::from_secs(20),
        || receiving_snapshot(&s5),
    )
    .await;
    cluster.store(5).kill9();
    let _ = adding.await.unwrap();
    cluster.store(5).restart();
    wait_ready(&cluster.addr(5)).await;
    assert_ok(
        &leader_step(
            &cluster,
            RG,
            67,
            1,
            Step::Remove(RemoveStep { store_id: 5 }),
        )
        .await,
    );
    assert_ok(
        &step(
            &cluster.addr(5),
            RG,
            67,
            2,
            Step::Destroy(DestroyStep::default()),
        )
        .await,
    );
    cluster.store(5).kill9();
    assert_eq!(
        inspect_rg(&s5, RG),
        (0, 0, 0),
        "store 5 must hold nothing of the RG"
    );
}
