//! The one mapping between MC's typed [`Error`] and gRPC statuses, in the standard error
//! model: `grpc-status-details-bin` holds a `google.rpc.Status` whose details are an `Any`
//! of type `type.googleapis.com/mc.v1.Error`, so grpcio-status, Go's `status.Details` and
//! grpcurl decode it; clients branch on its code and detail and never parse the message.

use prost::Message;
use tonic::{Code, Status};

use crate::v1::{Error, ErrorCode, error::Detail};

/// The `Any` type URL of an [`Error`] inside a `google.rpc.Status`.
pub const ERROR_TYPE_URL: &str = "type.googleapis.com/mc.v1.Error";

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code as i32,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: Detail) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The gRPC code a status carrying this error gets, for clients that look no further.
    pub fn grpc_code(&self) -> Code {
        match self.code() {
            ErrorCode::Unspecified => Code::Unknown,
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::FailedPrecondition | ErrorCode::KeyNotInRegion => Code::FailedPrecondition,
            // Retryable elsewhere or later: the caller should redirect or back off.
            ErrorCode::NotLeader | ErrorCode::Unavailable | ErrorCode::ReplicaOffline => {
                Code::Unavailable
            }
            ErrorCode::Busy => Code::ResourceExhausted,
            // The caller acted on a stale view (routes or MC term) and must refresh it.
            ErrorCode::EpochMismatch | ErrorCode::StaleTerm => Code::Aborted,
            ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::Internal => Code::Internal,
        }
    }

    /// A gRPC status whose details hold this error as a `google.rpc.Status` detail.
    pub fn into_status(self) -> Status {
        let code = self.grpc_code();
        let rpc = tonic_types::pb::Status {
            code: code as i32,
            message: self.message.clone(),
            details: vec![prost_types::Any {
                type_url: ERROR_TYPE_URL.into(),
                value: self.encode_to_vec(),
            }],
        };
        Status::with_details(code, self.message, rpc.encode_to_vec().into())
    }

    /// The typed error inside a status, if an MC server put one there.
    pub fn from_status(status: &Status) -> Option<Self> {
        if status.details().is_empty() {
            return None;
        }
        let rpc = tonic_types::pb::Status::decode(status.details()).ok()?;
        rpc.details
            .iter()
            .find(|any| any.type_url == ERROR_TYPE_URL)
            .and_then(|any| Error::decode(any.value.as_slice()).ok())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        error.into_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{LockHeld, NotLeader};

    #[test]
    fn the_details_are_a_standard_google_rpc_status_with_an_any() {
        let s = Error::new(ErrorCode::AlreadyExists, "table db.t exists").into_status();
        let rpc = tonic_types::pb::Status::decode(s.details()).unwrap();
        assert_eq!(rpc.code, Code::AlreadyExists as i32);
        assert_eq!(rpc.message, "table db.t exists");
        assert_eq!(rpc.details.len(), 1);
        assert_eq!(rpc.details[0].type_url, ERROR_TYPE_URL);
        let inner = Error::decode(rpc.details[0].value.as_slice()).unwrap();
        assert_eq!(inner.code(), ErrorCode::AlreadyExists);
    }

    #[test]
    fn error_survives_a_status_round_trip() {
        let error = Error::new(ErrorCode::FailedPrecondition, "RG 12 is locked by job 88")
            .with_detail(Detail::LockHeld(LockHeld {
                resource: "rg/12".into(),
                holder_job_id: 88,
                holder_job_type: "MigrateReplica".into(),
                holder_state: "running".into(),
                holder_step: 3,
                holder_steps_total: 5,
                holder_step_kind: "Offline".into(),
            }));
        let status = error.clone().into_status();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "RG 12 is locked by job 88");
        assert_eq!(Error::from_status(&status), Some(error));
    }

    #[test]
    fn not_leader_maps_to_unavailable_and_keeps_the_address() {
        let error = Error::new(ErrorCode::NotLeader, "not the leader").with_detail(
            Detail::NotLeader(NotLeader {
                leader_id: 2,
                leader_address: "127.0.0.1:7001".into(),
                term: 9,
            }),
        );
        let status: Status = error.into();
        assert_eq!(status.code(), Code::Unavailable);
        let back = Error::from_status(&status).expect("details carry the error");
        match back.detail {
            Some(Detail::NotLeader(n)) => assert_eq!(n.leader_address, "127.0.0.1:7001"),
            other => panic!("unexpected detail {other:?}"),
        }
    }

    #[test]
    fn a_status_without_details_has_no_typed_error() {
        assert_eq!(Error::from_status(&Status::internal("boom")), None);
    }

    #[test]
    fn every_code_maps_to_a_grpc_code() {
        for value in 0..=ErrorCode::Internal as i32 {
            let code = ErrorCode::try_from(value).expect("dense enum");
            let error = Error::new(code, "x");
            let expected_unknown = code == ErrorCode::Unspecified;
            assert_eq!(
                error.grpc_code() == Code::Unknown,
                expected_unknown,
                "{code:?}"
            );
        }
    }
}
