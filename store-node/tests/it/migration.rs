//! A replica migration driven step by step, exactly as the MC sends it, while a writer keeps
//! writing: Create(s4) → AddLearner(s4) → Promote(s4) → Offline(s1) → Remove(s1) → Destroy(s1).

use crate::common;

use common::*;
use proto::v1::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrate_replica_step_by_step_under_writes() {
    let mut cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    // Make s1 the leader so Offline(s1) must move leadership away.
    make_leader(&cluster, RG, 1, 90).await;
    put_all(&cluster, 0..2_000, 32).await;
    let s4 = cluster.add_store(4);
    wait_ready(&s4).await;

    // A writer that records what was acknowledged.
    let addrs: Vec<String> = [1, 2, 3, 4].iter().map(|id| cluster.addr(*id)).collect();
    let writer = store_node::client::BackgroundWriter::start(addrs, REGION, 1, 2_000, key, |i| {
        format!("v{i}").into_bytes()
    });

    use step_command::Step;
    let job = 10;
    assert_ok(
        &step(
            &s4,
            RG,
            job,
            1,
            Step::Create(CreateStep {
                bootstrap: false,
                members: vec![],
                campaign: false,
                regions: vec![],
            }),
        )
        .await,
    );
    assert_ok(
        &leader_step(
            &cluster,
            RG,
            job,
            2,
            Step::AddLearner(AddLearnerStep {
                learner: Some(cluster.peer(4)),
            }),
        )
        .await,
    );
    let promoted = leader_step(
        &cluster,
        RG,
        job,
        3,
        Step::Promote(PromoteStep { store_id: 4 }),
    )
    .await;
    assert_ok(&promoted);
    let Some(step_outcome::Result::Ok(ok)) = promoted.result else {
        unreachable!()
    };
    assert!(
        ok.members
            .iter()
            .any(|m| m.store_id == 4 && m.role == ReplicaRole::Voter as i32),
        "{ok:?}"
    );

    assert_ok(
        &step(
            &cluster.addr(1),
            RG,
            job,
            4,
            Step::Offline(OfflineStep {
                transfer_leader_to: 0,
                whole_rg: false,
            }),
        )
        .await,
    );
    let s1 = replica_status(&cluster.addr(1), RG).await.unwrap();
    assert!(
        s1.offline && !s1.is_leader,
        "s1 must be offline and not lead: {s1:?}"
    );
    assert_ok(
        &leader_step(
            &cluster,
            RG,
            job,
            5,
            Step::Remove(RemoveStep { store_id: 1 }),
        )
        .await,
    );
    assert_ok(
        &step(
            &cluster.addr(1),
            RG,
            job,
            6,
            Step::Destroy(DestroyStep::default()),
        )
        .await,
    );
    assert!(
        replica_status(&cluster.addr(1), RG).await.is_none(),
        "s1 still hosts the RG"
    );

    let written = writer.stop().await;
    assert!(
        written > 2_000,
        "the writer made no progress during the migration"
    );

    let pairs = scan_on(&cluster, 4, 91).await;
    assert_eq!(
        pairs.len() as u64,
        written,
        "s4 must hold every acknowledged write"
    );
    for (i, pair) in pairs.iter().enumerate() {
        assert_eq!(pair.key, key(i as u64));
    }
    let leader = replica_status(&cluster.addr(4), RG).await.unwrap();
    let members: Vec<u64> = leader.members.iter().map(|m| m.store_id).collect();
    assert_eq!(members, vec![2, 3, 4]);

    cluster.store(1).kill9();
    let (data, logs, records) = inspect_rg(&cluster.store(1).dir.clone(), RG);
    assert_eq!(
        (data, logs, records),
        (0, 0, 0),
        "s1 must hold no data, log or records of the RG"
    );
    // Control: the same inspection of a remaining member finds everything.
    cluster.store(2).kill9();
    let (data, logs, records) = inspect_rg(&cluster.store(2).dir.clone(), RG);
    assert_eq!(data as u64, written);
    assert!(logs > 0 && records > 0);
}
