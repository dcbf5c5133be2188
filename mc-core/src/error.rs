//! The MC's typed errors. Each names what a caller needs to act on it: the field, the lock
//! holder, the state. `api/` maps them to `mc.v1.Error` in one place.

use crate::ids::{JobId, RgId, StoreId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McError {
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// `what` names the kind, the name and the parent: "Index `by_user` in Table `orders`".
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// Passes by itself; `reason` says what is awaited.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String, retry_after_ms: u32 },
    #[error("{resource} is locked by job {holder} ({holder_type}, {holder_state})")]
    Locked {
        resource: String,
        holder: JobId,
        holder_type: &'static str,
        /// The holder's job state, by name (`running`, `rolling_back`…).
        holder_state: &'static str,
    },
    #[error("job {job}: cannot go from {from} to {to}")]
    IllegalTransition {
        job: JobId,
        /// Job states by name.
        from: &'static str,
        to: &'static str,
    },
    #[error("{subject} is {state}; needs {required}")]
    FailedPrecondition {
        subject: String,
        state: String,
        required: String,
    },
    #[error("store {store} is {state}; a replica cannot be placed on it")]
    StoreNotUsable { store: StoreId, state: String },
    #[error("RG {rg} has {voters} voters; removing one would leave it below quorum")]
    BelowQuorum { rg: RgId, voters: usize },
    /// `leader` is `(id, address)` of the MC that leads, when known.
    #[error("this MC is not the leader (term {term}){}", leader_hint(.leader))]
    NotLeader {
        term: u64,
        leader: Option<(u64, String)>,
    },
    #[error("{principal} lacks permission {permission} ({reason})")]
    PermissionDenied {
        principal: String,
        permission: &'static str,
        reason: String,
    },
    /// The replicated catalog cannot serve or take this now (its leadership moved, no quorum,
    /// the disk refused a write): passes by itself.
    #[error("catalog: {0}")]
    Catalog(String),
    /// A stored record that does not decode or breaks an invariant: trying again cannot help,
    /// an operator must look. `what` names the record.
    #[error("corrupt catalog data in {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// A failure inside this MC (a task that panicked, an encoder that failed, a listener
    /// that stopped): neither the caller's nor transient.
    #[error("internal: {0}")]
    Internal(String),
}

impl McError {
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        McError::Unauthenticated(reason.into())
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        McError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// `id` is echoed at most 64 characters long (it may be a caller's path or name).
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        McError::NotFound {
            kind,
            id: short(&id.to_string()),
        }
    }

    pub fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        McError::Corrupt {
            what: short(&what.into()),
            reason: reason.to_string(),
        }
    }

    pub fn internal(reason: impl ToString) -> Self {
        McError::Internal(reason.to_string())
    }

    /// Worth trying again unchanged: only conditions that pass by themselves.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            McError::Locked { .. }
                | McError::NotLeader { .. }
                | McError::Catalog(_)
                | McError::Unavailable { .. }
        )
    }
}

fn leader_hint(leader: &Option<(u64, String)>) -> String {
    match leader {
        Some((id, addr)) => format!("; MC {id} at {addr} leads"),
        None => "; no leader is known (an election is under way)".into(),
    }
}

pub type Result<T, E = McError> = std::result::Result<T, E>;

/// At most the first 64 characters of `input`, for echoing a caller's input in an error: a
/// megabyte name must not come back inside the error (it broke clients' metadata limits, so
/// they saw a transport error instead of InvalidArgument).
pub fn short(input: &str) -> String {
    const MAX: usize = 64;
    if input.chars().count() <= MAX {
        return input.to_string();
    }
    let head: String = input.chars().take(MAX).collect();
    format!("{head}… ({} bytes)", input.len())
}
