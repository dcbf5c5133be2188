//! Helpers the cross-crate tests share.

use std::time::Duration;

use store_node::server::StoreNode;
use store_node::store::RaftTuning;

/// A real store node on loopback with short Raft and heartbeat intervals, reporting to `mc`.
pub async fn store(id: u64, dir: &std::path::Path, mc: &str) -> StoreNode {
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    StoreNode::start_on_loopback(
        id,
        dir,
        raft,
        vec![mc.to_string()],
        Duration::from_millis(50),
    )
    .await
    .unwrap()
}
