//! Heartbeats to the MC: registration with address and labels, store heartbeats, batched RG
//! heartbeats from the leader with region statistics. The store serves while the MC is
//! unreachable and resumes reporting when it comes back.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use proto::v1::heartbeat_service_server::{HeartbeatService, HeartbeatServiceServer};
use proto::v1::*;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// What an MC would receive; a real gRPC server standing in for the MC, which is built by a
/// later issue.
#[derive(Default)]
struct Received {
    registrations: Vec<RegisterStoreRequest>,
    store_heartbeats: Vec<StoreHeartbeatRequest>,
    rg_heartbeats: Vec<RgHeartbeat>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl HeartbeatService for Recorder {
    async fn register_store(
        &self,
        r: Request<RegisterStoreRequest>,
    ) -> Result<Response<RegisterStoreResponse>, Status> {
        let r = r.into_inner();
        let id = r.store_id;
        self.0.lock().unwrap().registrations.push(r);
        Ok(Response::new(RegisterStoreResponse {
            store_id: id,
            cluster_id: 1,
            intervals: None,
            mc_term: 1,
            data_access: None,
        }))
    }
    async fn store_heartbeat(
        &self,
        r: Request<StoreHeartbeatRequest>,
    ) -> Result<Response<StoreHeartbeatResponse>, Status> {
        self.0.lock().unwrap().store_heartbeats.push(r.into_inner());
        Ok(Response::new(StoreHeartbeatResponse {
            mc_term: 1,
            intervals: None,
            data_access: None,
        }))
    }
    async fn rg_heartbeat(
        &self,
        r: Request<Streaming<RgHeartbeatBatch>>,
    ) -> Result<Response<RgHeartbeatResponse>, Status> {
        let mut stream = r.into_inner();
        let (mut batches, mut heartbeats) = (0, 0);
        while let Some(Ok(batch)) = stream.next().await {
            batches += 1;
            heartbeats += batch.heartbeats.len() as u64;
            self.0
                .lock()
                .unwrap()
                .rg_heartbeats
                .extend(batch.heartbeats);
        }
        Ok(Response::new(RgHeartbeatResponse {
            batches,
            heartbeats,
        }))
    }
}

fn serve(addr: &str, recorder: Recorder) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let addr = addr.parse().unwrap();
    tokio::spawn(async move {
        store_node::security::pki::TestPki::shared()
            .security(&store_node::security::Identity::Mc(1))
            .server()
            .unwrap()
            .add_service(HeartbeatServiceServer::new(recorder))
            .serve_with_shutdown(addr, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_to_the_mc_and_keeps_serving_while_it_is_away() {
    let mc = free_addr();
    let cluster = Cluster::start_with(
        1,
        &[
            "--mc",
            &mc,
            "--labels",
            "zone=z1,rack=r1,host=h1",
            "--store-heartbeat-ms",
            "100",
            "--rg-heartbeat-ms",
            "100",
        ],
    )
    .await;
    // No MC yet: the store still creates an RG and serves writes.
    cluster.bootstrap_rg(&[1]).await;
    put_all(&cluster, 0..10, 4).await;

    let recorder = Recorder::default();
    let stop = serve(&mc, recorder.clone());
    let seen = recorder.0.clone();
    wait_until(
        "registration and heartbeats",
        Duration::from_secs(20),
        || {
            let r = seen.lock().unwrap();
            !r.registrations.is_empty()
                && !r.store_heartbeats.is_empty()
                && r.rg_heartbeats.iter().any(|h| h.rg_id == RG)
        },
    )
    .await;
    put_all(&cluster, 10..20, 4).await;
    wait_until(
        "write stats in an RG heartbeat",
        Duration::from_secs(20),
        || {
            let r = seen.lock().unwrap();
            r.rg_heartbeats.iter().any(|h| {
                h.regions
                    .iter()
                    .any(|reg| reg.region_id == REGION && reg.write_ops > 0)
            })
        },
    )
    .await;
    {
        let r = seen.lock().unwrap();
        let reg = &r.registrations[0];
        assert_eq!(
            (reg.store_id, reg.address.as_str()),
            (1, cluster.addr(1).as_str())
        );
        assert_eq!(reg.labels.get("zone").map(String::as_str), Some("z1"));
        assert_eq!(reg.labels.get("host").map(String::as_str), Some("h1"));
        let stats = r.store_heartbeats.last().unwrap().stats.unwrap();
        assert_eq!((stats.replica_count, stats.leader_count), (1, 1));
        let hb = r
            .rg_heartbeats
            .iter()
            .rev()
            .find(|h| h.rg_id == RG)
            .unwrap();
        assert_eq!((hb.leader_store_id, hb.members.len()), (1, 1));
        assert!(hb.applied_index > 0 && hb.term > 0 && hb.conf_ver > 0);
        let region = hb.regions.iter().find(|r| r.region_id == REGION).unwrap();
        assert!(region.size_bytes > 0);
    }

    // A region far under 8 MiB still reports a split key inside it, near the middle of its
    // bytes (a hot small region can only be split at a key its store reported).
    let addrs = [cluster.addr(1)];
    for i in 100..400 {
        put_one(&addrs, REGION, 1, key(i), value(i, 4 << 10)).await;
    }
    wait_until(
        "a split key for a small region",
        Duration::from_secs(20),
        || {
            let r = seen.lock().unwrap();
            r.rg_heartbeats.iter().rev().any(|h| {
                h.regions.iter().any(|reg| {
                    let range = reg.range.clone().unwrap_or_default();
                    reg.region_id == REGION
                        && reg.size_bytes < 8 << 20
                        && reg.split_key > range.start
                        && (range.end.is_empty() || reg.split_key < range.end)
                        && reg.split_key > key(150)
                        && reg.split_key < key(350)
                })
            })
        },
    )
    .await;

    // The MC goes away: the store keeps serving; it comes back: reports resume.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_all(&cluster, 20..30, 4).await;
    let before = seen.lock().unwrap().store_heartbeats.len();
    let _stop = serve(&mc, recorder.clone());
    wait_until(
        "heartbeats after the MC returns",
        Duration::from_secs(20),
        || {
            let r = seen.lock().unwrap();
            r.store_heartbeats.len() > before && r.registrations.len() >= 2
        },
    )
    .await;
}
