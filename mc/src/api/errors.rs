//! The one place MC errors become wire errors: code, message and the typed detail (field, lock
//! holder, state) a client branches on.

use proto::v1::{self as pb, ErrorCode, error::Detail};

use crate::error::McError;

pub fn to_proto(e: &McError) -> pb::Error {
    let message = e.to_string();
    match e {
        McError::InvalidArgument { field, reason } => {
            pb::Error::new(ErrorCode::InvalidArgument, message).with_detail(
                Detail::InvalidArgument(pb::InvalidArgument {
                    field: field.clone(),
                    reason: reason.clone(),
                }),
            )
        }
        McError::NotFound { kind, id } => pb::Error::new(ErrorCode::NotFound, message).with_detail(
            Detail::NotFound(pb::NotFound {
                kind: (*kind).into(),
                id: id.clone(),
            }),
        ),
        McError::AlreadyExists { what } => pb::Error::new(ErrorCode::AlreadyExists, message)
            .with_detail(Detail::AlreadyExists(pb::AlreadyExists {
                kind: what
                    .split_whitespace()
                    .next()
                    .unwrap_or("object")
                    .to_lowercase(),
                id: what.clone(),
            })),
        McError::Unavailable {
            reason,
            retry_after_ms,
        } => pb::Error::new(ErrorCode::Unavailable, message).with_detail(Detail::Unavailable(
            pb::Unavailable {
                reason: reason.clone(),
                retry_after_ms: *retry_after_ms,
            },
        )),
        McError::Locked {
            resource,
            holder,
            holder_type,
            holder_state,
        } => pb::Error::new(ErrorCode::FailedPrecondition, message).with_detail(Detail::LockHeld(
            pb::LockHeld {
                resource: resource.clone(),
                holder_job_id: *holder,
                holder_job_type: (*holder_type).into(),
                holder_state: (*holder_state).into(),
                ..Default::default()
            },
        )),
        McError::IllegalTransition { job, from, to } => {
            pb::Error::new(ErrorCode::FailedPrecondition, message).with_detail(
                Detail::StateConflict(pb::StateConflict {
                    subject: format!("job/{job}"),
                    current_state: (*from).into(),
                    required: format!("a state that can become {to}"),
                }),
            )
        }
        McError::FailedPrecondition {
            subject,
            state,
            required,
        } => pb::Error::new(ErrorCode::FailedPrecondition, message).with_detail(
            Detail::StateConflict(pb::StateConflict {
                subject: subject.clone(),
                current_state: state.clone(),
                required: required.clone(),
            }),
        ),
        McError::StoreNotUsable { store, state } => {
            pb::Error::new(ErrorCode::FailedPrecondition, message).with_detail(
                Detail::StateConflict(pb::StateConflict {
                    subject: format!("store/{store}"),
                    current_state: state.clone(),
                    required: "up".into(),
                }),
            )
        }
        McError::BelowQuorum { rg, voters } => {
            pb::Error::new(ErrorCode::FailedPrecondition, message).with_detail(
                Detail::StateConflict(pb::StateConflict {
                    subject: format!("rg/{rg}"),
                    current_state: format!("{voters} voters"),
                    required: "a majority of voters left after the change".into(),
                }),
            )
        }
        McError::NotLeader { term, leader } => pb::Error::new(ErrorCode::NotLeader, message)
            .with_detail(Detail::NotLeader(pb::NotLeader {
                leader_id: leader.as_ref().map(|l| l.0).unwrap_or(0),
                leader_address: leader.as_ref().map(|l| l.1.clone()).unwrap_or_default(),
                term: *term,
            })),
        McError::PermissionDenied { .. } => pb::Error::new(ErrorCode::PermissionDenied, message),
        McError::Unauthenticated(_) => pb::Error::new(ErrorCode::Unauthenticated, message),
        McError::Corrupt { .. } | McError::Internal(_) => {
            pb::Error::new(ErrorCode::Internal, message)
        }
        McError::Catalog(_) => pb::Error::new(ErrorCode::Unavailable, message).with_detail(
            Detail::Unavailable(pb::Unavailable {
                reason: e.to_string(),
                retry_after_ms: 100,
            }),
        ),
    }
}

/// The longest message a status carries: the last guard against an error that quotes a
/// caller's input at length (gRPC clients cap the metadata a status travels in).
const MAX_MESSAGE_CHARS: usize = 1_024;

pub fn status(e: McError) -> tonic::Status {
    let mut error = to_proto(&e);
    if error.message.chars().count() > MAX_MESSAGE_CHARS {
        error.message = error
            .message
            .chars()
            .take(MAX_MESSAGE_CHARS)
            .collect::<String>()
            + "…";
    }
    if let Some(Detail::InvalidArgument(i)) = &mut error.detail
        && i.reason.chars().count() > MAX_MESSAGE_CHARS
    {
        i.reason = i.reason.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
    }
    error.into_status()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobState;

    #[test]
    fn a_lock_refusal_names_the_holder_on_the_wire() {
        let e = McError::Locked {
            resource: "rg/12".into(),
            holder: 88,
            holder_type: "MigrateReplica",
            holder_state: JobState::Running.name(),
        };
        let s = status(e);
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            s.message(),
            "rg/12 is locked by job 88 (MigrateReplica, running)"
        );
        let back = pb::Error::from_status(&s).unwrap();
        match back.detail {
            Some(Detail::LockHeld(l)) => assert_eq!(
                (
                    l.holder_job_id,
                    l.holder_job_type.as_str(),
                    l.resource.as_str()
                ),
                (88, "MigrateReplica", "rg/12")
            ),
            other => panic!("{other:?}"),
        }
    }

    /// A record that does not decode is not a transient failure: a client that retried it
    /// (as it did when every catalog error was Unavailable) would retry for ever.
    #[tokio::test]
    async fn a_corrupt_record_answers_internal_and_is_not_worth_retrying() {
        use crate::catalog::{CatalogStore, WriteBatch, memory::MemoryStore};
        let store = MemoryStore::default();
        let mut batch = WriteBatch::default();
        batch.put(
            crate::jobs::record::job_key(7),
            b"{\"id\": 7, trunc".to_vec(),
        );
        store.write(batch).await.unwrap();
        let e = crate::jobs::record::load_job(&store, 7).unwrap_err();
        assert!(
            matches!(&e, McError::Corrupt { what, .. } if what == "job 7"),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        let s = status(e);
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(
            s.message().starts_with("corrupt catalog data in job 7: "),
            "{}",
            s.message()
        );
        assert!(
            !matches!(
                pb::Error::from_status(&s).unwrap().detail,
                Some(Detail::Unavailable(_))
            ),
            "no retry hint"
        );
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let s = status(McError::invalid(
            "spec.migrate_replica.to_store_id",
            "source and target are both store 2",
        ));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        match pb::Error::from_status(&s).unwrap().detail {
            Some(Detail::InvalidArgument(i)) => {
                assert_eq!(i.field, "spec.migrate_replica.to_store_id")
            }
            other => panic!("{other:?}"),
        }
    }
}
