//! Region split and merge inside an RG, then SplitRg into a new RG and MergeRg back — data
//! intact and never copied: the user keys stay where they are in each store's RocksDB and
//! only region metadata moves.

use crate::common;

use common::*;
use proto::v1::*;
use step_command::Step;

fn ok_regions(outcome: &StepOutcome) -> Vec<Region> {
    match &outcome.result {
        Some(step_outcome::Result::Ok(ok)) => ok.regions.clone(),
        other => panic!("step failed: {other:?}"),
    }
}

fn epoch(version: u64) -> Option<RegionEpoch> {
    Some(RegionEpoch {
        version,
        conf_ver: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_and_merge_regions_and_rgs_without_copying_data() {
    let mut cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    // Keys k00000000.. all lie in [a, z); "k00001000" splits them 1000 / 1000.
    put_all(&cluster, 0..2_000, 32).await;
    let split_key = key(1_000);

    // SplitRegion: region 1 = [a, k..1000), region 2 = [k..1000, z), both at version 2.
    let regions = ok_regions(
        &leader_step(
            &cluster,
            RG,
            50,
            1,
            Step::SplitRegion(SplitRegionStep {
                region_id: REGION,
                split_key: split_key.clone(),
                new_region_id: 2,
                expected_epoch: epoch(1),
            }),
        )
        .await,
    );
    assert_eq!(regions.len(), 2);
    let leader = cluster.wait_leader(RG).await;
    let got = get_via(&cluster.addr(leader), 2, 2, &key(1_500)).await;
    assert!(
        got.error.is_none() && got.found && got.value == b"v1500".to_vec(),
        "{got:?}"
    );
    // The old epoch is refused on region 1 now.
    assert!(
        get_via(&cluster.addr(leader), 1, 1, &key(5))
            .await
            .error
            .is_some()
    );

    // MergeRegion back: one region [a, z) at version 3.
    let merged = ok_regions(
        &leader_step(
            &cluster,
            RG,
            51,
            1,
            Step::MergeRegion(MergeRegionStep {
                left_region_id: 1,
                right_region_id: 2,
                left_epoch: epoch(2),
                right_epoch: epoch(2),
            }),
        )
        .await,
    );
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].range.as_ref().unwrap().end, b"z".to_vec());
    let got = get_via(&cluster.addr(leader), 1, 3, &key(1_999)).await;
    assert!(got.found, "{got:?}");

    // Split again, then move region 2 into a new RG 2 on the same stores.
    ok_regions(
        &leader_step(
            &cluster,
            RG,
            52,
            1,
            Step::SplitRegion(SplitRegionStep {
                region_id: 1,
                split_key: split_key.clone(),
                new_region_id: 2,
                expected_epoch: epoch(3),
            }),
        )
        .await,
    );
    let moved = ok_regions(
        &leader_step(
            &cluster,
            RG,
            53,
            1,
            Step::SplitRg(SplitRgStep {
                new_rg_id: 2,
                region_ids: vec![2],
            }),
        )
        .await,
    );
    assert_eq!((moved[0].id, moved[0].rg_id), (2, 2));
    let rg2_leader = cluster.wait_leader(2).await;
    for id in [1, 2, 3] {
        let status = replica_status(&cluster.addr(id), 2)
            .await
            .expect("every member hosts the new RG");
        assert_eq!(status.members.len(), 3);
    }
    // Region 2 is now served by RG 2 at version 5 (split 4, move 5).
    let got = get_via(&cluster.addr(rg2_leader), 2, 5, &key(1_234)).await;
    assert!(got.error.is_none() && got.found, "{got:?}");
    put_one(
        &[cluster.addr(rg2_leader)],
        2,
        5,
        b"n-new".to_vec(),
        b"fresh".to_vec(),
    )
    .await;
    let rg1 = replica_status(&cluster.addr(leader), RG).await.unwrap();
    assert_eq!(
        rg1.regions.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![1]
    );

    // MergeRg: offline the whole source RG, then the target takes its regions.
    for id in [1, 2, 3] {
        assert_ok(
            &step(
                &cluster.addr(id),
                2,
                54,
                id as u32,
                Step::Offline(OfflineStep {
                    transfer_leader_to: 0,
                    whole_rg: true,
                }),
            )
            .await,
        );
    }
    let applied = replica_status(&cluster.addr(rg2_leader), 2)
        .await
        .unwrap()
        .applied_index;
    // Planned for other members than the target has (a replica added meanwhile would have no
    // source to take the data from): refused on every replica alike, nothing changes.
    let refused = leader_step(
        &cluster,
        RG,
        58,
        1,
        Step::MergeRg(MergeRgStep {
            source_rg_id: 2,
            source_applied_index: applied,
            expected_members: vec![1, 2],
        }),
    )
    .await;
    assert!(
        !matches!(refused.result, Some(step_outcome::Result::Ok(_))),
        "{refused:?}"
    );
    let taken = ok_regions(
        &leader_step(
            &cluster,
            RG,
            55,
            1,
            Step::MergeRg(MergeRgStep {
                source_rg_id: 2,
                source_applied_index: applied,
                expected_members: vec![1, 2, 3],
            }),
        )
        .await,
    );
    assert_eq!(
        taken.iter().map(|r| (r.id, r.rg_id)).collect::<Vec<_>>(),
        vec![(2, RG)]
    );
    for id in [1, 2, 3] {
        assert_ok(
            &step(
                &cluster.addr(id),
                2,
                56,
                id as u32,
                Step::Destroy(DestroyStep {
                    merged_into_rg_id: RG,
                    only_if_empty: false,
                }),
            )
            .await,
        );
    }
    let merged = ok_regions(
        &leader_step(
            &cluster,
            RG,
            57,
            1,
            Step::MergeRegion(MergeRegionStep {
                left_region_id: 1,
                right_region_id: 2,
                left_epoch: epoch(4),
                right_epoch: epoch(6),
            }),
        )
        .await,
    );
    assert_eq!(merged[0].epoch.unwrap().version, 7);

    // Every key, the one written through RG 2 included, is served by region 1 of RG 1.
    let pairs = loop {
        let leader = cluster.wait_leader(RG).await;
        match try_scan_all(&cluster.addr(leader), 7).await {
            Ok(pairs) => break pairs,
            Err(e) if e.code() == ErrorCode::NotLeader => continue,
            Err(e) => panic!("scan failed: {e:?}"),
        }
    };
    assert_eq!(pairs.len(), 2_001);
    assert!(
        pairs
            .iter()
            .any(|p| p.key == b"n-new" && p.value == b"fresh")
    );

    // No copy: each store's data CF holds exactly one entry per write ever applied.
    for id in [1, 2, 3] {
        let dir = cluster.store(id).dir.clone();
        cluster.store(id).kill9();
        assert_eq!(data_entries(&dir), 2_001, "store {id} copied data");
    }
}

/// At the default Raft timing (2 s heartbeats, 6-12 s election timeouts) an RG split out of
/// another leads at once: the parent's leader campaigns for it. Before, nothing led it until an
/// election timeout, and its regions took no write meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_rg_split_out_leads_at_once() {
    let cluster = Cluster::start_with(3, &["--raft-heartbeat-ms", "2000"]).await;
    let peers: Vec<_> = (1..=3).map(|id| cluster.peer(id)).collect();
    // Store 1 is sent its Create last and campaigns: the parent leads at once too.
    for id in [2, 3, 1] {
        let outcome = step(
            &cluster.addr(id),
            RG,
            1,
            1,
            Step::Create(CreateStep {
                bootstrap: true,
                members: peers.clone(),
                campaign: id == 1,
                regions: [
                    (1, b"a".to_vec(), b"m".to_vec()),
                    (2, b"m".to_vec(), b"z".to_vec()),
                ]
                .into_iter()
                .map(|(region_id, start, end)| RegionDescriptor {
                    region_id,
                    object_id: 7,
                    range: Some(KeyRange { start, end }),
                    epoch: epoch(1),
                })
                .collect(),
            }),
        )
        .await;
        assert_ok(&outcome);
    }
    let leader = cluster.wait_leader(RG).await;
    let split = step(
        &cluster.addr(leader),
        RG,
        2,
        1,
        Step::SplitRg(SplitRgStep {
            new_rg_id: 2,
            region_ids: vec![2],
        }),
    )
    .await;
    assert_ok(&split);
    let started = std::time::Instant::now();
    let new_leader = cluster.wait_leader(2).await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_millis(2_500),
        "the new RG had no leader for {took:?} (an election timeout is 6-12 s here)"
    );
    assert_eq!(new_leader, leader, "the parent's leader leads it");
}

/// A store refuses to destroy, as part of deleting a whole RG, a replica that still holds a
/// region: a region placed in the RG after the delete was planned is not deleted with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_rg_that_still_holds_a_region_is_refused_by_the_store() {
    let cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    let outcome = step(
        &cluster.addr(3),
        RG,
        90,
        1,
        Step::Destroy(DestroyStep {
            merged_into_rg_id: 0,
            only_if_empty: true,
        }),
    )
    .await;
    match &outcome.result {
        Some(step_outcome::Result::Failed(f)) => {
            assert!(f.reason.contains("still holds 1 regions"), "{f:?}")
        }
        other => panic!("{other:?}"),
    }
    let status = status(&cluster.addr(3)).await.unwrap();
    assert!(
        status.replicas.iter().any(|r| r.rg_id == RG),
        "the replica is still there"
    );
}
