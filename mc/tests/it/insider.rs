//! Insiders: callers that hold a real certificate of the cluster's CA. Every identity kind (an
//! MC, a store, admin, operator, viewer, ddl-hook, sql-engine, a custom role, a user the
//! catalog does not know, a user that was deleted) against every method of every client
//! service and of KvService: exactly what its role grants is admitted, everything else is
//! refused naming the permission. Then the over-reaches people with access try, each refused
//! naming the field or permission, with nothing changed.

use std::time::{Duration, Instant};

use mc::client::Client;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::heartbeat_service_client::HeartbeatServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;
use store_node::access::DataPermission;
use store_node::security::Identity;
use store_node::security::pki::TestPki;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::*;

fn pki() -> &'static TestPki {
    TestPki::shared()
}

fn user(name: &str) -> Identity {
    Identity::User(name.into())
}

async fn dial(who: &Identity, addr: &str) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match pki().security(who).connect(addr).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "{addr}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Calls `path` with an empty message, tagged with the cluster's id (an MC's calls carry it);
/// a call still running after two seconds (a stream) was admitted.
async fn call(channel: &Channel, path: &str, cluster_id: u64) -> Option<tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let mut request = tonic::Request::new(());
    store_node::security::tag(&mut request, cluster_id);
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    match tokio::time::timeout(Duration::from_secs(2), grpc.unary(request, path, codec)).await {
        Ok(Ok(_)) | Err(_) => None,
        Ok(Err(s)) => Some(s),
    }
}

fn refused(s: &Option<tonic::Status>) -> bool {
    s.as_ref()
        .is_some_and(|s| matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated))
}

