//! A new MC leader is not blind before the stores report to it: it starts from the RG shapes
//! the catalog keeps current (heartbeats, step outcomes, job effects), says how ready it is
//! (RGs heard from in its term out of those known), refuses what would be unsafe on an RG it
//! has not heard from (membership changes wait, a store holding replicas cannot become a
//! Tombstone), and raises an alert for an RG that stays silent. Before, a new leader had no
//! RGs until heartbeats came: it accepted a Tombstone of a non-empty store and skipped
//! DestroyReplica's membership check.

use std::time::{Duration, Instant};

use crate::common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_starts_from_the_catalog_and_holds_work_on_unheard_rgs() {
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
    let leader_addr = before.leader_address.clone();
    // The stores report to the first leader only: once it is gone, nothing they say reaches
    // the next one, which is the blind window made as long as the test needs.
    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&leader_addr)).await);
    }
    create_rg_and_region(&leader_addr).await;
    let store_addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();
    for i in 0..20 {
        put(&store_addrs, i, b"v".to_vec()).await;
    }
    mcs[before.leader_id as usize - 1].take().unwrap().kill();
    let survivor = addrs.iter().find(|a| **a != leader_addr).unwrap().clone();
    let after = loop {
        let m = members(&survivor).await;
        if m.leader_id != before.leader_id && m.term > before.term {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Readiness: one RG known from the catalog, none heard from.
    assert_eq!((after.rgs_known, after.rgs_heard), (1, 0), "{after:?}");

    let mut c = store_node::security::pki::admin_connect(format!("http://{survivor}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let rg = c
        .get_rg(GetRgRequest { rg_id: 1 })
        .await
        .unwrap()
        .into_inner()
        .rg
        .unwrap();
    let members_now: Vec<u64> = rg.replicas.iter().map(|r| r.store_id).collect();
    assert_eq!(members_now, [1, 2, 3], "the shape comes from the catalog");
    // Store 1 holds a replica: it cannot become a Tombstone.
    let tombstone = c
        .set_store_state(SetStoreStateRequest {
            store_id: 1,
            state: StoreState::Tombstone as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        tombstone.code(),
        tonic::Code::FailedPrecondition,
        "{tombstone:?}"
    );
    assert!(
        tombstone.message().contains("holding 1 replicas"),
        "{tombstone:?}"
    );
    // Membership changes of the unheard RG wait for its report.
    let mut jobs = store_node::security::pki::admin_connect(format!("http://{survivor}"))
        .await
        .map(JobServiceClient::new)
        .unwrap();
    for spec in [
        job_spec::Spec::DestroyReplica(DestroyReplicaSpec {
            rg_id: 1,
            store_id: 1,
        }),
        job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 1,
            to_store_id: 4,
        }),
    ] {
        let refused = jobs
            .submit_job(SubmitJobRequest {
                spec: Some(JobSpec { spec: Some(spec) }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(
            refused.message().contains("RG 1 has not reported"),
            "{refused:?}"
        );
    }
    // mcctl says how ready the leader is.
    let out = std::process::Command::new(mcctl_exe())
        .args(["--endpoint", &survivor, "status"])
        .args(
            store_node::security::pki::TestPki::shared()
                .flags(&store_node::security::Identity::User("admin".into())),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("RGs heard from this term: 0 of 1"), "{text}");
    // An RG that stays silent is reported (it may have lost its quorum).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = c
            .list_alerts(ListAlertsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .alerts;
        if alerts
            .iter()
            .any(|a| a.subject == "rg/1" && a.message.contains("has not reported"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no alert for the silent RG: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The stores come back reporting to every MC: the RG is heard, the migration runs.
    let mut back = Vec::new();
    for s in stores {
        let (id, addr) = (s.store.id(), s.addr);
        s.stop().await;
        back.push(restart_store(id, addr, dir.path(), &addrs).await);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while members(&survivor).await.rgs_heard < 1 {
        assert!(Instant::now() < deadline, "the RG was never heard from");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_stores_up(&survivor, 4).await;
    let job = submit(
        &survivor,
        job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 1,
            to_store_id: 4,
        }),
        "after-ready",
    )
    .await;
    wait_job(&survivor, job.id, succeeded).await;
    assert_rg_moved_from_1_to_4(&back, 20).await;
}
