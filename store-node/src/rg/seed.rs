//! Creating an RG on its member stores without running an election first: every member writes
//! the same first two log entries — the membership at index 0 and the initial regions at
//! index 1, both in term 0 — so every member's log agrees and the first elected leader
//! commits them like any other entry. Used by Create(bootstrap) and by SplitRg, whose
//! members all derive the seed from the same applied parent entry.

use std::collections::{BTreeMap, BTreeSet};

use openraft::alias::CommittedLeaderIdOf;
use openraft::entry::RaftEntry;
use openraft::{BasicNode, EntryPayload, Membership};
use rocksdb::WriteBatch;

use crate::codec;
use crate::engine::{CF_LOG, Engine, keys};
use crate::error::{Result, StoreError};
use crate::rg::types::{Entry, LogId, RegionMeta, ReplicaMeta, RgCommand, TypeConfig};

/// Adds to `batch` everything that makes `rg` exist on this store with a seeded log.
pub fn seed_rg(
    engine: &Engine,
    batch: &mut WriteBatch,
    rg: u64,
    members: &[(u64, String)],
    regions: &[RegionMeta],
) -> Result<()> {
    if members.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "members",
            reason: "an RG needs at least one member".into(),
        });
    }
    let voters: BTreeSet<u64> = members.iter().map(|(id, _)| *id).collect();
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    let membership =
        Membership::new(vec![voters], nodes).map_err(|e| StoreError::InvalidArgument {
            field: "members",
            reason: e.to_string(),
        })?;
    let term0 = CommittedLeaderIdOf::<TypeConfig>::new(0);
    let first: Entry = RaftEntry::new(LogId::new(term0, 0), EntryPayload::Membership(membership));
    let second: Entry = RaftEntry::new(
        LogId::new(term0, 1),
        EntryPayload::Normal(RgCommand::Bootstrap {
            regions: regions.to_vec(),
        }),
    );
    for entry in [first, second] {
        batch.put_cf(
            engine.cf(CF_LOG),
            keys::log_key(rg, entry.index()),
            codec::to_wire(&entry)?,
        );
    }
    engine.put_meta(
        batch,
        &keys::hosted_key(rg),
        &ReplicaMeta {
            rg_id: rg,
            offline: false,
        },
    )
}
