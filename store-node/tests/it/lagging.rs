//! Members that lag behind a split or a merge: a replica added to an RG made by SplitRg gets
//! the data written before the split; a member that catches up on a parent by snapshot past a
//! SplitRg joins the new RG and receives its data; a member that catches up on a merge target
//! by snapshot keeps the merged data when its source replica is destroyed; a replica added to a
//! merge target after the merge gets the merged regions in a snapshot, never by replaying it.

use std::time::{Duration, Instant};

use crate::common::*;
use proto::v1::*;
use step_command::Step;

fn epoch(version: u64) -> Option<RegionEpoch> {
    Some(RegionEpoch {
        version,
        conf_ver: 0,
    })
}

fn ok(outcome: StepOutcome) {
    assert_ok(&outcome)
}

/// Region 1 [a, z) split at key(split) into region 2, which moves to RG 2.
async fn split_off_rg2(cluster: &Cluster, split: u64) {
    ok(leader_step(
        cluster,
        RG,
        50,
        1,
        Step::SplitRegion(SplitRegionStep {
            region_id: REGION,
            split_key: key(split),
            new_region_id: 2,
            expected_epoch: epoch(1),
        }),
    )
    .await);
    ok(leader_step(
        cluster,
        RG,
        51,
        1,
        Step::SplitRg(SplitRgStep {
            new_rg_id: 2,
            region_ids: vec![2],
        }),
    )
    .await);
}

/// RG 1 (leading on store 1) with region 2 split off into RG 2 (leading on store 1 too), RG 2
/// offline on every store for a merge (job `job`); returns RG 2's final applied index.
async fn rg2_offline_for_a_merge(cluster: &Cluster, job: u64) -> u64 {
    split_off_rg2(cluster, 50).await;
    make_leader(cluster, RG, 1, job).await;
    make_leader(cluster, 2, 1, job + 1).await;
    for id in [1, 2, 3] {
        ok(step(
            &cluster.addr(id),
            2,
            job + 2,
            id as u32,
            Step::Offline(OfflineStep {
                transfer_leader_to: 0,
                whole_rg: true,
            }),
        )
        .await);
    }
    replica_status(&cluster.addr(1), 2)
        .await
        .unwrap()
        .applied_index
}

fn merge_rg2(applied: u64) -> Step {
    Step::MergeRg(MergeRgStep {
        source_rg_id: 2,
        source_applied_index: applied,
        expected_members: vec![1, 2, 3],
    })
}

