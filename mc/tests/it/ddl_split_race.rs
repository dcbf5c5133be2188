//! TRUNCATE and DropObject while a split of the table is under way, on real processes: every
//! store stalls a region split for three seconds, so the DDL request starts while the split
//! holds the table's region. The request must act on the regions the split leaves behind, not
//! on the ones it saw when it started: no right half left routable (an orphan of a dropped
//! table, or a truncated table's old rows), no hole and no overlap in the table's key range.

use crate::common::*;
use mc::client::Client;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;
use store_node::security::pki::TestPki;

/// Key `i` of the table whose first region starts at `start`.
fn row(start: &[u8], i: u32) -> Vec<u8> {
    let mut k = start.to_vec();
    k.extend_from_slice(format!("r{i:04}").as_bytes());
    k
}

/// The table's only region, once its route is known.
async fn only_region(client: &Client, table: u64) -> Region {
    let routes = client.load_object(table).await.unwrap();
    assert_eq!(routes.len(), 1, "{routes:?}");
    routes[0].region.clone().unwrap()
}

/// Starts a split of `region` at row 10 and waits until the job runs (its step is then
/// stalled on the stores for three seconds).
async fn split_in_flight(mc: &str, region: &Region, name: &str) -> Job {
    let start = &region.range.as_ref().unwrap().start;
    let job = submit(
        mc,
        job_spec::Spec::SplitRegion(SplitRegionSpec {
            region_id: region.id,
            split_key: row(start, 10),
            new_region_id: 0,
        }),
        name,
    )
    .await;
    wait_job(mc, job.id, |j| j.state == JobState::Running as i32).await
}

/// Every region the MC lists for `object`.
async fn regions_of(
    cluster: &mut ClusterServiceClient<tonic::transport::Channel>,
    object: u64,
) -> Vec<Region> {
    cluster
        .list_regions(ListRegionsRequest {
            object_id: object,
            page: Some(PageRequest {
                page_token: String::new(),
                limit: 1000,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .regions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncate_and_drop_racing_a_split_of_the_table_leave_no_hole_and_no_orphan() {
    let (dir, mc_addr, _mc) = one_mc(&["--ddl-wait-ms", "30000"]);
    jobs(&mc_addr).await;
    let _stores: Vec<_> = (1..=3)
        .map(|id| {
            StoreProcess::start(
                id,
                dir.path(),
                &mc_addr,
                &[("MC_FAILPOINTS", "store.step.split_region=sleep(3000)")],
            )
        })
        .collect();
    wait_stores_up(&mc_addr, 3).await;
    let client = Client::connect(&mc_addr, TestPki::shared().admin())
        .await
        .unwrap();
    let mut meta = client.meta();
    let mut cluster = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    meta.create_database(CreateDatabaseRequest {
        request_id: "db".into(),
        name: "app".into(),
    })
    .await
    .unwrap();

    // TRUNCATE while the table's region splits.
    let t = meta
        .create_table(app_table("t", 0))
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    let region = only_region(&client, t.id).await;
    let range = region.range.clone().unwrap();
    for i in 0..20 {
        client.put(&row(&range.start, i), b"old").await.unwrap();
    }
    let split = split_in_flight(&mc_addr, &region, "split-t").await;
    let truncate = TruncateObjectRequest {
        request_id: "truncate-t".into(),
        object: Some(ObjectRef {
            target: Some(object_ref::Target::Id(t.id)),
        }),
        no_wait: true,
    };
    meta.truncate_object(truncate.clone()).await.unwrap();
    // Neither a DROP nor a second TRUNCATE of the table runs beside it.
    let t_ref = Some(ObjectRef {
        target: Some(object_ref::Target::Id(t.id)),
    });
    let refused = meta
        .drop_object(DropObjectRequest {
            request_id: "drop-t".into(),
            object: t_ref.clone(),
            no_wait: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("being truncated (request `truncate-t`)"),
        "{refused:?}"
    );
    let refused = meta
        .truncate_object(TruncateObjectRequest {
            request_id: "truncate-t-again".into(),
            object: t_ref,
            no_wait: true,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    meta.truncate_object(TruncateObjectRequest {
        no_wait: false,
        ..truncate
    })
    .await
    .expect("TRUNCATE ends while a split of its table runs");
    let split = wait_job(&mc_addr, split.id, |j| {
        j.state >= JobState::Succeeded as i32
    })
    .await;
    let right_half = split
        .spec
        .as_ref()
        .and_then(|s| match &s.spec {
            Some(job_spec::Spec::SplitRegion(s)) => Some(s.new_region_id),
            _ => None,
        })
        .unwrap();
    let mut regions = regions_of(&mut cluster, t.id).await;
    regions.sort_by(|a, b| {
        a.range
            .as_ref()
            .unwrap()
            .start
            .cmp(&b.range.as_ref().unwrap().start)
    });
    assert!(
        regions
            .iter()
            .all(|r| r.id != region.id && r.id != right_half),
        "only new regions serve the truncated table (old {}, split's right half {right_half}): \
         {regions:?}",
        region.id
    );
    let mut at = range.start.clone();
    for r in &regions {
        let rr = r.range.as_ref().unwrap();
        assert_eq!(
            rr.start, at,
            "a hole or an overlap in the table: {regions:?}"
        );
        at = rr.end.clone();
    }
    assert_eq!(at, range.end, "the table's range is covered: {regions:?}");
    for i in 0..20 {
        let key = row(&range.start, i);
        assert_eq!(client.get(&key).await.unwrap(), None, "row {i} truncated");
        client.put(&key, b"new").await.unwrap();
        assert_eq!(
            client.get(&key).await.unwrap().as_deref(),
            Some(&b"new"[..])
        );
    }

    // DropObject while the table's region splits.
    let u = meta
        .create_table(app_table("u", 0))
        .await
        .unwrap()
        .into_inner()
        .table
        .unwrap();
    let region = only_region(&client, u.id).await;
    for i in 0..20 {
        let start = &region.range.as_ref().unwrap().start;
        client.put(&row(start, i), b"u").await.unwrap();
    }
    let split = split_in_flight(&mc_addr, &region, "split-u").await;
    meta.drop_object(DropObjectRequest {
        request_id: "drop-u".into(),
        object: Some(ObjectRef {
            target: Some(object_ref::Target::Id(u.id)),
        }),
        no_wait: false,
    })
    .await
    .expect("DROP ends while a split of its table runs");
    wait_job(&mc_addr, split.id, |j| {
        j.state >= JobState::Succeeded as i32
    })
    .await;
    let left = regions_of(&mut cluster, u.id).await;
    assert!(
        left.is_empty(),
        "no region of the dropped table stays routable: {left:?}"
    );
}
