//! The connection to the MC group: tries the endpoints in turn, follows `NotLeader` to the
//! leader it names, waits out an election briefly, and turns wire errors into `CliError`s
//! with the exit code scripts rely on.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use proto::v1::{Error as WireError, ErrorCode, error};
use tonic::transport::{Channel, Endpoint};
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

static PRINCIPAL: OnceLock<String> = OnceLock::new();

/// Who the audit log records: `--user`, else $USER.
pub fn set_principal(user: Option<String>) {
    let name = user
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "mcctl".into());
    let _ = PRINCIPAL.set(name);
}

/// A request carrying the principal header.
pub fn req<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(p) = PRINCIPAL.get()
        && let Ok(v) = p.parse()
    {
        r.metadata_mut().insert("x-mc-principal", v);
    }
    r
}

pub struct Mc {
    endpoints: Vec<String>,
    current: usize,
    channel: Option<Channel>,
}

fn url(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
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
            Endpoint::from_shared(e.clone())
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
            let endpoint = Endpoint::from_shared(target.clone())
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
