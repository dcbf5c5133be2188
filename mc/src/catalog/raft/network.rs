//! Raft traffic between MCs, over the same `RaftService` and the same network as the stores'
//! groups (`raftkit::network`): the messages carry group id 0, the MC group, and MC ids where
//! stores put store ids. What is particular to the catalog group is said here.

use std::sync::Arc;
use std::time::Duration;

use raftkit::network::{
    GroupNetworkFactory, GroupWire, SnapshotStream, Transport, TransportOptions,
};

use super::types::{CatalogCommand, Entry, Snapshot, TypeConfig, to_wire};

/// The largest Raft message between MCs (a catalog snapshot is sent in chunks).
pub const MAX_MESSAGE: usize = 64 << 20;

/// The catalog group's network to its peer MCs.
pub type McNetworkFactory = GroupNetworkFactory<TypeConfig, CatalogWire>;

/// The transport of MC `id` (the catalog group is not tagged with a cluster id: the MCs'
/// certificates already admit only MCs to each other's Raft service).
pub fn transport(id: u64, security: infra::security::Security) -> McNetworkFactory {
    let transport = Transport::new(
        id,
        0,
        security,
        TransportOptions {
            max_message: MAX_MESSAGE,
            snapshot_rate: 0,
            connect_timeout: Duration::from_millis(500),
        },
    );
    GroupNetworkFactory::new(0, Arc::clone(&transport))
}

pub struct CatalogWire;

impl GroupWire<TypeConfig> for CatalogWire {
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    fn entry_bytes(entry: &Entry) -> u64 {
        match &entry.payload {
            openraft::EntryPayload::Normal(CatalogCommand::Write(batch)) => {
                64 + batch
                    .ops
                    .iter()
                    .map(|(k, v)| 8 + k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum::<usize>() as u64
            }
            _ => 1_024,
        }
    }

    /// A catalog snapshot holds the whole catalog: sent again at once after a failed install
    /// (most likely a full disk), it would only repeat the failure at full speed.
    fn install_failed(reason: String) -> openraft::error::StreamingError<TypeConfig> {
        openraft::error::StreamingError::Unreachable(openraft::error::Unreachable::from_string(
            reason,
        ))
    }

    async fn open_snapshot(snapshot: Snapshot) -> std::io::Result<SnapshotStream> {
        let data = snapshot.snapshot.into_inner();
        Ok(SnapshotStream {
            meta: to_wire(&snapshot.meta)?,
            len: data.len() as u64,
            data: Box::new(std::io::Cursor::new(data)),
        })
    }
}
