//! The store's typed errors. Each maps to exactly one `mc.v1.Error` (KV replies) or
//! `StepOutcome` (steps), so a client branches on the kind, never on text.

use proto::v1;

/// Why a store request failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("RG {0} is not hosted on this store")]
    RgNotFound(u64),
    #[error("region {0} is not hosted on this store")]
    RegionNotFound(u64),
    #[error("key is outside region {region_id}")]
    KeyNotInRegion {
        key: Vec<u8>,
        region_id: u64,
        start: Vec<u8>,
        end: Vec<u8>,
    },
    #[error("region {region_id} epoch mismatch: request {request:?}, current {current:?}")]
    EpochMismatch {
        region_id: u64,
        request: (u64, u64),
        current: (u64, u64),
        /// The regions this store holds now in the region's RG (after a split: the pieces of
        /// the range the caller knew), so the caller refreshes its routes without asking the MC.
        current_regions: Vec<v1::Region>,
    },
    #[error("not the leader of RG {rg_id}; leader is store {leader_id:?} at {leader_address:?}")]
    NotLeader {
        rg_id: u64,
        leader_id: Option<u64>,
        leader_address: Option<String>,
        term: u64,
    },
    #[error("replica of RG {rg_id} on store {store_id} is offline")]
    ReplicaOffline { rg_id: u64, store_id: u64 },
    #[error("RG {rg_id} is busy with step {job_id}/{step_seq}")]
    Busy {
        rg_id: u64,
        job_id: u64,
        step_seq: u32,
    },
    #[error("stale MC term {request_term}; this store has seen {highest_seen_term}")]
    StaleTerm {
        request_term: u64,
        highest_seen_term: u64,
    },
    #[error(
        "store {store_id} belongs to cluster {mine:016x}; {caller} is of cluster {theirs:016x}"
    )]
    ForeignCluster {
        store_id: u64,
        mine: u64,
        theirs: u64,
        caller: String,
    },
    #[error("store {store} is not a member of RG {rg} here: it may not send its Raft messages")]
    NotAMember { rg: u64, store: u64 },
    #[error("RG {0} already exists on this store")]
    RgExists(u64),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    #[error("step failed: {0}")]
    Failed(String),
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The wire form, for KV replies and RaftService.
    pub fn to_proto(&self) -> v1::Error {
        use v1::ErrorCode as C;
        use v1::error::Detail as D;
        let message = self.to_string();
        match self {
            StoreError::InvalidArgument { field, reason } => {
                v1::Error::new(C::InvalidArgument, message).with_detail(D::InvalidArgument(
                    v1::InvalidArgument {
                        field: (*field).to_string(),
                        reason: reason.clone(),
                    },
                ))
            }
            StoreError::RgNotFound(id) => {
                v1::Error::new(C::NotFound, message).with_detail(D::NotFound(v1::NotFound {
                    kind: "rg".into(),
                    id: id.to_string(),
                }))
            }
            StoreError::RegionNotFound(id) => {
                v1::Error::new(C::NotFound, message).with_detail(D::NotFound(v1::NotFound {
                    kind: "region".into(),
                    id: id.to_string(),
                }))
            }
            StoreError::KeyNotInRegion {
                key,
                region_id,
                start,
                end,
            } => v1::Error::new(C::KeyNotInRegion, message).with_detail(D::KeyNotInRegion(
                v1::KeyNotInRegion {
                    key: key.clone(),
                    region_id: *region_id,
                    range: Some(v1::KeyRange {
                        start: start.clone(),
                        end: end.clone(),
                    }),
                },
            )),
            StoreError::EpochMismatch {
                region_id,
                request,
                current,
                current_regions,
            } => v1::Error::new(C::EpochMismatch, message).with_detail(D::EpochMismatch(
                v1::EpochMismatch {
                    region_id: *region_id,
                    request_epoch: Some(v1::RegionEpoch {
                        version: request.0,
                        conf_ver: request.1,
                    }),
                    current_epoch: Some(v1::RegionEpoch {
                        version: current.0,
                        conf_ver: current.1,
                    }),
                    current_regions: current_regions.clone(),
                },
            )),
            StoreError::NotLeader {
                leader_id,
                leader_address,
                term,
                ..
            } => v1::Error::new(C::NotLeader, message).with_detail(D::NotLeader(v1::NotLeader {
                leader_id: leader_id.unwrap_or(0),
                leader_address: leader_address.clone().unwrap_or_default(),
                term: *term,
            })),
            StoreError::ReplicaOffline { rg_id, store_id } => {
                v1::Error::new(C::ReplicaOffline, message).with_detail(D::ReplicaOffline(
                    v1::ReplicaOffline {
                        rg_id: *rg_id,
                        store_id: *store_id,
                    },
                ))
            }
            StoreError::Busy {
                job_id, step_seq, ..
            } => v1::Error::new(C::Busy, message).with_detail(D::Busy(v1::Busy {
                reason: "another step runs on this replica".into(),
                running_job_id: *job_id,
                running_step_seq: *step_seq,
                retry_after_ms: 100,
            })),
            StoreError::StaleTerm {
                request_term,
                highest_seen_term,
            } => v1::Error::new(C::StaleTerm, message).with_detail(D::StaleTerm(v1::StaleTerm {
                request_term: *request_term,
                highest_seen_term: *highest_seen_term,
            })),
            StoreError::ForeignCluster {
                store_id,
                mine,
                caller,
                ..
            } => v1::Error::new(C::FailedPrecondition, message).with_detail(D::StateConflict(
                v1::StateConflict {
                    subject: format!("store/{store_id}"),
                    current_state: format!("of cluster {mine:016x}"),
                    required: format!("{caller} to be of the same cluster"),
                },
            )),
            StoreError::NotAMember { .. } => v1::Error::new(C::PermissionDenied, message),
            StoreError::RgExists(id) => v1::Error::new(C::AlreadyExists, message).with_detail(
                D::AlreadyExists(v1::AlreadyExists {
                    kind: "rg".into(),
                    id: id.to_string(),
                }),
            ),
            StoreError::Unavailable(reason) => v1::Error::new(C::Unavailable, message).with_detail(
                D::Unavailable(v1::Unavailable {
                    reason: reason.clone(),
                    retry_after_ms: 100,
                }),
            ),
            StoreError::DeadlineExceeded(_) => v1::Error::new(C::DeadlineExceeded, message),
            StoreError::Failed(_) => v1::Error::new(C::FailedPrecondition, message),
            StoreError::Storage(_) | StoreError::Io(_) | StoreError::Corrupt(_) => {
                v1::Error::new(C::Internal, message)
            }
        }
    }
}
