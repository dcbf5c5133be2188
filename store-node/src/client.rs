//! A minimal KV client for one region that follows the cluster: on NotLeader it goes to the
//! named leader, on any other failure (an election, an offline replica, a store that is down)
//! it tries the next store. For tools, tests and benchmarks; SQL engines route with GetRoutes.

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
        let last = match KvServiceClient::connect(format!("http://{target}")).await {
            Ok(mut kv) => {
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
