//! WatchJob streams end when their client goes, and cost nothing while they wait: job events
//! are pushed by the engine, not polled. (Each watch used to poll the catalog every 50 ms and
//! notice a departed client only when it next had something to send, so watchers of a paused
//! or finished job never ended: 300 opened and cancelled watches kept 23% of a core busy.)

use std::time::{Duration, Instant};

use crate::common::*;
use crate::playground::{scrape, value};
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_of_paused_and_finished_jobs_end_with_their_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let metrics_port: u16 = testkit::free_addr()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let _mc = start_mc_with(
        1,
        &mc_addr,
        &dir.path().join("mc"),
        &[],
        &["--metrics-listen", &format!("127.0.0.1:{metrics_port}")],
    );
    jobs(&mc_addr).await;
    let stores: Vec<_> = futures::future::join_all(
        (1..=3).map(|id| start_store(id, dir.path(), std::slice::from_ref(&mc_addr))),
    )
    .await;
    create_rg_and_region(&mc_addr).await;
    let finished = wait_job(&mc_addr, 1, succeeded).await;
    // A job that stays unfinished: its Create goes to a store that has just stopped.
    let [s1, ..] = <[_; 3]>::try_from(stores).ok().unwrap();
    s1.stop().await;
    let stuck = submit(
        &mc_addr,
        job_spec::Spec::CreateRg(CreateRgSpec {
            store_ids: vec![1],
            ..Default::default()
        }),
        "stuck",
    )
    .await;
    let mut c = jobs(&mc_addr).await;
    c.pause_job(PauseJobRequest {
        job_id: stuck.id,
        ..Default::default()
    })
    .await
    .unwrap();

    let open = || async {
        let mut c = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
            .await
            .map(JobServiceClient::new)
            .unwrap();
        let mut paused = c
            .watch_job(WatchJobRequest { job_id: stuck.id })
            .await
            .unwrap()
            .into_inner();
        let first = paused.next().await.unwrap().unwrap();
        assert_eq!(first.kind, JobEventKind::Snapshot as i32);
        (c, paused)
    };
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(open().await);
    }
    let watches = |port| value(&scrape(port), "mc_job_watches").unwrap_or(-1.0);
    assert_eq!(watches(metrics_port), 50.0);
    drop(held);
    // A finished job's watch ends by itself after its snapshot.
    let mut done = c
        .watch_job(WatchJobRequest {
            job_id: finished.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(done.next().await.unwrap().is_ok());
    assert!(done.next().await.is_none(), "the stream ends");
    let deadline = Instant::now() + Duration::from_secs(10);
    while watches(metrics_port) != 0.0 {
        assert!(
            Instant::now() < deadline,
            "{} watch streams outlived their clients",
            watches(metrics_port)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
