//! Draining a real store: `SetStoreState(Draining)` on `mc serve` starts a DrainStore job,
//! which moves the store's replica to the free store through a child MigrateReplica; the
//! drained store ends up holding nothing, and the job reports its children.

use crate::common;

use common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn draining_a_store_moves_its_replicas_off_through_child_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    let addrs: Vec<String> = stores.iter().map(|s| s.addr.to_string()).collect();
    create_rg_and_region(&mc_addr).await;
    for i in 0..100 {
        put(&addrs, i, b"v".to_vec()).await;
    }

    let mut c = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let reply = c
        .set_store_state(SetStoreStateRequest {
            store_id: 1,
            state: StoreState::Draining as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.store.unwrap().state, StoreState::Draining as i32);
    assert_ne!(reply.job_id, 0, "a DrainStore job was started");
    let done = wait_job(&mc_addr, reply.job_id, succeeded).await;
    assert_eq!(done.r#type, JobType::DrainStore as i32);
    assert_eq!(done.child_job_ids.len(), 1, "{done:?}");
    let progress = done.progress.unwrap();
    assert_eq!((progress.children_done, progress.children_total), (1, 1));
    let child = wait_job(&mc_addr, done.child_job_ids[0], succeeded).await;
    assert_eq!(child.parent_job_id, reply.job_id);
    match child.spec.and_then(|s| s.spec) {
        Some(job_spec::Spec::MigrateReplica(m)) => {
            assert_eq!((m.rg_id, m.from_store_id, m.to_store_id), (1, 1, 4))
        }
        other => panic!("{other:?}"),
    }

    // "Why was this moved?": the drain's decision is in the scheduling log.
    let decisions = c
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Scheduling as i32,
            subject: format!("job/{}", reply.job_id),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    match decisions.as_slice() {
        [
            HistoryEntry {
                entry: Some(history_entry::Entry::Decision(d)),
            },
        ] => {
            assert!(d.taken, "{d:?}");
            assert_eq!(d.job_id, done.child_job_ids[0]);
            assert!(d.reason.contains("RG 1 to store 4"), "{d:?}");
        }
        other => panic!("{other:?}"),
    }

    // Draining a store the MC does not know is refused, naming it.
    let missing = c
        .set_store_state(SetStoreStateRequest {
            store_id: 9,
            state: StoreState::Draining as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    assert_rg_moved_from_1_to_4(&stores, 100).await;
    for s in stores {
        s.stop().await;
    }
}
