//! DDL hooks end to end on one `mc serve` and three real store nodes: a database and a table
//! with three indexes and four partitions get storage on demand, every region serves and
//! takes writes, the table's and its indexes' regions share an RG, retries create nothing
//! twice, bad DDL gets typed errors, and Drop deletes the data and the RGs.

use crate::common;

use std::time::Duration;

use common::*;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;
use store_node::client::put_following_leader;

type Meta = MetaServiceClient<tonic::transport::Channel>;

fn index(name: &str) -> IndexSpec {
    IndexSpec {
        name: name.into(),
        ..Default::default()
    }
}

fn orders(request_id: &str) -> CreateTableRequest {
    CreateTableRequest {
        request_id: request_id.into(),
        database: by_path("shop"),
        name: "orders".into(),
        indexes: vec![index("by_user"), index("by_sku"), index("by_day")],
        partitions: (0..4)
            .map(|i| PartitionSpec {
                name: format!("p{i}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

async fn rg_count(mc: &str) -> usize {
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    c.list_rgs(ListRgsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .rgs
        .len()
}

fn code(s: &tonic::Status) -> ErrorCode {
    Error::from_status(s).map(|e| e.code()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_with_indexes_and_partitions_gets_storage_serves_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    wait_stores_up(&mc_addr, 3).await;
    let mut meta: Meta = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(MetaServiceClient::new)
        .unwrap();

    let db = meta
        .create_database(CreateDatabaseRequest {
            request_id: "db-1".into(),
            name: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .database
        .unwrap();
    assert_eq!(db.state, ObjectState::Serving as i32);
    assert!(db.region_ids.is_empty(), "a database holds no data itself");

    let created = meta.create_table(orders("t-1")).await.unwrap().into_inner();
    let table = created.table.clone().unwrap();
    assert_eq!(table.parent_id, db.id);
    assert_eq!(created.children.len(), 7, "3 indexes and 4 partitions");
    let mut all = vec![table.clone()];
    all.extend(created.children.clone());
    for o in &all {
        assert_eq!(o.state, ObjectState::Serving as i32, "{} serves", o.name);
        assert_eq!(o.region_ids.len(), 1, "{} has its region", o.name);
    }
    let rgs_after_create = rg_count(&mc_addr).await;
    assert_eq!(
        rgs_after_create, 5,
        "one RG for the table's group, one per partition"
    );

    // Routes: one per object, each with a leader; the table and its indexes share an RG.
    let routes = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(
                by_path("shop/orders").unwrap(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(routes.len(), 8);
    let rg_of = |object: u64| {
        routes
            .iter()
            .find(|r| r.region.as_ref().unwrap().object_id == object)
            .map(|r| r.rg_id)
            .unwrap()
    };
    let indexes: Vec<&DataObject> = created
        .children
        .iter()
        .filter(|c| c.kind == ObjectKind::Index as i32)
        .collect();
    assert_eq!(indexes.len(), 3);
    for i in &indexes {
        assert_eq!(rg_of(i.id), rg_of(table.id), "{} is with its table", i.name);
        assert_eq!(i.affinity_group_id, table.id);
    }
    for p in created
        .children
        .iter()
        .filter(|c| c.kind == ObjectKind::Partition as i32)
    {
        assert_ne!(rg_of(p.id), rg_of(table.id), "{} has its own RG", p.name);
    }

    // Every region takes writes through its route.
    for r in &routes {
        let region = r.region.clone().unwrap();
        let addrs: Vec<String> = r.store_addresses.values().cloned().collect();
        assert_eq!(addrs.len(), 3, "three replicas");
        let mut key = region.range.clone().unwrap().start;
        key.extend_from_slice(b"row-1");
        put_following_leader(
            &addrs,
            region.id,
            region.epoch.unwrap().version,
            key,
            b"value".to_vec(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("write to region {}: {e:?}", region.id));
    }
    // A route by key finds the same region.
    let mut probe = table.key_range.clone().unwrap().start;
    probe.extend_from_slice(b"row-1");
    let by_key = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Key(probe)),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].region.as_ref().unwrap().object_id, table.id);
    assert!(!by_key[0].leader_address.is_empty());

    // The same request id again: the first answer, nothing created twice.
    let again = meta.create_table(orders("t-1")).await.unwrap().into_inner();
    assert_eq!(again.table.unwrap().id, table.id);
    assert_eq!(again.job_ids, created.job_ids);
    assert_eq!(rg_count(&mc_addr).await, rgs_after_create);

    // The same table under a new request id: AlreadyExists, nothing created.
    let dup = meta.create_table(orders("t-2")).await.unwrap_err();
    assert_eq!(code(&dup), ErrorCode::AlreadyExists, "{dup:?}");
    assert!(dup.message().contains("orders"), "{}", dup.message());

    // Two CreateIndex with one name: the second is AlreadyExists.
    let idx = |rid: &str| CreateIndexRequest {
        request_id: rid.into(),
        parent: by_path("shop/orders"),
        index: Some(index("by_status")),
        no_wait: false,
    };
    let first = meta.create_index(idx("i-1")).await.unwrap().into_inner();
    let new_index = first.index.unwrap();
    assert_eq!(new_index.region_ids.len(), 1);
    let second = meta.create_index(idx("i-2")).await.unwrap_err();
    assert_eq!(code(&second), ErrorCode::AlreadyExists, "{second:?}");
    assert!(
        second.message().contains("by_status"),
        "{}",
        second.message()
    );
    let index_route = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(ObjectRef {
                target: Some(object_ref::Target::Id(new_index.id)),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(
        index_route[0].rg_id,
        rg_of(table.id),
        "a new index joins its table's RG"
    );

    // Unknown parents: NotFound, naming what was asked for.
    let mut lost = orders("t-3");
    lost.database = by_path("nope");
    let e = meta.create_table(lost).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::NotFound, "{e:?}");
    assert!(e.message().contains("nope"), "{}", e.message());
    let e = meta
        .create_index(CreateIndexRequest {
            request_id: "i-3".into(),
            parent: by_path("shop/missing"),
            index: Some(index("x")),
            no_wait: false,
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::NotFound);
    // No request id: refused, naming the field.
    let e = meta.create_table(orders("")).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::InvalidArgument);
    assert!(e.message().contains("request_id"), "{}", e.message());
    assert_eq!(rg_count(&mc_addr).await, rgs_after_create);

    // A new partition with a local index: a new affinity group, packed into an RG with room
    // (no new Raft group for it), the index with it.
    let part = meta
        .create_partition(CreatePartitionRequest {
            request_id: "p-1".into(),
            parent: by_path("shop/orders"),
            partition: Some(PartitionSpec {
                name: "p4".into(),
                local_indexes: vec![index("p4_by_day")],
                ..Default::default()
            }),
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    let p4 = part.partition.unwrap();
    assert_eq!(p4.parent_id, table.id);
    assert_eq!(part.children.len(), 1);
    let local = &part.children[0];
    assert_eq!(
        local.affinity_group_id, p4.id,
        "a local index is with its partition"
    );
    let p4_routes = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(
                by_path("shop/orders/p4").unwrap(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(p4_routes.len(), 2);
    assert_eq!(p4_routes[0].rg_id, p4_routes[1].rg_id);
    assert_eq!(
        rg_count(&mc_addr).await,
        rgs_after_create,
        "packed, no new RG"
    );

    // Truncate the table: its rows are gone, the definition and the RG stay, and it serves.
    let table_route = routes
        .iter()
        .find(|r| r.region.as_ref().unwrap().object_id == table.id)
        .unwrap()
        .clone();
    let range = table.key_range.clone().unwrap();
    let rows_before: u64 = stores
        .iter()
        .map(|s| {
            s.store
                .engine
                .count_range(&range.start, &range.end)
                .unwrap()
                .0
        })
        .sum();
    assert_eq!(rows_before, 3, "the row written above, on three replicas");
    let truncated = meta
        .truncate_object(TruncateObjectRequest {
            request_id: "tr-1".into(),
            object: Some(ObjectRef {
                target: Some(object_ref::Target::Id(table.id)),
            }),
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    let after = truncated.object.unwrap();
    assert_eq!(after.id, table.id);
    assert_eq!(after.state, ObjectState::Serving as i32);
    for s in &stores {
        assert_eq!(
            s.store
                .engine
                .count_range(&range.start, &range.end)
                .unwrap()
                .0,
            0,
            "store {} kept rows of the truncated table",
            s.store.id()
        );
    }
    let fresh = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(ObjectRef {
                target: Some(object_ref::Target::Id(table.id)),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    let own: Vec<&Route> = fresh
        .iter()
        .filter(|r| r.region.as_ref().unwrap().object_id == table.id)
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].rg_id, table_route.rg_id, "same RG");
    let region = own[0].region.clone().unwrap();
    assert_ne!(
        region.id,
        table_route.region.unwrap().id,
        "a new, empty region"
    );
    let addrs: Vec<String> = own[0].store_addresses.values().cloned().collect();
    let mut key = range.start.clone();
    key.extend_from_slice(b"row-2");
    put_following_leader(
        &addrs,
        region.id,
        region.epoch.unwrap().version,
        key,
        b"v".to_vec(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    // The tree shows the table with its children and where they live.
    let tree = meta
        .get_object_tree(GetObjectTreeRequest::default())
        .await
        .unwrap()
        .into_inner()
        .roots;
    assert_eq!(tree.len(), 1);
    let t = &tree[0].children[0];
    assert_eq!(t.object.as_ref().unwrap().name, "orders");
    assert_eq!(t.children.len(), 9);
    assert_eq!(t.store_ids, vec![1, 2, 3]);

    // Drop: every region's data and every RG are gone from every store.
    let mut rg_ids: std::collections::BTreeSet<u64> = routes.iter().map(|r| r.rg_id).collect();
    rg_ids.insert(p4_routes[0].rg_id);
    let dropped = meta
        .drop_object(DropObjectRequest {
            request_id: "d-1".into(),
            object: by_path("shop/orders"),
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        dropped.dropped.len(),
        11,
        "the table, 4 indexes, 5 partitions and a local index"
    );
    assert_eq!(dropped.dropped[0].id, table.id, "the named object first");
    assert!(
        dropped
            .dropped
            .iter()
            .all(|d| d.state == ObjectState::Dropped as i32)
    );
    for s in &stores {
        for rg in &rg_ids {
            assert!(
                s.store.replica(*rg).is_none(),
                "store {} still hosts RG {rg}",
                s.store.id()
            );
        }
        for o in all.iter().chain([&p4, local]) {
            let range = o.key_range.clone().unwrap();
            let (keys, bytes) = s
                .store
                .engine
                .count_range(&range.start, &range.end)
                .unwrap();
            assert_eq!(
                (keys, bytes),
                (0, 0),
                "{} left data on store {}",
                o.name,
                s.store.id()
            );
        }
    }
    assert_eq!(rg_count(&mc_addr).await, 0);
    let e = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(
                by_path("shop/orders").unwrap(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), ErrorCode::NotFound);
    // The name is free again; the drop is answered the same on a retry.
    let redo = meta
        .drop_object(DropObjectRequest {
            request_id: "d-1".into(),
            object: by_path("shop/orders"),
            no_wait: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redo.dropped.len(), 11);
}

/// A DDL hook that did not wait is cut off by a SIGKILL of the MC; the restarted MC finishes
/// the request by itself, and the hook's retry with the same request id gets the one table,
/// served, with the jobs the first call started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_cut_off_by_kill_9_is_finished_by_the_restarted_mc() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let mut mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    wait_stores_up(&mc_addr, 3).await;
    let mut meta: Meta = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(MetaServiceClient::new)
        .unwrap();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db-1".into(),
        name: "shop".into(),
    })
    .await
    .unwrap();
    let mut req = orders("t-1");
    req.no_wait = true;
    let first = meta.create_table(req).await.unwrap().into_inner();
    assert!(
        !first.job_ids.is_empty(),
        "the first jobs are named at once"
    );
    assert_eq!(
        first.table.as_ref().unwrap().state,
        ObjectState::Creating as i32
    );
    mc.kill();

    let _mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    jobs(&mc_addr).await;
    let mut meta: Meta = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(MetaServiceClient::new)
        .unwrap();
    let again = meta.create_table(orders("t-1")).await.unwrap().into_inner();
    let table = again.table.unwrap();
    assert_eq!(table.id, first.table.unwrap().id);
    assert_eq!(table.state, ObjectState::Serving as i32);
    assert!(
        first.job_ids.iter().all(|j| again.job_ids.contains(j)),
        "the first call's jobs are the request's jobs: {:?} / {:?}",
        first.job_ids,
        again.job_ids
    );
    assert_eq!(rg_count(&mc_addr).await, 5, "nothing was created twice");
    let routes = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(
                by_path("shop/orders").unwrap(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .routes;
    assert_eq!(routes.len(), 8);
    for s in &stores {
        let hosted: std::collections::BTreeSet<u64> = routes
            .iter()
            .map(|r| r.rg_id)
            .filter(|rg| s.store.replica(*rg).is_some())
            .collect();
        assert_eq!(
            hosted.len(),
            5,
            "store {} hosts every RG once",
            s.store.id()
        );
    }
}
