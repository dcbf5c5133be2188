//! A DDL request that fails after it was planned cleans up after itself, even when its
//! caller stopped waiting: the request is a procedure of its own, not a loop in the caller's
//! task. (A CreateTable whose caller timed out used to leave every object `creating` for good,
//! and dropping its database then failed with "being created".)

use std::time::{Duration, Instant};

use crate::common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_that_fails_after_its_caller_gave_up_frees_its_names_and_storage() {
    let (dir, mc_addr, _mc) = one_mc(&["--ddl-wait-ms", "1000"]);
    jobs(&mc_addr).await;
    let _s1 = start_store(1, dir.path(), std::slice::from_ref(&mc_addr)).await;
    let _s2 = start_store(2, dir.path(), std::slice::from_ref(&mc_addr)).await;
    // Store 3 fails every Create, after three seconds: longer than the caller waits.
    let _s3 = StoreProcess::start(
        3,
        dir.path(),
        &mc_addr,
        &[("MC_FAILPOINTS", "store.step.create=error(3000)")],
    );
    wait_stores_up(&mc_addr, 3).await;
    let mut meta = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(MetaServiceClient::new)
        .unwrap();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "shop".into(),
    })
    .await
    .unwrap();
    let create = CreateTableRequest {
        request_id: "orders".into(),
        database: by_path("shop"),
        name: "orders".into(),
        indexes: vec![IndexSpec {
            name: "by_user".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let gave_up = meta.create_table(create.clone()).await.unwrap_err();
    assert_eq!(gave_up.code(), tonic::Code::Unavailable, "{gave_up:?}");

    // Without the caller: the request fails on its own, frees the names and what it made.
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        match meta.create_table(create.clone()).await {
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => break other,
        }
    };
    let failed = answer.unwrap_err();
    assert_eq!(failed.code(), tonic::Code::FailedPrecondition, "{failed:?}");
    assert!(
        failed.message().contains("injected at store.step.create"),
        "the retry names the cause: {failed:?}"
    );
    let tree = meta
        .get_object_tree(GetObjectTreeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let shop = &tree.roots[0];
    assert!(
        shop.children.is_empty(),
        "orders and its index are gone: {shop:?}"
    );
    let mut cluster = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rgs = cluster
            .list_rgs(ListRgsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .rgs;
        if rgs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "storage left behind: {rgs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the database drops, its table no longer "being created".
    meta.drop_object(DropObjectRequest {
        request_id: "drop-shop".into(),
        object: by_path("shop"),
        no_wait: false,
    })
    .await
    .unwrap();
}
