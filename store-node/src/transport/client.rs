//! The sending side of RaftService for the store's RGs: the network shared with the MC's
//! catalog group (`raftkit::network`: one lazily connected channel per peer store and lane,
//! shared by every RG that replicates to it; each message carries its RG id). What is
//! particular to an RG is said here: entry sizes, and snapshots streamed from their files.

use std::sync::Arc;
use std::time::Duration;

use raftkit::network::{GroupNetworkFactory, GroupWire, SnapshotStream, TransportOptions};
pub use raftkit::network::{Lane, Transport as RaftTransport};

use crate::rg::snapshot::SnapshotHandle;
use crate::rg::types::{Entry, Snapshot, TypeConfig};

/// The per-peer clients of one RG.
pub type RgNetworkFactory = GroupNetworkFactory<TypeConfig, RgWire>;

/// The store's transport: `snapshot_rate` bytes per second of snapshot to one peer (0 is
/// unlimited); messages are tagged with `cluster_id` once the store has one.
pub fn transport(
    store_id: u64,
    snapshot_rate: u64,
    security: crate::security::Security,
    cluster_id: u64,
) -> Arc<RaftTransport> {
    RaftTransport::new(
        store_id,
        cluster_id,
        security,
        TransportOptions {
            max_message: crate::server::MAX_MESSAGE,
            snapshot_rate,
            connect_timeout: Duration::from_secs(1),
        },
    )
}

pub struct RgWire;

impl GroupWire<TypeConfig> for RgWire {
    type SnapshotData = SnapshotHandle;

    fn entry_bytes(entry: &Entry) -> u64 {
        crate::rg::types::approx_size(entry)
    }

    /// The meta file as it is, and the data file.
    async fn open_snapshot(snapshot: Snapshot) -> std::io::Result<SnapshotStream> {
        let handle: SnapshotHandle = snapshot.snapshot;
        let meta = tokio::fs::read(handle.meta_path()).await?;
        let data_path = handle.data_path();
        let len = match tokio::fs::metadata(&data_path).await {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        let data: Box<dyn std::io::Read + Send> = if len == 0 {
            Box::new(std::io::empty())
        } else {
            Box::new(std::fs::File::open(&data_path)?)
        };
        Ok(SnapshotStream { meta, len, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rg::types::{LogId, Op, RgCommand};
    use openraft::EntryPayload;
    use openraft::alias::CommittedLeaderIdOf;
    use openraft::entry::RaftEntry;
    use raftkit::network::{APPEND_BUDGET, within_budget};

    fn put(index: u64, bytes: usize) -> Entry {
        RaftEntry::new(
            LogId::new(CommittedLeaderIdOf::<TypeConfig>::new(1), index),
            EntryPayload::Normal(RgCommand::Write {
                region_id: 1,
                version: 1,
                ops: vec![Op::Put {
                    key: b"k".to_vec(),
                    value: vec![0; bytes],
                }],
            }),
        )
    }

    #[test]
    fn an_rg_batch_is_cut_at_the_byte_budget_by_its_entries_sizes() {
        let mib = 1 << 20;
        let entries: Vec<Entry> = (1..=5).map(|i| put(i, 15 * mib)).collect();
        assert_eq!(
            within_budget(&entries, APPEND_BUDGET, RgWire::entry_bytes),
            1,
            "15 MiB each, 16 MiB budget"
        );
        let small: Vec<Entry> = (1..=32).map(|i| put(i, 1024)).collect();
        assert_eq!(
            within_budget(&small, APPEND_BUDGET, RgWire::entry_bytes),
            32
        );
    }
}
