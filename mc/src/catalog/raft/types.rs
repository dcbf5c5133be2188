//! What the MC's Raft log carries. The catalog is one replicated key-value map; every change
//! to it is one [`CatalogCommand`] in the log, so all MCs apply the same writes in the same
//! order.

use serde::{Deserialize, Serialize};

use crate::catalog::WriteBatch;

/// A command in the MC's Raft log. Entries are postcard-encoded, which is not self-describing:
/// variants are appended, never renamed or reshaped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Puts and deletes applied together.
    Write(WriteBatch),
}

impl std::fmt::Display for CatalogCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogCommand::Write(b) => write!(f, "Write({} ops)", b.ops.len()),
        }
    }
}

openraft::declare_raft_types!(
    /// Raft types of the MC group. Node ids are MC ids; a node's address serves both the MC's
    /// Raft traffic and its client API.
    pub TypeConfig:
        D = CatalogCommand,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, std::io::Cursor<Vec<u8>>>;

pub use raftkit::wire::{from_wire, io_err, to_wire};

#[cfg(test)]
mod fuzz {
    use openraft::raft::{AppendEntriesRequest, VoteRequest};
    use prost::Message;

    use super::*;

    /// What an MC decodes from peers, clients and its own log, fed hostile bytes: errors,
    /// never a panic or unbounded work (`infra::fuzz` has the store's targets).
    #[test]
    fn catalog_commands_raft_messages_and_requests_survive_hostile_bytes() {
        let valid = vec![
            proto::v1::CreateTableRequest {
                name: "t".into(),
                request_id: "r".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            proto::v1::SubmitJobRequest::default().encode_to_vec(),
        ];
        for input in infra::fuzz::corpus(11, 20_000, &valid) {
            let _ = from_wire::<Entry>(&input);
            let _ = from_wire::<CatalogCommand>(&input);
            let _ = from_wire::<AppendEntriesRequest<TypeConfig>>(&input);
            let _ = from_wire::<VoteRequest<TypeConfig>>(&input);
            let _ = proto::v1::CreateTableRequest::decode(input.as_slice());
            let _ = proto::v1::SubmitJobRequest::decode(input.as_slice());
            let _ = proto::v1::RgHeartbeatBatch::decode(input.as_slice());
            let _ = proto::v1::RaftRequest::decode(input.as_slice());
        }
    }
}
