//! JobService over gRPC: bad input gets a typed status naming the field, the missing thing or
//! the lock holder, and creates nothing.

use std::time::Duration;

use mc::server::{ServeConfig, serve};
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;

async fn server() -> (String, tempfile::TempDir, tokio::sync::oneshot::Sender<()>) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServeConfig {
        store_heartbeat_ms: 1000,
        rg_heartbeat_ms: 1000,
        ..ServeConfig::single(addr, dir.path().to_path_buf())
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        serve(config, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (addr.to_string(), dir, tx)
}

async fn client(addr: &str) -> JobServiceClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(JobServiceClient::new)
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("mc did not start");
}

fn detail(s: &tonic::Status) -> error::Detail {
    Error::from_status(s)
        .expect("typed error in status details")
        .detail
        .expect("a detail")
}

fn submit(spec: job_spec::Spec) -> SubmitJobRequest {
    SubmitJobRequest {
        request_id: String::new(),
        spec: Some(JobSpec { spec: Some(spec) }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_create_nothing() {
    let (addr, _dir, _stop) = server().await;
    let mut c = client(&addr).await;

    let same = c
        .submit_job(submit(job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 2,
            to_store_id: 2,
        })))
        .await
        .unwrap_err();
    assert_eq!(same.code(), tonic::Code::InvalidArgument);
    match detail(&same) {
        error::Detail::InvalidArgument(i) => assert_eq!(i.field, "to_store_id"),
        other => panic!("{other:?}"),
    }
    let unknown = c
        .submit_job(submit(job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: 1,
            from_store_id: 1,
            to_store_id: 2,
        })))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    match detail(&unknown) {
        error::Detail::NotFound(n) => assert_eq!((n.kind.as_str(), n.id.as_str()), ("rg", "1")),
        other => panic!("{other:?}"),
    }
    let empty = c.submit_job(SubmitJobRequest::default()).await.unwrap_err();
    assert_eq!(
        (empty.code(), empty.message()),
        (
            tonic::Code::InvalidArgument,
            "invalid argument `spec`: missing"
        )
    );
    let no_store = c
        .submit_job(submit(job_spec::Spec::CreateRg(CreateRgSpec {
            store_ids: vec![9],
            ..Default::default()
        })))
        .await
        .unwrap_err();
    assert_eq!(
        (no_store.code(), no_store.message()),
        (tonic::Code::NotFound, "store 9 not found")
    );

    let missing = c
        .get_job(GetJobRequest {
            job_id: 42,
            include_records: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), missing.message()),
        (tonic::Code::NotFound, "job 42 not found")
    );
    let resume = c
        .resume_job(ResumeJobRequest {
            job_id: 42,
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(resume.code(), tonic::Code::NotFound);
    let token = c
        .list_jobs(ListJobsRequest {
            page: Some(PageRequest {
                limit: 10,
                page_token: "x".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    match detail(&token) {
        error::Detail::InvalidArgument(i) => assert_eq!(i.field, "page.page_token"),
        other => panic!("{other:?}"),
    }
    let all = c
        .list_jobs(ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        all.jobs.is_empty(),
        "refused submissions must create nothing: {:?}",
        all.jobs
    );
}
