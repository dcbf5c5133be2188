//! How long one Raft RPC may take, for the stores' groups and the MC's catalog group alike.

use std::time::Duration;

/// The least an RPC carrying entries gets: a follower must make them durable before it
/// answers, which the heartbeat-sized soft TTL does not cover.
pub const DATA_TTL: Duration = Duration::from_secs(2);

/// openraft's soft TTL (`RPCOption::soft_ttl`) is sized for heartbeats and votes, too short
/// for entries, which the follower must make durable first. A follower that needed longer (a
/// loaded disk, a batch of large entries) was sent the same batch again and again, each cut
/// off before it was written, and never caught up. Entries get at least `DATA_TTL`; every RPC
/// 50 ms more per MiB.
pub fn rpc_timeout(soft_ttl: Duration, carries_entries: bool, bytes: usize) -> Duration {
    let floor = if carries_entries {
        soft_ttl.max(DATA_TTL)
    } else {
        soft_ttl
    };
    floor + Duration::from_millis(50 * (bytes as u64 >> 20))
}
