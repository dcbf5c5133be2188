//! The trust boundary against real processes (`mc serve` and `store-node`, TLS on): who may
//! call what, with which certificate or token, and what a refused call changes (nothing).

use std::time::Duration;

use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::heartbeat_service_client::HeartbeatServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::raft_service_client::RaftServiceClient;
use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::*;
use store_node::security::pki::TestPki;
use store_node::security::{Identity, Security};
use tonic::Code;
use tonic::transport::Channel;

use crate::common::*;

fn pki() -> &'static TestPki {
    TestPki::shared()
}

/// TLS that verifies the server but shows no client certificate.
fn no_credentials() -> Security {
    Security::ca_only(pki().authority().ca_pem().as_bytes())
}

async fn dial(security: &Security, addr: &str) -> Channel {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match security.connect(addr).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{addr}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// Calls `path` with an empty message (the guard answers before any service decodes it).
async fn raw(channel: &Channel, path: &str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    match grpc.unary(tonic::Request::new(()), path, codec).await {
        Ok(_) => tonic::Status::ok("answered"),
        Err(s) => s,
    }
}

/// Each RPC of each service, called without credentials, is Unauthenticated; called with an
/// identity of the wrong kind, PermissionDenied; with a user's token whose roles lack its
/// permission, PermissionDenied naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_the_unauthenticated_and_the_wrong_identity() {
    let (dir, mc, _mc) = one_mc(&[]);
    jobs(&mc).await;
    let store = StoreProcess::start(1, dir.path(), &mc, &[]);
    wait_stores_up(&mc, 1).await;
    let client_services = ["ClusterService", "JobService", "MetaService"];
    let mc_rpcs = rpcs(&[
        "ClusterService",
        "JobService",
        "MetaService",
        "HeartbeatService",
        "RaftService",
    ]);
    let store_rpcs = rpcs(&["StoreService", "RaftService", "KvService"]);
    assert!(
        mc_rpcs.len() > 50 && store_rpcs.len() > 10,
        "{mc_rpcs:?} {store_rpcs:?}"
    );
    let anon = no_credentials();
    let (a_mc, a_store) = (dial(&anon, &mc).await, dial(&anon, &store.addr).await);
    for path in &mc_rpcs {
        assert_eq!(
            raw(&a_mc, path).await.code(),
            Code::Unauthenticated,
            "MC {path}"
        );
    }
    for path in &store_rpcs {
        assert_eq!(
            raw(&a_store, path).await.code(),
            Code::Unauthenticated,
            "store {path}"
        );
    }
    // A store's certificate makes no client call and is no MC group member.
    let as_store = dial(&pki().security(&Identity::Store(7)), &mc).await;
    for path in mc_rpcs.iter().filter(|p| !p.contains("HeartbeatService")) {
        assert_eq!(
            raw(&as_store, path).await.code(),
            Code::PermissionDenied,
            "MC {path} as store/7"
        );
    }
    // Only MCs send steps; only stores send Raft messages.
    let as_user = dial(&pki().admin(), &store.addr).await;
    let as_mc = dial(&pki().security(&Identity::Mc(1)), &store.addr).await;
    let store_to_store = dial(&pki().security(&Identity::Store(7)), &store.addr).await;
    for path in &store_rpcs {
        if path.contains("StoreService") {
            assert_eq!(
                raw(&as_user, path).await.code(),
                Code::PermissionDenied,
                "{path} as a user"
            );
            assert_eq!(
                raw(&store_to_store, path).await.code(),
                Code::PermissionDenied,
                "{path} as store/7"
            );
        } else if path.contains("RaftService") {
            assert_eq!(
                raw(&as_user, path).await.code(),
                Code::PermissionDenied,
                "{path} as a user"
            );
            assert_eq!(
                raw(&as_mc, path).await.code(),
                Code::PermissionDenied,
                "{path} as mc/1"
            );
        }
    }
    // A viewer's token: every method its role does not grant is refused naming the permission.
    let mut admin = ClusterServiceClient::new(dial(&pki().admin(), &mc).await);
    admin
        .set_user(SetUserRequest {
            user: Some(User {
                name: "vera".into(),
                roles: vec!["viewer".into()],
            }),
        })
        .await
        .unwrap();
    let token = admin
        .create_token(CreateTokenRequest {
            user: "vera".into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let viewer = ["jobs.read", "cluster.read", "routes.read"];
    let mut refused = 0;
    for path in mc_rpcs
        .iter()
        .filter(|p| client_services.iter().any(|s| p.contains(s)))
    {
        let permission = mc::catalog::users::permission_for(path).unwrap().name();
        if viewer.contains(&permission) {
            continue;
        }
        let mut grpc = tonic::client::Grpc::new(a_mc.clone());
        grpc.ready().await.unwrap();
        let s = match grpc
            .unary(
                with_token(&token, ()),
                path.parse::<http::uri::PathAndQuery>().unwrap(),
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await
        {
            Ok(_) => panic!("{path} answered a viewer"),
            Err(s) => s,
        };
        assert_eq!(s.code(), Code::PermissionDenied, "{path}: {s:?}");
        assert!(s.message().contains(permission), "{path}: {s:?}");
        refused += 1;
    }
    assert!(refused > 15, "{refused}");
}

/// Every service of the MC and of a store refuses a caller without credentials, and each
/// refuses identities of the wrong kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_refuses_the_unauthenticated_and_the_wrong_kind() {
    let (dir, mc, _mc) = one_mc(&[]);
    jobs(&mc).await;
    let store = StoreProcess::start(1, dir.path(), &mc, &[]);
    wait_stores_up(&mc, 1).await;
    let anon = no_credentials();
    let (a_mc, a_store) = (dial(&anon, &mc).await, dial(&anon, &store.addr).await);
    let codes = [
        ClusterServiceClient::new(a_mc.clone())
            .list_stores(ListStoresRequest::default())
            .await
            .unwrap_err(),
        JobServiceClient::new(a_mc.clone())
            .list_jobs(ListJobsRequest::default())
            .await
            .unwrap_err(),
        MetaServiceClient::new(a_mc.clone())
            .get_object_tree(GetObjectTreeRequest::default())
            .await
            .unwrap_err(),
        HeartbeatServiceClient::new(a_mc.clone())
            .register_store(RegisterStoreRequest::default())
            .await
            .unwrap_err(),
        RaftServiceClient::new(a_mc.clone())
            .vote(RaftRequest::default())
            .await
            .unwrap_err(),
        StoreServiceClient::new(a_store.clone())
            .get_store_status(GetStoreStatusRequest::default())
            .await
            .unwrap_err(),
        RaftServiceClient::new(a_store.clone())
            .vote(RaftRequest::default())
            .await
            .unwrap_err(),
        KvServiceClient::new(a_store.clone())
            .get(GetRequest::default())
            .await
            .unwrap_err(),
    ];
    for (i, s) in codes.iter().enumerate() {
        assert_eq!(s.code(), Code::Unauthenticated, "call {i}: {s:?}");
    }
    // A header naming a principal proves nothing.
    let mut claims = tonic::Request::new(ListStoresRequest::default());
    claims
        .metadata_mut()
        .insert("x-mc-principal", "admin".parse().unwrap());
    let s = ClusterServiceClient::new(a_mc.clone())
        .list_stores(claims)
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");

    // A store's certificate cannot command a store, make client calls, or speak for
    // another store; a user's cannot send steps.
    let store2 = pki().security(&Identity::Store(2));
    let as_store2_to_store = dial(&store2, &store.addr).await;
    let s = StoreServiceClient::new(as_store2_to_store.clone())
        .execute_step(ExecuteStepRequest {
            envelope: Some(StepEnvelope {
                mc_term: u64::MAX,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(
        s.message()
            .contains("accepts MC certificates; the caller is store/2"),
        "{s:?}"
    );
    let admin_to_store = dial(&pki().admin(), &store.addr).await;
    let s = StoreServiceClient::new(admin_to_store)
        .get_store_status(GetStoreStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    let mc_to_store_raft = dial(&pki().security(&Identity::Mc(1)), &store.addr).await;
    let s = RaftServiceClient::new(mc_to_store_raft)
        .vote(RaftRequest::default())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    let as_store2_to_mc = dial(&store2, &mc).await;
    let s = ClusterServiceClient::new(as_store2_to_mc.clone())
        .list_stores(ListStoresRequest::default())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    let s = HeartbeatServiceClient::new(as_store2_to_mc.clone())
        .register_store(RegisterStoreRequest {
            store_id: 1,
            address: "10.9.9.9:1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("not for store 1"), "{s:?}");
    let s = RaftServiceClient::new(as_store2_to_mc)
        .vote(RaftRequest::default())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    // Nothing changed: store 1 is where it registered, and the fence term still takes the
    // MC's steps (a job on the store succeeds).
    let mut admin = ClusterServiceClient::new(dial(&pki().admin(), &mc).await);
    let listed = admin
        .get_store(GetStoreRequest { store_id: 1 })
        .await
        .unwrap()
        .into_inner()
        .store
        .unwrap();
    assert_eq!(listed.address, store.addr);
    create_rg_and_region_on(&mc, &[1]).await;
}

/// A store of the cluster that is no member of an RG cannot move it: its Raft messages to the
/// RG's replicas are refused, and it cannot send them as another store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_of_an_rg_send_it_raft_messages() {
    let (dir, mc, _mc) = one_mc(&[]);
    jobs(&mc).await;
    let store = StoreProcess::start(1, dir.path(), &mc, &[]);
    create_rg_and_region_on(&mc, &[1]).await;
    let cluster_id = members(&mc).await.cluster_id;
    let outsider = dial(&pki().security(&Identity::Store(7)), &store.addr).await;
    let send = |from: u64| {
        let mut request = tonic::Request::new(RaftRequest {
            rg_id: 1,
            from_store_id: from,
            to_store_id: 1,
            payload: vec![],
        });
        store_node::security::tag(&mut request, cluster_id);
        request
    };
    let reply = RaftServiceClient::new(outsider.clone())
        .transfer_leader(send(7))
        .await
        .unwrap()
        .into_inner();
    let error = reply.error.expect("refused");
    assert_eq!(error.code(), ErrorCode::PermissionDenied, "{error:?}");
    assert!(
        error.message.contains("store 7 is not a member of RG 1"),
        "{error:?}"
    );
    let reply = RaftServiceClient::new(outsider)
        .vote(send(1))
        .await
        .unwrap()
        .into_inner();
    let error = reply.error.expect("refused");
    assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error:?}");
    assert!(
        error.message.contains("the caller is store 7, not 1"),
        "{error:?}"
    );
}

/// A store of one cluster refuses an MC of another (a wiped and re-created MC) by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refuses_an_mc_of_another_cluster() {
    let (dir, mc, _mc) = one_mc(&[]);
    jobs(&mc).await;
    let store = StoreProcess::start(1, dir.path(), &mc, &[]);
    wait_stores_up(&mc, 1).await;
    let mut as_mc =
        StoreServiceClient::new(dial(&pki().security(&Identity::Mc(1)), &store.addr).await);
    // The store adopted the MC's cluster id at registration; a status call from an MC of
    // another cluster is refused.
    let mut foreign = tonic::Request::new(GetStoreStatusRequest::default());
    foreign
        .metadata_mut()
        .insert("mc-cluster-id", "00000000deadbeef".parse().unwrap());
    let s = as_mc.get_store_status(foreign).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(
        s.message().contains("is of cluster 00000000deadbeef"),
        "{s:?}"
    );
    // The MC of its own cluster still commands it.
    create_rg_and_region_on(&mc, &[1]).await;
}

/// Users authenticate with tokens the catalog keeps hashed; roles decide; x-mc-principal is
/// nobody; a revoked token stops working; every refusal is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_decide_and_denials_are_audited() {
    let (_dir, mc, _mc) = one_mc(&[]);
    let mut admin = ClusterServiceClient::new(dial(&pki().admin(), &mc).await);
    admin
        .set_user(SetUserRequest {
            user: Some(User {
                name: "bob".into(),
                roles: vec!["viewer".into()],
            }),
        })
        .await
        .unwrap();
    let made = admin
        .create_token(CreateTokenRequest {
            user: "bob".into(),
            description: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let token = made.secret.clone();
    assert!(token.starts_with("mct_"), "{token}");
    let anon = dial(&no_credentials(), &mc).await;
    let mut c = ClusterServiceClient::new(anon.clone());
    c.list_stores(with_token(&token, ListStoresRequest::default()))
        .await
        .unwrap();
    let denied = JobServiceClient::new(anon.clone())
        .submit_job(with_token(&token, SubmitJobRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        denied.message(),
        "bob lacks permission jobs.write (roles viewer)"
    );
    let s = c
        .list_stores(with_token(
            "mct_0000000000000000_nope",
            ListStoresRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    // A custom role grants exactly what it lists.
    admin
        .set_role(SetRoleRequest {
            role: Some(Role {
                name: "submitter".into(),
                permissions: vec![Permission::JobsRead as i32, Permission::JobsWrite as i32],
                builtin: false,
            }),
        })
        .await
        .unwrap();
    admin
        .set_user(SetUserRequest {
            user: Some(User {
                name: "bob".into(),
                roles: vec!["submitter".into()],
            }),
        })
        .await
        .unwrap();
    let s = c
        .list_stores(with_token(&token, ListStoresRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    admin
        .revoke_token(RevokeTokenRequest {
            id: made.token.unwrap().id,
        })
        .await
        .unwrap();
    let s = JobServiceClient::new(anon)
        .list_jobs(with_token(&token, ListJobsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    // The refusals are in the audit log, naming who was refused.
    let audit = admin
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Audit as i32,
            subject: "auth".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let refused: Vec<String> = audit
        .into_iter()
        .filter_map(|e| match e.entry {
            Some(history_entry::Entry::Audit(a)) => {
                Some(format!("{} {} {}", a.principal, a.method, a.result))
            }
            _ => None,
        })
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("bob JobService/SubmitJob PermissionDenied")),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|r| r.contains("Unauthenticated")),
        "{refused:?}"
    );
}

/// Hostile input is refused naming the field, echoes only a short prefix, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_naming_the_field_and_change_nothing() {
    let (_dir, mc, _mc) = one_mc(&[]);
    let channel = dial(&pki().admin(), &mc).await;
    let mut meta = MetaServiceClient::new(channel.clone());
    let db = meta
        .create_database(CreateDatabaseRequest {
            request_id: "db".into(),
            name: "db".into(),
        })
        .await;
    assert!(db.is_ok() || db.unwrap_err().code() == Code::Unavailable);
    let table = |name: String, indexes: usize| CreateTableRequest {
        request_id: format!("t-{}", name.len() + indexes),
        database: by_path("db"),
        name,
        indexes: (0..indexes)
            .map(|i| IndexSpec {
                name: format!("i{i}"),
                ..Default::default()
            })
            .collect(),
        no_wait: true,
        ..Default::default()
    };
    let cases = [
        (table("x".repeat(1 << 20), 0), "name"),
        (table("t".into(), 20_000), "indexes"),
    ];
    for (request, field) in cases {
        let s = meta.create_table(request).await.unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{field}: {s:?}");
        assert!(
            s.message().len() < 400,
            "{field}: the error echoes {} bytes",
            s.message().len()
        );
        match Error::from_status(&s).and_then(|e| e.detail) {
            Some(error::Detail::InvalidArgument(i)) => assert_eq!(i.field, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let s = JobServiceClient::new(channel.clone())
        .list_jobs(ListJobsRequest {
            page: Some(PageRequest {
                limit: u32::MAX,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("page.limit"), "{s:?}");
    let s = ClusterServiceClient::new(channel.clone())
        .get_store(GetStoreRequest { store_id: u64::MAX })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    // The largest page token a client can send is an answer, not an overflow.
    let history = ClusterServiceClient::new(channel.clone())
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Audit as i32,
            page: Some(PageRequest {
                page_token: u64::MAX.to_string(),
                limit: 10,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(history.entries.is_empty());
    // Nothing was made.
    let tree = meta
        .get_object_tree(GetObjectTreeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        !format!("{tree:?}").contains("xxxxxxxx"),
        "no table was created"
    );
}
