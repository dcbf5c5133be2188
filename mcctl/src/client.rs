//! The connection to the MC group: tries the endpoints in turn, follows `NotLeader` to the
//! leader it names, waits out an election briefly, and turns wire errors into `CliError`s
//! with the exit code scripts rely on.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use infra::security::Security;
use infra::security::args::TlsArgs;
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

pub struct Mc {
    endpoints: Vec<String>,
    current: usize,
    channel: Option<Channel>,
}

fn url(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string()
}

impl Mc {
    pub fn new(endpoints: Vec<String>) -> Result<Self, CliError> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(url)
            .collect();
        if endpoints.is_empty() {
            return Err(CliError::Usage("--endpoint: name at least one MC".into()));
        }
        for e in &endpoints {
            security()
                .endpoint(e)
                .map_err(|_| CliError::Usage(format!("--endpoint: `{e}` is not an address")))?;
        }
        Ok(Self {
            endpoints,
            current: 0,
            channel: None,
        })
    }

    async fn channel(&mut self) -> Result<Channel, CliError> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let mut last = String::new();
        for _ in 0..self.endpoints.len() {
            let target = self.endpoints[self.current].clone();
            let endpoint = security()
                .endpoint(&target)
                .map_err(|e| CliError::Usage(e.to_string()))?
                .connect_timeout(Duration::from_secs(2));
            match endpoint.connect().await {
                Ok(c) => {
                    self.channel = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    last = format!("{target}: {e}");
                    self.current = (self.current + 1) % self.endpoints.len();
                }
            }
        }
        Err(CliError::Unavailable(format!("no MC reachable ({last})")))
    }

    fn switch_to(&mut self, address: &str) {
        let target = url(address);
        self.current = match self.endpoints.iter().position(|e| *e == target) {
            Some(i) => i,
            None => {
                self.endpoints.push(target);
                self.endpoints.len() - 1
            }
        };
        self.channel = None;
    }

    /// One call, following the leader.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, CliError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut last = String::new();
        for attempt in 0..(self.endpoints.len() * 2 + 10) {
            let channel = self.channel().await?;
            let status = match f(channel).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) => s,
            };
            let wire = WireError::from_status(&status);
            match wire.as_ref().map(|w| (w.code(), &w.detail)) {
                Some((ErrorCode::NotLeader, Some(error::Detail::NotLeader(n))))
                    if !n.leader_address.is_empty() =>
                {
                    self.switch_to(&n.leader_address.clone());
                }
                Some((ErrorCode::NotLeader, _)) => {
                    last = status.message().to_string();
                    tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
                }
                None if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown
                ) =>
                {
                    // The connection broke (the MC died): try the next one.
                    last = status.message().to_string();
                    self.channel = None;
                    self.current = (self.current + 1) % self.endpoints.len();
                }
                _ => return Err(refusal(&status)),
            }
        }
        Err(CliError::Unavailable(format!("no leader answered: {last}")))
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