/// What a KvService method needs.
fn data_permission(path: &str) -> &'static str {
    DataPermission::of_method(path.rsplit('/').next().unwrap())
        .unwrap()
        .name()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_identity_gets_exactly_what_its_role_grants_on_every_method() {
    let (dir, mc, _mc) = one_mc(&[]);
    jobs(&mc).await;
    let store = start_store(1, dir.path(), std::slice::from_ref(&mc)).await;
    wait_stores_up(&mc, 1).await;
    let store_addr = format!("http://{}", store.addr);
    let mut admin = ClusterServiceClient::new(dial(&user("admin"), &mc).await);
    admin
        .set_role(SetRoleRequest {
            role: Some(Role {
                name: "auditor".into(),
                permissions: vec![Permission::ClusterRead as i32, Permission::DataRead as i32],
                builtin: false,
            }),
        })
        .await
        .unwrap();
    for (name, role) in [
        ("olga", "operator"),
        ("vera", "viewer"),
        ("hook", "ddl-hook"),
        ("app", "sql-engine"),
        ("audi", "auditor"),
        ("gone", "sql-engine"),
    ] {
        admin
            .set_user(SetUserRequest {
                user: Some(User {
                    name: name.into(),
                    roles: vec![role.into()],
                }),
            })
            .await
            .unwrap();
    }
    let access = &store.store.data_access;
    let learned = Instant::now();
    while access.check("gone", DataPermission::Write).is_err() {
        assert!(
            learned.elapsed() < Duration::from_secs(10),
            "store never learned"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A deleted user's certificate still verifies; the store stops honouring it within a
    // store heartbeat interval (50 ms here).
    admin
        .delete_user(DeleteUserRequest {
            name: "gone".into(),
        })
        .await
        .unwrap();
    let revoked = Instant::now();
    while access.check("gone", DataPermission::Write).is_ok() {
        assert!(
            revoked.elapsed() < Duration::from_secs(2),
            "a revocation took more than 2 s to reach the store"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let roles = mc::catalog::users::builtin_roles();
    let grants = |role: &str| -> Vec<&'static str> {
        match role {
            "auditor" => vec!["cluster.read", "data.read"],
            _ => roles
                .iter()
                .find(|(n, _)| *n == role)
                .map(|(_, p)| p.iter().map(|p| p.name()).collect())
                .unwrap_or_default(),
        }
    };
    // (who, what its certificate names, the permissions it holds; None: a component).
    let identities: Vec<(&str, Identity, Option<Vec<&str>>)> = vec![
        ("mc/1", Identity::Mc(1), None),
        ("store/1", Identity::Store(1), None),
        ("admin", user("admin"), Some(grants("admin"))),
        ("operator", user("olga"), Some(grants("operator"))),
        ("viewer", user("vera"), Some(grants("viewer"))),
        ("ddl-hook", user("hook"), Some(grants("ddl-hook"))),
        ("sql-engine", user("app"), Some(grants("sql-engine"))),
        ("custom role", user("audi"), Some(grants("auditor"))),
        ("unknown user", user("nobody"), Some(vec![])),
        ("revoked user", user("gone"), Some(vec![])),
    ];
    let client_rpcs = rpcs(&["ClusterService", "JobService", "MetaService"]);
    let kv_rpcs = rpcs(&["KvService"]);
    assert!(
        client_rpcs.len() > 40 && kv_rpcs.len() == 5,
        "{client_rpcs:?}"
    );
    let cluster_id = store.store.cluster_id();
    let (mut admitted, mut denied) = (0, 0);
    for (who, identity, held) in &identities {
        let to_mc = dial(identity, &mc).await;
        let to_store = dial(identity, &store_addr).await;
        for path in &client_rpcs {
            let needs = mc::catalog::users::permission_for(path).unwrap().name();
            let status = call(&to_mc, path, cluster_id).await;
            let grants = held.as_ref().is_some_and(|h| h.contains(&needs));
            assert_eq!(!refused(&status), grants, "{who} {path}: {status:?}");
            if let (false, Some(s), Some(_)) = (grants, &status, held) {
                assert!(s.message().contains(needs), "{who} {path}: {s:?}");
            }
            if grants { admitted += 1 } else { denied += 1 }
        }
        for path in &kv_rpcs {
            let needs = data_permission(path);
            let status = call(&to_store, path, cluster_id).await;
            let grants = match held {
                None => matches!(identity, Identity::Mc(_)),
                Some(h) => h.contains(&needs),
            };
            assert_eq!(!refused(&status), grants, "{who} {path}: {status:?}");
            if let (false, Some(s), Some(_)) = (grants, &status, held) {
                assert!(s.message().contains(needs), "{who} {path}: {s:?}");
            }
            if grants { admitted += 1 } else { denied += 1 }
        }
        // Only a store reports, and only for itself.
        let hb = HeartbeatServiceClient::new(to_mc.clone())
            .store_heartbeat(StoreHeartbeatRequest {
                store_id: 1,
                ..Default::default()
            })
            .await;
        match identity {
            Identity::Store(1) => assert!(hb.is_ok(), "{hb:?}"),
            _ => assert_eq!(hb.unwrap_err().code(), Code::PermissionDenied, "{who}"),
        }
    }
    assert!(admitted > 100 && denied > 200, "{admitted} {denied}");
    store.stop().await;
}

fn index(name: String) -> IndexSpec {
    IndexSpec {
        name,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_reaching_insiders_are_refused_naming_what_they_lack_and_nothing_changes() {
    let (dir, mc, _mc) = one_mc(&[]);
    jobs(&mc).await;
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc)).await);
    }
    wait_stores_up(&mc, 3).await;
    let mut admin = ClusterServiceClient::new(dial(&user("admin"), &mc).await);
    for (name, role) in [
        ("olga", "operator"),
        ("vera", "viewer"),
        ("app", "sql-engine"),
        ("hook", "ddl-hook"),
    ] {
        admin
            .set_user(SetUserRequest {
                user: Some(User {
                    name: name.into(),
                    roles: vec![role.into()],
                }),
            })
            .await
            .unwrap();
    }
    while stores[0]
        .store
        .data_access
        .check("app", DataPermission::Write)
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut meta = MetaServiceClient::new(dial(&user("admin"), &mc).await);
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "demo".into(),
    })
    .await
    .unwrap();
    // A table with as many indexes as one may have.
    let orders = meta
        .create_table(CreateTableRequest {
            request_id: "orders".into(),
            database: by_path("demo"),
            name: "orders".into(),
            indexes: (0..64).map(|i| index(format!("i{i}"))).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    let app = Client::connect(&mc, pki().security(&user("app")))
        .await
        .unwrap();
    let viewer = Client::connect(&mc, pki().security(&user("vera")))
        .await
        .unwrap();
    let row = topology::keys::key(topology::ObjectId(orders.id), b"row-1");
    app.put(&row, b"v1").await.unwrap();

    // A viewer reads the routes but no row, and deletes nothing.
    let e = viewer.delete(&row).await.unwrap_err().to_string();
    assert!(e.contains("lacks permission data.write"), "{e}");
    let e = viewer.get(&row).await.unwrap_err().to_string();
    assert!(e.contains("lacks permission data.read"), "{e}");
    assert_eq!(app.get(&row).await.unwrap(), Some(b"v1".to_vec()));

    // An operator's job cannot delete a live table's region, nor force it.
    let region = app.route(&row).await.unwrap().region.unwrap().id;
    let mut operator = JobServiceClient::new(dial(&user("olga"), &mc).await);
    let delete = |force| SubmitJobRequest {
        request_id: format!("delete-{force}"),
        spec: Some(JobSpec {
            spec: Some(job_spec::Spec::DeleteRegion(DeleteRegionSpec {
                region_id: region,
            })),
        }),
        force,
        ..Default::default()
    };
    let s = operator.submit_job(delete(false)).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(
        s.message().contains(&format!("region {region}")) && s.message().contains("force"),
        "{s:?}"
    );
    let s = operator.submit_job(delete(true)).await.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("jobs.force"), "{s:?}");
    // Draining a store is a change of the cluster, not only a job.
    let s = operator
        .submit_job(SubmitJobRequest {
            request_id: "drain".into(),
            spec: Some(JobSpec {
                spec: Some(job_spec::Spec::DrainStore(DrainStoreSpec {
                    store_id: 1,
                    ..Default::default()
                })),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("cluster.write"), "{s:?}");
    assert_eq!(
        app.get(&row).await.unwrap(),
        Some(b"v1".to_vec()),
        "nothing deleted"
    );
    let jobs_now = operator
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(
        jobs_now
            .iter()
            .all(|j| j.r#type != JobType::DeleteRegion as i32
                && j.r#type != JobType::DrainStore as i32),
        "a refused job was made: {jobs_now:?}"
    );

    // The 65th index is refused by CreateIndex as CreateTable would.
    let s = meta
        .create_index(CreateIndexRequest {
            request_id: "i64".into(),
            parent: by_path("demo/orders"),
            index: Some(index("i64".into())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("at most 64"), "{s:?}");
    // A call's regions in all are capped: 1,024 partitions of 17 initial regions each.
    let s = meta
        .create_table(CreateTableRequest {
            request_id: "huge".into(),
            database: by_path("demo"),
            name: "huge".into(),
            partitions: (0..1_024)
                .map(|i| PartitionSpec {
                    name: format!("p{i}"),
                    ..Default::default()
                })
                .collect(),
            placement: Some(PlacementHint {
                initial_regions: 17,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message().contains("placement.initial_regions") && s.message().contains("at most 16384"),
        "{s:?}"
    );
    // A request id used for one table does not answer for another.
    meta.create_table(CreateTableRequest {
        request_id: "t".into(),
        database: by_path("demo"),
        name: "ta".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = meta
        .create_table(CreateTableRequest {
            request_id: "t".into(),
            database: by_path("demo"),
            name: "tb".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("request_id"), "{s:?}");
    // A request id is bound to its caller too: another DDL hook's same call is not answered.
    let s = MetaServiceClient::new(dial(&user("hook"), &mc).await)
        .create_table(CreateTableRequest {
            request_id: "t".into(),
            database: by_path("demo"),
            name: "ta".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("request_id"), "{s:?}");
    // The same caller's retry is answered as the first call was.
    meta.create_table(CreateTableRequest {
        request_id: "t".into(),
        database: by_path("demo"),
        name: "ta".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let tree = meta
        .get_object_tree(GetObjectTreeRequest {
            root: by_path("demo"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !format!("{tree:?}").contains("\"tb\""),
        "tb was made: {tree:?}"
    );

    // A store's free text is refused, not stored for a terminal to print.
    let mut as_store = HeartbeatServiceClient::new(dial(&Identity::Store(3), &mc).await);
    let mut request = tonic::Request::new(RegisterStoreRequest {
        store_id: 3,
        address: stores[2].addr.to_string(),
        labels: [("zone".to_string(), "\x1b[2J\x1b[31mred".to_string())].into(),
        ..Default::default()
    });
    store_node::security::tag(&mut request, stores[2].store.cluster_id());
    let s = as_store.register_store(request).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("labels.zone"), "{s:?}");
    let listed = admin
        .get_store(GetStoreRequest { store_id: 3 })
        .await
        .unwrap()
        .into_inner()
        .store
        .unwrap();
    assert_eq!(listed.labels.get("zone").map(String::as_str), Some("z3"));
    for s in stores {
        s.stop().await;
    }
}
