//! What an RG's Raft log carries and what applying it answers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A region as the RG's state machine holds it. `version` grows on every split or merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionMeta {
    pub id: u64,
    pub object_id: u64,
    pub start: Vec<u8>,
    /// Empty means unbounded.
    pub end: Vec<u8>,
    pub version: u64,
}

impl RegionMeta {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }

    /// True when `[start, end)` of the request lies inside this region.
    pub fn covers(&self, start: &[u8], end: &[u8]) -> bool {
        let end_ok = if self.end.is_empty() {
            true
        } else {
            !end.is_empty() && end <= self.end.as_slice()
        };
        start >= self.start.as_slice() && end_ok
    }

    pub fn overlaps(&self, other: &RegionMeta) -> bool {
        let a_before_b = !self.end.is_empty() && self.end <= other.start;
        let b_before_a = !other.end.is_empty() && other.end <= self.start;
        !(a_before_b || b_before_a)
    }
}

/// One mutation of user data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        #[serde(with = "crate::codec::bytes")]
        key: Vec<u8>,
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
    },
    Delete {
        #[serde(with = "crate::codec::bytes")]
        key: Vec<u8>,
    },
}

impl Op {
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// A command in an RG's Raft log. Variants are appended, never renamed or reshaped: entries
/// are postcard-encoded (see `codec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RgCommand {
    /// User writes to one region, checked against the region's epoch when applied, so a write
    /// proposed before a split cannot land outside the region it was meant for.
    Write {
        region_id: u64,
        version: u64,
        ops: Vec<Op>,
    },
    CreateRegion {
        region: RegionMeta,
    },
    SplitRegion {
        region_id: u64,
        split_key: Vec<u8>,
        new_region_id: u64,
        expected_version: u64,
    },
    MergeRegion {
        left_id: u64,
        right_id: u64,
        left_version: u64,
        right_version: u64,
    },
    DeleteRegion {
        region_id: u64,
        expected_version: u64,
        delete_data: bool,
    },
    /// Creates `new_rg_id` on every member store from this entry, moving `region_ids` to it.
    SplitRg {
        new_rg_id: u64,
        region_ids: Vec<u64>,
    },
    /// Moves every region of `source_rg_id` (on the same stores, offline) into this RG.
    MergeRg {
        source_rg_id: u64,
        source_applied_index: u64,
    },
    /// The initial regions of a new RG, written identically into every member's log at
    /// index 1 when the RG is created (Create with bootstrap, SplitRg). Only in logs of stores
    /// written before RGs were seeded as applied state.
    Bootstrap {
        regions: Vec<RegionMeta>,
    },
    /// MergeRg, refused unless the target's membership is `members` when it applies.
    MergeRgChecked {
        source_rg_id: u64,
        source_applied_index: u64,
        members: Vec<u64>,
    },
    /// Adds several regions at once (a table's pre-split regions, a DDL call's regions for
    /// one RG): all of them or, when any overlaps, none. One entry, so N regions cost one
    /// Raft round instead of N.
    CreateRegions {
        regions: Vec<RegionMeta>,
    },
}

impl fmt::Display for RgCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RgCommand::Write { region_id, ops, .. } => {
                write!(f, "Write(region {region_id}, {} ops)", ops.len())
            }
            RgCommand::CreateRegion { region } => write!(f, "CreateRegion({})", region.id),
            RgCommand::CreateRegions { regions } => write!(f, "CreateRegions({})", regions.len()),
            RgCommand::SplitRegion {
                region_id,
                new_region_id,
                ..
            } => {
                write!(f, "SplitRegion({region_id} -> {new_region_id})")
            }
            RgCommand::MergeRegion {
                left_id, right_id, ..
            } => write!(f, "MergeRegion({left_id} <- {right_id})"),
            RgCommand::DeleteRegion { region_id, .. } => write!(f, "DeleteRegion({region_id})"),
            RgCommand::SplitRg {
                new_rg_id,
                region_ids,
            } => write!(f, "SplitRg(-> {new_rg_id}, {region_ids:?})"),
            RgCommand::MergeRg { source_rg_id, .. } => write!(f, "MergeRg(<- {source_rg_id})"),
            RgCommand::Bootstrap { regions } => write!(f, "Bootstrap({} regions)", regions.len()),
            RgCommand::MergeRgChecked { source_rg_id, .. } => {
                write!(f, "MergeRg(<- {source_rg_id}, checked)")
            }
        }
    }
}

/// Why an applied command changed nothing. Deterministic: every replica answers the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    RegionNotFound {
        region_id: u64,
    },
    EpochMismatch {
        region_id: u64,
        request_version: u64,
        current_version: u64,
    },
    KeyNotInRegion {
        region_id: u64,
        key: Vec<u8>,
        start: Vec<u8>,
        end: Vec<u8>,
    },
    Invalid {
        reason: String,
    },
}

/// The answer of applying one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RgResponse {
    pub rejected: Option<Rejection>,
    /// Regions created or changed by the command, as they are now.
    pub regions: Vec<RegionMeta>,
}

/// A step's local replica state that must survive restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMeta {
    pub rg_id: u64,
    /// Offline replicas neither lead nor serve reads and writes.
    pub offline: bool,
}

openraft::declare_raft_types!(
    /// Raft types of one RG. Node ids are store ids: an RG has at most one replica per store.
    pub TypeConfig:
        D = RgCommand,
        R = RgResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        // One leader per term (standard Raft): log ids are (term, index), so the members of a
        // new RG can all write the same seeded first entries (see `rg::seed`).
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

pub type Raft = openraft::Raft<TypeConfig, crate::rg::state_machine::RgStateMachine>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, crate::rg::snapshot::SnapshotHandle>;

/// Roughly how many bytes an entry takes on the wire: its user data, plus a little. Used to
/// keep AppendEntries under the message limit without encoding entries twice.
pub fn approx_size(entry: &Entry) -> u64 {
    match &entry.payload {
        openraft::EntryPayload::Normal(RgCommand::Write { ops, .. }) => {
            64 + ops
                .iter()
                .map(|op| match op {
                    Op::Put { key, value } => 8 + key.len() + value.len(),
                    Op::Delete { key } => 8 + key.len(),
                })
                .sum::<usize>() as u64
        }
        _ => 1_024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: &str, end: &str) -> RegionMeta {
        RegionMeta {
            id: 1,
            object_id: 1,
            start: start.into(),
            end: end.into(),
            version: 1,
        }
    }

    #[test]
    fn containment_respects_half_open_and_unbounded_ends() {
        let r = region("b", "d");
        assert!(r.contains(b"b") && r.contains(b"c") && !r.contains(b"d") && !r.contains(b"a"));
        let open = region("b", "");
        assert!(open.contains(b"zzzz"));
        assert!(r.covers(b"b", b"d") && !r.covers(b"b", b"") && open.covers(b"c", b""));
    }

    #[test]
    fn overlap_is_symmetric() {
        assert!(!region("a", "b").overlaps(&region("b", "c")));
        assert!(region("a", "c").overlaps(&region("b", "")));
        assert!(region("b", "").overlaps(&region("a", "c")));
    }

    #[test]
    fn commands_round_trip_through_the_log_codec() {
        let cmd = RgCommand::Write {
            region_id: 3,
            version: 2,
            ops: vec![
                Op::Put {
                    key: b"k".to_vec(),
                    value: vec![0, 1, 2],
                },
                Op::Delete { key: b"x".to_vec() },
            ],
        };
        let bytes = crate::codec::to_wire(&cmd).unwrap();
        assert_eq!(crate::codec::from_wire::<RgCommand>(&bytes).unwrap(), cmd);
    }
}