async fn wait_keys(dir: &std::path::Path, what: &str, start: &[u8], end: &[u8], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = keys_in(dir, start, end);
        if have >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {have} of {n} keys");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_of_a_split_off_rg_gets_the_data_written_before_the_split() {
    let mut cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    put_all(&cluster, 0..400, 16).await;
    split_off_rg2(&cluster, 200).await;
    cluster.add_store(4);
    wait_ready(&cluster.addr(4)).await;
    ok(step(
        &cluster.addr(4),
        2,
        60,
        1,
        Step::Create(CreateStep {
            bootstrap: false,
            members: vec![],
            campaign: false,
            regions: vec![],
        }),
    )
    .await);
    ok(leader_step(
        &cluster,
        2,
        60,
        2,
        Step::AddLearner(AddLearnerStep {
            learner: Some(cluster.peer(4)),
        }),
    )
    .await);
    // The learner holds all 200 keys region 2 had when it left RG 1 (its RG's log alone
    // would have given it the region with none of them).
    let dir = cluster.store(4).dir.clone();
    wait_keys(&dir, "learner of RG 2", &key(200), &key(400), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_missed_a_split_joins_the_new_rg_from_the_parents_snapshot() {
    let flags = ["--snapshot-after-logs", "40", "--logs-to-keep", "5"];
    let mut cluster = Cluster::start_with(3, &flags).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    put_all(&cluster, 0..100, 8).await;
    make_leader(&cluster, RG, 1, 40).await;
    cluster.store(3).kill9();
    split_off_rg2(&cluster, 50).await;
    // RG 1 moves on far enough to compact its log past the split; RG 2 takes writes too.
    let live: Vec<String> = [1, 2].iter().map(|id| cluster.addr(*id)).collect();
    for i in 0..120 {
        put_one(&live, REGION, 2, key(i % 50), b"again".to_vec()).await;
    }
    for i in 0..20 {
        put_one(&live, 2, 3, key(100 + i), b"after".to_vec()).await;
    }
    cluster.store(3).restart();
    wait_ready(&cluster.addr(3)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while replica_status(&cluster.addr(3), 2).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "store 3 never joined RG 2, which it was a member of when RG 1 split"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It holds RG 2's data: the 50 keys from before the split and the 20 written after.
    let dir = cluster.store(3).dir.clone();
    wait_keys(&dir, "store 3's RG 2", &key(50), &key(200), 70).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_missed_a_merge_keeps_the_merged_data_when_the_source_is_destroyed() {
    let flags = ["--snapshot-after-logs", "40", "--logs-to-keep", "5"];
    let mut cluster = Cluster::start_with(3, &flags).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    put_all(&cluster, 0..100, 8).await;
    let applied = rg2_offline_for_a_merge(&cluster, 41).await;
    // Store 3 stops: the merge commits and RG 1's log is compacted past it without store 3.
    cluster.store(3).kill9();
    ok(leader_step(&cluster, RG, 71, 1, merge_rg2(applied)).await);
    let live: Vec<String> = [1, 2].iter().map(|id| cluster.addr(*id)).collect();
    for i in 0..120 {
        put_one(&live, 2, 4, key(50 + i % 50), b"merged".to_vec()).await;
    }
    for id in [1, 2] {
        ok(step(
            &cluster.addr(id),
            2,
            72,
            id as u32,
            Step::Destroy(DestroyStep {
                merged_into_rg_id: RG,
                only_if_empty: false,
            }),
        )
        .await);
    }
    cluster.store(3).restart();
    wait_ready(&cluster.addr(3)).await;
    // Store 3's RG 1 catches up by snapshot, region 2 included; its RG 2 replica still lists
    // region 2 in its own records, as it never applied the merge.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rg1 = replica_status(&cluster.addr(3), RG).await;
        if rg1.is_some_and(|r| r.regions.iter().any(|x| x.id == 2)) {
            break;
        }
        assert!(Instant::now() < deadline, "store 3's RG 1 never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Destroying store 3's source replica keeps region 2's data, which RG 1 holds now.
    ok(step(
        &cluster.addr(3),
        2,
        72,
        3,
        Step::Destroy(DestroyStep {
            merged_into_rg_id: RG,
            only_if_empty: false,
        }),
    )
    .await);
    assert!(replica_status(&cluster.addr(3), 2).await.is_none());
    let dir = cluster.store(3).dir.clone();
    wait_keys(&dir, "store 3's merged region 2", &key(50), &key(100), 50).await;
    let rg1 = replica_status(&cluster.addr(3), RG).await.unwrap();
    assert!(
        rg1.regions.iter().any(|r| r.id == 2),
        "store 3's RG 1 holds region 2: {rg1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_added_after_a_merge_gets_the_merged_regions_in_a_snapshot() {
    // Snapshots every 40 entries: RG 1 has one from before the merge, and fewer than 40
    // entries follow the merge, so nothing but the merge step itself makes a newer one.
    let flags = ["--snapshot-after-logs", "40", "--logs-to-keep", "5"];
    let mut cluster = Cluster::start_with(3, &flags).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    put_all(&cluster, 0..100, 8).await;
    let applied = rg2_offline_for_a_merge(&cluster, 81).await;
    ok(leader_step(&cluster, RG, 84, 1, merge_rg2(applied)).await);
    // A retry of the merge (its outcome lost to the MC) finds the source empty: done, and no
    // second entry for lagging members to apply.
    let repeat = leader_step(&cluster, RG, 84, 2, merge_rg2(applied)).await;
    match &repeat.result {
        Some(step_outcome::Result::Ok(ok)) => assert!(ok.regions.is_empty(), "{repeat:?}"),
        other => panic!("the repeated merge: {other:?}"),
    }
    // A new replica of RG 1 on store 4, which never hosted RG 2: replaying the merge entry
    // would leave it without region 2's data (and stop it: the apply has no source).
    cluster.add_store(4);
    wait_ready(&cluster.addr(4)).await;
    ok(step(
        &cluster.addr(4),
        RG,
        85,
        1,
        Step::Create(CreateStep {
            bootstrap: false,
            members: vec![],
            campaign: false,
            regions: vec![],
        }),
    )
    .await);
    ok(leader_step(
        &cluster,
        RG,
        85,
        2,
        Step::AddLearner(AddLearnerStep {
            learner: Some(cluster.peer(4)),
        }),
    )
    .await);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rg1 = replica_status(&cluster.addr(4), RG).await;
        if rg1.is_some_and(|r| r.regions.iter().any(|x| x.id == 2)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store 4's RG 1 never got the merged region 2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = cluster.store(4).dir.clone();
    wait_keys(&dir, "store 4's merged region 2", &key(50), &key(100), 50).await;
    wait_keys(&dir, "store 4's region 1", &key(0), &key(50), 50).await;
}

/// The same member, its source replica destroyed while the target's snapshot is being
/// installed: after the snapshot's data is in and before the store knows whose the range is.
/// Here the merged region was merged on into its neighbour (MergeRegion), so the snapshot
/// holds region 1 over the whole range and the source's records still name region 2: the
/// destroy must not take region 2's range for free and delete what was just ingested.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_destroyed_during_the_targets_snapshot_install_keeps_the_merged_data() {
    let flags = ["--snapshot-after-logs", "40", "--logs-to-keep", "5"];
    let mut cluster = Cluster::start_with(3, &flags).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    put_all(&cluster, 0..100, 8).await;
    let applied = rg2_offline_for_a_merge(&cluster, 41).await;
    cluster.store(3).kill9();
    ok(leader_step(&cluster, RG, 71, 1, merge_rg2(applied)).await);
    let regions = replica_status(&cluster.addr(1), RG).await.unwrap().regions;
    let epoch_of = |id: u64| regions.iter().find(|r| r.id == id).unwrap().epoch;
    ok(leader_step(
        &cluster,
        RG,
        73,
        1,
        Step::MergeRegion(MergeRegionStep {
            left_region_id: REGION,
            right_region_id: 2,
            left_epoch: epoch_of(REGION),
            right_epoch: epoch_of(2),
        }),
    )
    .await);
    let live: Vec<String> = [1, 2].iter().map(|id| cluster.addr(*id)).collect();
    let merged = replica_status(&cluster.addr(1), RG).await.unwrap().regions;
    let version = merged[0].epoch.unwrap().version;
    for i in 0..400 {
        put_one(&live, REGION, version, key(50 + i % 50), b"merged".to_vec()).await;
    }
    // Store 3 comes back and stops in its RG 1 snapshot install, right after the ingest.
    let rendezvous = tempfile::tempdir().unwrap();
    cluster.store(3).proc.env.push((
        "MC_FAILPOINTS".into(),
        format!(
            "store.snapshot.ingested=rendezvous({})@1",
            rendezvous.path().display()
        ),
    ));
    cluster.store(3).restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    let hit = loop {
        let hit = std::fs::read_dir(rendezvous.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("hit."));
        if let Some(hit) = hit {
            break hit;
        }
        assert!(
            Instant::now() < deadline,
            "store 3 never installed a snapshot: {:?} {:?}",
            std::fs::read_dir(rendezvous.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>(),
            replica_status(&cluster.addr(3), RG).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let addr = cluster.addr(3);
    let destroy = tokio::spawn(async move {
        step(
            &addr,
            2,
            72,
            3,
            // As the MC destroys a stray of a retired RG: without waiting for a merge.
            Step::Destroy(DestroyStep {
                merged_into_rg_id: 0,
                only_if_empty: false,
            }),
        )
        .await
    });
    // The install is held at the point for a second, or until the destroy ended (one that
    // does not wait for the install ends within milliseconds).
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while !destroy.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    std::fs::write(rendezvous.path().join(hit.replacen("hit.", "go.", 1)), b"").unwrap();
    ok(destroy.await.unwrap());
    let dir = cluster.store(3).dir.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rg1 = replica_status(&cluster.addr(3), RG).await;
        if rg1.is_some_and(|r| r.regions.iter().all(|x| x.id == REGION)) {
            break;
        }
        assert!(Instant::now() < deadline, "store 3's RG 1 never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replica_status(&cluster.addr(3), 2).await.is_none());
    wait_keys(&dir, "store 3's merged range", &key(50), &key(100), 50).await;
}
