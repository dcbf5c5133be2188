//! ClusterService over gRPC against a served MC and a real store node: stores, RGs, regions
//! and execution history as the MC sees them, and typed refusals.

use std::time::{Duration, Instant};

use mc::server::{ServeConfig, serve};
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_as_the_mc_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig {
        store_heartbeat_ms: 50,
        rg_heartbeat_ms: 50,
        liveness: mc::cluster::LivenessConfig {
            disconnected_after_ms: 1_000,
            down_after_ms: 2_000,
        },
        ..ServeConfig::single(addr, dir.path().join("mc"))
    };
    tokio::spawn(serve(config, listener, std::future::pending()));
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    let store = StoreNode::start_on_loopback(
        1,
        dir.path(),
        raft,
        vec![addr.to_string()],
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    let url = format!("http://{addr}");
    let mut cluster = eventually("the MC", async || {
        store_node::security::pki::admin_connect(url.clone())
            .await
            .map(ClusterServiceClient::new)
            .ok()
    })
    .await;
    let mut jobs = store_node::security::pki::admin_connect(url.clone())
        .await
        .map(JobServiceClient::new)
        .unwrap();

    let stores = eventually("the store registered", async || {
        let s = cluster
            .list_stores(ListStoresRequest::default())
            .await
            .unwrap()
            .into_inner()
            .stores;
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert_eq!((stores[0].id, stores[0].state), (1, StoreState::Up as i32));
    assert_eq!(stores[0].labels.get("zone").map(String::as_str), Some("z1"));
    assert_eq!(stores[0].address, store.addr.to_string());
    let missing = cluster
        .get_store(GetStoreRequest { store_id: 9 })
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), missing.message()),
        (tonic::Code::NotFound, "store 9 not found")
    );

    let submit = |spec| SubmitJobRequest {
        spec: Some(JobSpec { spec: Some(spec) }),
        ..Default::default()
    };
    let rg_job = jobs
        .submit_job(submit(job_spec::Spec::CreateRg(CreateRgSpec {
            store_ids: vec![1],
            ..Default::default()
        })))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let rg = eventually("the RG reported", async || {
        cluster.get_rg(GetRgRequest { rg_id: 1 }).await.ok()
    })
    .await
    .into_inner();
    assert_eq!(rg.rg.as_ref().unwrap().replicas.len(), 1);
    let range = KeyRange {
        start: b"a".to_vec(),
        end: b"b".to_vec(),
    };
    let region_spec = job_spec::Spec::CreateRegion(CreateRegionSpec {
        rg_id: 1,
        object_id: 5,
        range: Some(range),
        region_id: 0,
    });
    jobs.submit_job(submit(region_spec)).await.unwrap();
    let region = eventually("the region reported", async || {
        cluster
            .get_region(GetRegionRequest { region_id: 1 })
            .await
            .ok()
    })
    .await
    .into_inner();
    assert_eq!(
        (
            region.region.as_ref().unwrap().object_id,
            region.rg.as_ref().unwrap().leader_store_id
        ),
        (5, 1)
    );
    assert_eq!(region.rg.unwrap().leader_address, store.addr.to_string());
    let listed = cluster
        .list_regions(ListRegionsRequest {
            rg_id: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.regions.len(), 1);

    let history = cluster
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Execution as i32,
            subject: format!("job/{}", rg_job.id),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!history.entries.is_empty(), "CreateRg's execution records");
    let bad = cluster
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Execution as i32,
            subject: "bogus".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let no_kind = cluster
        .query_history(QueryHistoryRequest::default())
        .await
        .unwrap_err();
    match Error::from_status(&no_kind).unwrap().detail {
        Some(error::Detail::InvalidArgument(i)) => assert_eq!(i.field, "kind"),
        other => panic!("{other:?}"),
    }

    // SRE labels: set one, remove one; the store's other labels stay.
    let labelled = cluster
        .set_store_labels(SetStoreLabelsRequest {
            store_id: 1,
            labels: [
                ("rack".to_string(), "r7".to_string()),
                ("zone".to_string(), String::new()),
            ]
            .into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .store
        .unwrap();
    assert_eq!(
        labelled.labels,
        [
            ("host".to_string(), "h1".to_string()),
            ("rack".to_string(), "r7".to_string())
        ]
        .into()
    );
    let bad_key = cluster
        .set_store_labels(SetStoreLabelsRequest {
            store_id: 1,
            labels: [("no spaces".to_string(), "x".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    match Error::from_status(&bad_key).unwrap().detail {
        Some(error::Detail::InvalidArgument(i)) => assert_eq!(i.field, "labels.no spaces"),
        other => panic!("{other:?}"),
    }
    let nobody = cluster
        .set_store_labels(SetStoreLabelsRequest {
            store_id: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), tonic::Code::NotFound);

    let tomb = cluster
        .set_store_state(SetStoreStateRequest {
            store_id: 1,
            state: StoreState::Tombstone as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        tomb.message(),
        "store/1 is holding 1 replicas; needs no replicas (drain it first)"
    );
    let as_sre = tonic::Request::new(SetStoreStateRequest {
        store_id: 1,
        state: StoreState::Draining as i32,
        ..Default::default()
    });
    let drain = cluster.set_store_state(as_sre).await.unwrap().into_inner();
    assert_eq!(drain.store.unwrap().state, StoreState::Draining as i32);
    // The only store cannot hand its replica to anyone: the drain waits, saying why.
    let url = format!("http://{addr}");
    let waiting = eventually("the drain's reason", async || {
        let job = store_node::security::pki::admin_connect(url.clone())
            .await
            .map(JobServiceClient::new)
            .ok()?
            .get_job(GetJobRequest {
                job_id: drain.job_id,
                include_records: false,
            })
            .await
            .ok()?
            .into_inner()
            .job?;
        job.last_error
            .filter(|e| e.message.contains("no Up store can take RG 1"))
    })
    .await;
    assert!(waiting.message.contains("RG 1"), "{waiting:?}");
    let mut jobs = store_node::security::pki::admin_connect(url)
        .await
        .map(JobServiceClient::new)
        .unwrap();
    let cancelled = jobs
        .cancel_job(CancelJobRequest {
            job_id: drain.job_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(cancelled.job.unwrap().cancel_requested);
    let members = cluster
        .get_members(GetMembersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((members.leader_id, members.term), (1, 1));

    // The audit log has both calls on store 1, the refused one with its reason.
    let audit = cluster
        .query_history(QueryHistoryRequest {
            kind: HistoryKind::Audit as i32,
            subject: "store/1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let audit: Vec<AuditRecord> = audit
        .into_iter()
        .filter_map(|e| match e.entry {
            Some(history_entry::Entry::Audit(a)) => Some(a),
            _ => None,
        })
        .collect();
    let methods: Vec<&str> = audit.iter().map(|a| a.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "ClusterService/SetStoreLabels",
            "ClusterService/SetStoreLabels",
            "ClusterService/SetStoreState",
            "ClusterService/SetStoreState"
        ],
        "{audit:?}"
    );
    assert!(audit[1].result.starts_with("InvalidArgument"), "{audit:?}");
    assert!(
        audit[2].result.starts_with("FailedPrecondition"),
        "{audit:?}"
    );
    assert_eq!(
        (audit[3].principal.as_str(), audit[3].result.as_str()),
        ("admin", "ok")
    );
    assert_eq!(audit[3].job_id, drain.job_id);

    // Back to Up (the drain was cancelled), a store that stops reporting raises one critical
    // alert.
    cluster
        .set_store_state(SetStoreStateRequest {
            store_id: 1,
            state: StoreState::Up as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    store.stop().await;
    let alert = eventually("a store-down alert", async || {
        cluster
            .clone()
            .list_alerts(ListAlertsRequest::default())
            .await
            .ok()?
            .into_inner()
            .alerts
            .into_iter()
            .find(|a| a.subject == "store/1" && a.severity == AlertSeverity::Critical as i32)
    })
    .await;
    assert_eq!(alert.message, "store 1 is down");
    assert!(!alert.resolved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_set_over_grpc_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |data: std::path::PathBuf| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ServeConfig {
            store_heartbeat_ms: 50,
            rg_heartbeat_ms: 50,
            ..ServeConfig::single(addr, data)
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(config, listener, async {
            let _ = rx.await;
        }));
        let url = format!("http://{addr}");
        let client = eventually("the MC", async || {
            // A serve that ended (its data directory still locked by the last one, say) is
            // named here, not after a minute of connecting to nobody.
            assert!(!server.is_finished(), "mc serve ended before it answered");
            store_node::security::pki::admin_connect(url.clone())
                .await
                .map(ClusterServiceClient::new)
                .ok()
        })
        .await;
        (client, tx, server)
    };
    let (mut c, stop, server) = start(dir.path().join("mc")).await;

    let entries = c
        .get_config(GetConfigRequest {
            prefix: "store.".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let keys: Vec<_> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("store.steps-per-minute", "600"),
            ("store.snapshots-in-flight", "2"),
            ("store.metadata-steps-per-minute", "60000")
        ]
    );
    let set = SetConfigRequest {
        values: [("jobs.max-running".to_string(), "8".to_string())].into(),
        ..Default::default()
    };
    let after = c.set_config(set).await.unwrap().into_inner().entries;
    assert!(
        after
            .iter()
            .any(|e| e.key == "jobs.max-running" && e.value == "8" && e.default_value == "64")
    );

    // A bad key or value is refused naming it, and nothing of the request is applied.
    let bad = SetConfigRequest {
        values: [
            ("jobs.max-running".to_string(), "9".to_string()),
            ("store.nope".to_string(), "1".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let err = c.set_config(bad).await.unwrap_err();
    match Error::from_status(&err).unwrap().detail {
        Some(error::Detail::InvalidArgument(i)) => assert_eq!(i.field, "values.store.nope"),
        other => panic!("{other:?}"),
    }
    let negative = SetConfigRequest {
        values: [("store.steps-per-minute".to_string(), "-1".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(
        c.set_config(negative).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let unknown = c
        .set_store_limit(SetStoreLimitRequest {
            store_id: 9,
            limit: Some(StoreLimit {
                steps_per_minute: 1,
                snapshots_in_flight: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.message(), "store 9 not found");
    c.set_store_limit(SetStoreLimitRequest {
        store_id: 0,
        limit: Some(StoreLimit {
            steps_per_minute: 30,
            snapshots_in_flight: 1,
        }),
        ..Default::default()
    })
    .await
    .unwrap();

    // Close the connection first: a graceful shutdown waits for open ones.
    drop(c);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let (mut c, _stop, _server) = start(dir.path().join("mc")).await;
    let entries = c
        .get_config(GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let value = |k: &str| entries.iter().find(|e| e.key == k).unwrap().value.clone();
    assert_eq!(
        (
            value("jobs.max-running"),
            value("store.steps-per-minute"),
            value("store.snapshots-in-flight")
        ),
        ("8".into(), "30".into(), "1".into())
    );
}
