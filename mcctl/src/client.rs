//! mcctl's side of the connection to the MC group: who it is (certificate or token), and wire
//! errors turned into `CliError`s with the exit code scripts rely on. Following the leader is
//! the client crate's (`mc_client::leader`).

use std::future::Future;
use std::sync::OnceLock;

use infra::security::Security;
use infra::security::args::TlsArgs;
use mc_client::leader::{CallError, LeaderConnection};
use proto::v1::{Error as WireError, ErrorCode, error};
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Exit codes: 0 success; 1 the operation ran and did not succeed (a watched job failed);
/// 2 bad usage; 3 refused by the MC with a typed reason; 4 no MC reachable, or no leader.
#[derive(Debug)]
pub enum CliError {
    Failed(String),
    Usage(String),
    Refused(String),
    /// A refusal because a job holds a lock; the holder's details make a better message.
    Locked {
        message: String,
        resource: String,
        holder: u64,
    },
    Unavailable(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Refused(_) | CliError::Locked { .. } => 3,
            CliError::Unavailable(_) => 4,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CliError::Failed(m)
            | CliError::Usage(m)
            | CliError::Refused(m)
            | CliError::Unavailable(m)
            | CliError::Locked { message: m, .. } => m,
        }
    }
}

static TOKEN: OnceLock<String> = OnceLock::new();
static SECURITY: OnceLock<Security> = OnceLock::new();

/// How mcctl proves who it is: a client certificate (`--tls-cert`/`--tls-key`) or a bearer
/// token (`--token`, $MC_TOKEN), over TLS with the cluster CA (`--tls-ca`).
pub fn set_auth(tls: &TlsArgs, token: Option<String>) -> Result<(), CliError> {
    let security = if tls.insecure {
        Security::plaintext()
    } else {
        match (&tls.tls_ca, &tls.tls_cert, &tls.tls_key, &token) {
            (Some(_), Some(_), Some(_), _) => {
                tls.security().map_err(|e| CliError::Usage(e.to_string()))?
            }
            (Some(ca), None, None, Some(_)) => Security::ca_only(
                &std::fs::read(ca)
                    .map_err(|e| CliError::Usage(format!("--tls-ca {}: {e}", ca.display())))?,
            ),
            _ => {
                return Err(CliError::Usage(
                    "no credentials: give --tls-ca with --tls-cert and --tls-key, or --tls-ca with --token (or $MC_TLS_CA, $MC_TLS_CERT, $MC_TLS_KEY, $MC_TOKEN; `mc playground` prints them)".into(),
                ));
            }
        }
    };
    let _ = SECURITY.set(security);
    if let Some(t) = token {
        let _ = TOKEN.set(t);
    }
    Ok(())
}

fn security() -> Security {
    SECURITY.get().cloned().unwrap_or_else(Security::plaintext)
}

/// A request carrying the bearer token, when mcctl has one.
pub fn req<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(t) = TOKEN.get()
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// The MC group, its leader followed (see `mc_client::leader`).
pub struct Mc(LeaderConnection);

impl Mc {
    pub fn new(endpoints: Vec<String>) -> Result<Self, CliError> {
        LeaderConnection::new(endpoints, security())
            .map(Mc)
            .map_err(|e| match e {
                CallError::BadEndpoint(why) => CliError::Usage(format!("--endpoint: {why}")),
                other => cli_error(other),
            })
    }

    /// One call, following the leader, within the connection's call timeout.
    pub async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, CliError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.0.call(f).await.map_err(cli_error)
    }
}

fn cli_error(e: CallError) -> CliError {
    match e {
        CallError::BadEndpoint(why) => CliError::Usage(why),
        CallError::Refused(status) => refusal(&status),
        CallError::Unavailable(why) => CliError::Unavailable(why),
    }
}

/// A wire error as the user reads it.
pub fn refusal(status: &Status) -> CliError {
    let message = status.message().to_string();
    let wire = WireError::from_status(status);
    if let Some(error::Detail::LockHeld(l)) = wire.as_ref().and_then(|w| w.detail.clone()) {
        return CliError::Locked {
            message,
            resource: l.resource,
            holder: l.holder_job_id,
        };
    }
    match wire.map(|e| e.code()) {
        Some(ErrorCode::Unavailable | ErrorCode::NotLeader | ErrorCode::Busy) => {
            CliError::Unavailable(message)
        }
        _ => CliError::Refused(message),
    }
}
