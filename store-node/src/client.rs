//! A minimal KV client for one region that follows the cluster: on NotLeader it goes to the
//! named leader, on any other failure (an election, an offline replica, a store that is down)
//! it tries the next store. For tests and benchmarks (it dials as the test CA's admin user);
//! SQL engines route with GetRoutes.

use std::time::{Duration, Instant};

use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::{Error, ErrorCode, PutRequest, RegionContext, RegionEpoch, error};

/// Puts `key` in `region` (at epoch `version`) through whichever of `addrs` leads it, retrying
/// until acknowledged or `timeout`; the last error is returned then.
pub async fn put_following_leader(
    addrs: &[String],
    region: u64,
    version: u64,
    key: Vec<u8>,
    value: Vec<u8>,
    timeout: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let mut next = 0usize;
    let mut target = addrs.first().cloned().unwrap_or_default();
    loop {
        let last = match crate::security::pki::admin_connect(&target).await {
            Ok(channel) => {
                let mut kv = KvServiceClient::new(channel);
                let context = Some(RegionContext {
                    region_id: region,
                    epoch: Some(RegionEpoch {
                        version,
                        conf_ver: 0,
                    }),
                });
                match kv
                    .put(PutRequest {
                        context,
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .await
                {
                    Ok(reply) => match reply.into_inner().error {
                        None => return Ok(()),
                        Some(Error {
                            detail: Some(error::Detail::NotLeader(n)),
                            ..
                        }) if !n.leader_address.is_empty() => {
                            target = n.leader_address;
                            continue;
                        }
                        Some(e) => e,
                    },
                    Err(status) => Error::new(ErrorCode::Unavailable, status.message()),
                }
            }
            Err(e) => Error::new(ErrorCode::Unavailable, e.to_string()),
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        next += 1;
        target = addrs[next % addrs.len()].clone();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `key(i) → value(i)` for i = `first`, `first + 1`, … one at a time through the
/// region's leader until stopped, counting what was acknowledged: the load under which
/// migrations and failovers are tested and watched.
pub struct BackgroundWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BackgroundWriter {
    pub fn start(
        addrs: Vec<String>,
        region: u64,
        version: u64,
        first: u64,
        key: fn(u64) -> Vec<u8>,
        value: fn(u64) -> Vec<u8>,
    ) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let next = std::sync::Arc::new(AtomicU64::new(first));
        let task = {
            let (stop, next) = (stop.clone(), next.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.load(Ordering::Relaxed);
                    put_following_leader(
                        &addrs,
                        region,
                        version,
                        key(i),
                        value(i),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("write {i} was never acknowledged: {e:?}"));
                    next.store(i + 1, Ordering::Relaxed);
                }
            })
        };
        Self { stop, next, task }
    }

    /// Stops after the write in flight; returns the index after the last acknowledged write.
    pub async fn stop(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.task.await {
            std::panic::resume_unwind(e.into_panic());
        }
        self.next.load(Ordering::Relaxed)
    }
}
