//! The DDL path on the store side, at the default Raft timing (2 s heartbeats, 10-20 s
//! election timeouts): a new RG's designated leader campaigns at once, so the RG leads when
//! its last Create step returns; and many regions are created by one Raft command, all or
//! none.

use std::time::{Duration, Instant};

use crate::common;

use common::*;
use proto::v1::*;
use step_command::Step;

fn descriptor(id: u64, start: &[u8], end: &[u8]) -> RegionDescriptor {
    RegionDescriptor {
        region_id: id,
        object_id: 7,
        range: Some(KeyRange {
            start: start.to_vec(),
            end: end.to_vec(),
        }),
        epoch: Some(RegionEpoch {
            version: 1,
            conf_ver: 0,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_rg_leads_at_once_and_takes_regions_in_bulk() {
    let cluster = Cluster::start_with(3, &["--raft-heartbeat-ms", "2000"]).await;
    let peers: Vec<_> = [1, 2, 3].iter().map(|id| cluster.peer(*id)).collect();
    let started = Instant::now();
    // Followers first, the designated leader (store 3) last, campaigning.
    for id in [1u64, 2, 3] {
        let outcome = step(
            &cluster.addr(id),
            RG,
            1,
            id as u32,
            Step::Create(CreateStep {
                bootstrap: true,
                members: peers.clone(),
                regions: vec![descriptor(REGION, b"a", b"b")],
                campaign: id == 3,
            }),
        )
        .await;
        assert_ok(&outcome);
    }
    let status = replica_status(&cluster.addr(3), RG).await.expect("replica");
    assert!(
        status.is_leader,
        "store 3 leads when its campaigning Create returns: {status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no election timeout waited: {:?}",
        started.elapsed()
    );

    // One command, all or none: a batch with one overlapping region creates nothing.
    let mut batch: Vec<RegionDescriptor> = (0..300u64)
        .map(|i| {
            let start = format!("c{i:04}");
            let end = format!("c{:04}", i + 1);
            descriptor(10 + i, start.as_bytes(), end.as_bytes())
        })
        .collect();
    let overlapping = descriptor(9, b"a0", b"a1");
    let mut bad = batch.clone();
    bad.push(overlapping);
    let refused = step(
        &cluster.addr(3),
        RG,
        2,
        1,
        Step::CreateRegion(CreateRegionStep {
            region: None,
            regions: bad,
        }),
    )
    .await;
    assert!(
        !matches!(refused.result, Some(step_outcome::Result::Ok(_))),
        "{refused:?}"
    );
    let regions = replica_status(&cluster.addr(3), RG).await.unwrap().regions;
    assert_eq!(regions.len(), 1, "nothing of a refused batch was created");

    let created = step(
        &cluster.addr(3),
        RG,
        3,
        1,
        Step::CreateRegion(CreateRegionStep {
            region: None,
            regions: std::mem::take(&mut batch),
        }),
    )
    .await;
    assert_ok(&created);
    // A retry of the same batch is a no-op, not an overlap.
    let again = step(
        &cluster.addr(3),
        RG,
        3,
        2,
        Step::CreateRegion(CreateRegionStep {
            region: None,
            regions: (0..300u64)
                .map(|i| {
                    let start = format!("c{i:04}");
                    let end = format!("c{:04}", i + 1);
                    descriptor(10 + i, start.as_bytes(), end.as_bytes())
                })
                .collect(),
        }),
    )
    .await;
    assert_ok(&again);
    for id in [1u64, 2, 3] {
        wait_regions(&cluster.addr(id), 301).await;
    }
    // The new regions serve writes.
    put_one(
        &[cluster.addr(3)],
        10 + 150,
        1,
        b"c0150-row".to_vec(),
        b"v".to_vec(),
    )
    .await;
    let got = get_via(&cluster.addr(3), 160, 1, b"c0150-row").await;
    assert!(got.found && got.value == b"v", "{got:?}");
}

async fn wait_regions(addr: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = replica_status(addr, RG)
            .await
            .map(|s| s.regions.len())
            .unwrap_or(0);
        if have == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: {have} regions, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
