//! Fuzz targets: what a store decodes from the network or its own disk, fed arbitrary bytes.
//! Each must return an error, never panic, allocate without bound or loop. `cargo fuzz` can
//! drive these functions; the tests below drive them with seeded random and mutated inputs on
//! every CI run.

use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use prost::Message;

use crate::codec;
use crate::rg::types::{Entry, RgCommand, TypeConfig, Vote};

/// A Raft message from a peer store: the gRPC envelope and each openraft payload it may hold.
pub fn raft_message(bytes: &[u8]) {
    let _ = proto::v1::RaftRequest::decode(bytes);
    let _ = proto::v1::RaftBatchRequest::decode(bytes);
    let _ = proto::v1::SnapshotChunk::decode(bytes);
    let _ = codec::from_wire::<AppendEntriesRequest<TypeConfig>>(bytes);
    let _ = codec::from_wire::<VoteRequest<TypeConfig>>(bytes);
    let _ = codec::from_wire::<TransferLeaderRequest<TypeConfig>>(bytes);
    let _ = codec::from_wire::<Vote>(bytes);
}

/// A request from an MC or a client: steps, status, KV.
pub fn request(bytes: &[u8]) {
    let _ = proto::v1::ExecuteStepRequest::decode(bytes);
    let _ = proto::v1::GetStoreStatusRequest::decode(bytes);
    let _ = proto::v1::BatchWriteRequest::decode(bytes);
    let _ = proto::v1::ScanRequest::decode(bytes);
}

/// A Raft log entry and the command it carries, as read back from the log.
pub fn log_entry(bytes: &[u8]) {
    let _ = codec::from_wire::<Entry>(bytes);
    let _ = codec::from_wire::<RgCommand>(bytes);
}

pub use infra::fuzz::corpus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoders_survive_twenty_thousand_hostile_inputs() {
        let vote = codec::to_wire(&Vote::new(3, 2)).unwrap();
        let envelope = proto::v1::RaftRequest {
            rg_id: 1,
            from_store_id: 2,
            to_store_id: 3,
            payload: vote.clone(),
        }
        .encode_to_vec();
        let valid = vec![vote, envelope, vec![0xff; 32]];
        let started = std::time::Instant::now();
        for input in corpus(7, 20_000, &valid) {
            raft_message(&input);
            request(&input);
            log_entry(&input);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "bounded work"
        );
    }
}
