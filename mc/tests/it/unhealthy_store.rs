//! A store whose disk fails keeps reporting, but says it cannot write: the MC treats it as
//! Down — it raises an alert naming the failure and repairs its RGs elsewhere — while the
//! store's heartbeats keep arriving. (Before, an fsync error stopped the store's RGs while its
//! heartbeats went on, and the MC never repaired around it.)

use std::time::{Duration, Instant};

use crate::common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_cannot_fsync_is_repaired_around_and_alerted() {
    let (dir, mc_addr, _mc) = one_mc(&[
        "--disconnected-after-ms",
        "2000",
        "--down-after-ms",
        "600000",
    ]);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    // Store 4's 40th WAL fsync fails (as on a dying disk).
    let _sick = StoreProcess::start(
        4,
        dir.path(),
        &mc_addr,
        &[("MC_FAILPOINTS", "store.wal.sync=error@40")],
    );
    create_rg_and_region_on(&mc_addr, &[1, 2, 4]).await;
    let addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let store4 = loop {
        // Writes go on through the two healthy members meanwhile.
        put(&addrs, written, b"v".to_vec()).await;
        written += 1;
        let listed = c
            .list_stores(ListStoresRequest::default())
            .await
            .unwrap()
            .into_inner()
            .stores;
        let s4 = listed.into_iter().find(|s| s.id == 4).unwrap();
        if s4.state == StoreState::Down as i32 {
            break s4;
        }
        assert!(
            Instant::now() < deadline,
            "store 4 never reported itself unhealthy"
        );
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = c
            .list_alerts(ListAlertsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .alerts;
        if alerts.iter().any(|a| {
            a.subject == "store/4"
                && a.message.contains("unhealthy")
                && a.message.contains("injected fsync error")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alert names the failure: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It still reports: Down because it says so, not because it went silent.
    let later = Instant::now() + Duration::from_secs(1);
    while Instant::now() < later {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s4 = c
        .list_stores(ListStoresRequest::default())
        .await
        .unwrap()
        .into_inner()
        .stores
        .into_iter()
        .find(|s| s.id == 4)
        .unwrap();
    assert!(s4.last_heartbeat_unix_ms > store4.last_heartbeat_unix_ms);
    assert_eq!(s4.state, StoreState::Down as i32);
    // The RG is repaired onto store 3 with every row, without store 4.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rg = c
            .get_rg(GetRgRequest { rg_id: 1 })
            .await
            .unwrap()
            .into_inner()
            .rg
            .unwrap();
        let members: Vec<u64> = rg.replicas.iter().map(|r| r.store_id).collect();
        if members.len() == 3 && !members.contains(&4) {
            break;
        }
        if Instant::now() >= deadline {
            let listed = jobs(&mc_addr)
                .await
                .list_jobs(ListJobsRequest::default())
                .await
                .unwrap()
                .into_inner();
            panic!("not repaired: {members:?}; jobs: {listed:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while stores[2].store.engine.count_range(b"a", b"z").unwrap().0 < written {
        assert!(
            Instant::now() < deadline,
            "store 3 misses acknowledged writes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
