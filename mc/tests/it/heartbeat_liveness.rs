//! Stores that report at their interval stay Up: with the playground's 1 s heartbeats and a
//! 5 s disconnect threshold, the MC must see every store heartbeat on time and never mark a
//! reporting store Disconnected. (The RG heartbeat stream used to run under a 5 s channel
//! timeout, so it was cut every 5 s and the store re-registered with a growing backoff.)

use std::time::{Duration, Instant};

use crate::common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_reporting_every_second_stay_up_on_one_session() {
    let (dir, mc_addr, _mc) = one_mc(&[
        "--store-heartbeat-ms",
        "1000",
        "--rg-heartbeat-ms",
        "1000",
        "--disconnected-after-ms",
        "5000",
        "--down-after-ms",
        "60000",
    ]);
    jobs(&mc_addr).await;
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(
            StoreNode::start_on_loopback(
                id,
                dir.path(),
                raft.clone(),
                vec![mc_addr.clone()],
                Duration::from_secs(1),
            )
            .await
            .unwrap(),
        );
    }
    // An RG, so the RG heartbeat stream carries something.
    create_rg_and_region(&mc_addr).await;

    let mut c = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    // Longer than two of the old 5 s cuts.
    let until = Instant::now() + Duration::from_secs(12);
    let mut last: [u64; 3] = [0; 3];
    let mut longest_gap_ms = 0;
    while Instant::now() < until {
        let listed = c
            .list_stores(ListStoresRequest::default())
            .await
            .unwrap()
            .into_inner()
            .stores;
        assert_eq!(listed.len(), 3, "{listed:?}");
        for s in &listed {
            assert_eq!(
                s.state,
                proto::v1::StoreState::Up as i32,
                "store {} is reporting every second but the MC says {:?}",
                s.id,
                s.state()
            );
            let i = (s.id - 1) as usize;
            if last[i] != 0 && s.last_heartbeat_unix_ms > last[i] {
                longest_gap_ms = longest_gap_ms.max(s.last_heartbeat_unix_ms - last[i]);
            }
            last[i] = last[i].max(s.last_heartbeat_unix_ms);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        longest_gap_ms <= 2_500,
        "a store heartbeat came {longest_gap_ms} ms after the one before (interval 1,000 ms)"
    );
    for s in &stores {
        assert_eq!(
            s.store
                .heartbeat_sessions
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "store {} re-registered: its heartbeat session was cut",
            s.store.id()
        );
    }
    let alerts = c
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(
        alerts.iter().all(|a| !a.subject.starts_with("store/")),
        "{alerts:?}"
    );
}
