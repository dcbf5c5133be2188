//! The audit log's writer: every call that changes something is recorded with who made it
//! (the user or component its certificate or token proved), the request, the result and the
//! job it concerns; refused calls are recorded by the MC's front door (`server::forward`). Recorded after the call, whether it succeeded or not; a failure to
//! record is logged, never turned into the call's error.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::{Clock, SystemClock};
use crate::history::{self as logs, Audit, LogIds};

/// Who is calling, as authenticated (services run behind the front door, which sets it).
pub fn principal<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<crate::api::auth::Caller>()
        .map(|c| c.principal())
        .unwrap_or_else(|| "anonymous".into())
}

/// What one call is recorded as; `record` completes it with the result.
pub struct Call<'a> {
    pub principal: String,
    pub method: &'a str,
    pub request: String,
    pub job_id: u64,
    pub subjects: Vec<String>,
}

impl<'a> Call<'a> {
    /// Who calls and what they ask, taken before the handler consumes the request; the
    /// handler adds the job and the subjects.
    pub fn begin<T: std::fmt::Debug>(method: &'a str, request: &Request<T>) -> Self {
        Self {
            principal: principal(request),
            method,
            request: format!("{:?}", request.get_ref()),
            job_id: 0,
            subjects: vec![],
        }
    }
}

pub async fn record<S: CatalogStore, T>(
    catalog: &S,
    ids: &Arc<LogIds>,
    call: Call<'_>,
    result: &Result<Response<T>, Status>,
) {
    let mut subjects = call.subjects;
    if call.job_id != 0 {
        subjects.push(format!("job/{}", call.job_id));
    }
    let entry = Audit {
        id: ids.next(),
        at_ms: SystemClock.now_ms(),
        principal: call.principal,
        method: call.method.to_string(),
        request: call.request.chars().take(2_000).collect(),
        result: match result {
            Ok(_) => "ok".into(),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
        },
        job_id: call.job_id,
        subjects,
    };
    let mut batch = WriteBatch::default();
    let written = match logs::put_audit(&mut batch, &entry) {
        Ok(()) => catalog.write(batch).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(method = call.method, error = %e, "audit record not written");
    }
}
