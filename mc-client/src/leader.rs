//! A connection to the MC group that follows its leader: it tries the endpoints it was given in
//! turn, follows a `NotLeader` answer to the leader it names, waits out an election (with the
//! same jittered backoff as KV calls, never shorter than the answer's `retry_after_ms`), and
//! moves to the next MC when a connection breaks. Every call has a deadline, so a hung MC
//! cannot hang the caller. `mcctl` is built on it.

use std::future::Future;
use std::time::Duration;

use infra::security::Security;
use proto::v1::{Error as WireError, ErrorCode, error};
use tonic::Status;
use tonic::transport::Channel;

use crate::{Backoff, retry_after};

/// Why a call did not succeed.
#[derive(Debug)]
pub enum CallError {
    /// An endpoint is not an address (which one, and why).
    BadEndpoint(String),
    /// The MC answered and refused, for a reason a retry would not change: its status, with
    /// the typed `mc.v1.Error` inside.
    Refused(Status),
    /// No MC answered, or none led, before the deadline: the last thing seen.
    Unavailable(String),
}

pub struct LeaderConnection {
    security: Security,
    endpoints: Vec<String>,
    current: usize,
    channel: Option<Channel>,
    /// How long one call keeps trying, connecting and following the leader included.
    pub call_timeout: Duration,
    pub connect_timeout: Duration,
}

fn host_port(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string()
}

impl LeaderConnection {
    /// Checks every endpoint before anything is sent: a typo is named, not timed out on.
    pub fn new(endpoints: Vec<String>, security: Security) -> Result<Self, CallError> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(host_port)
            .collect();
        if endpoints.is_empty() {
            return Err(CallError::BadEndpoint("name at least one MC".into()));
        }
        for e in &endpoints {
            security
                .endpoint(e)
                .map_err(|_| CallError::BadEndpoint(format!("`{e}` is not an address")))?;
        }
        Ok(Self {
            security,
            endpoints,
            current: 0,
            channel: None,
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
        })
    }

    async fn channel(&mut self) -> Result<Channel, CallError> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let mut last = String::new();
        for _ in 0..self.endpoints.len() {
            let target = self.endpoints[self.current].clone();
            let endpoint = self
                .security
                .endpoint(&target)
                .map_err(|e| CallError::BadEndpoint(e.to_string()))?
                .connect_timeout(self.connect_timeout);
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
        Err(CallError::Unavailable(format!("no MC reachable ({last})")))
    }

    fn switch_to(&mut self, address: &str) {
        let target = host_port(address);
        self.current = match self.endpoints.iter().position(|e| *e == target) {
            Some(i) => i,
            None => {
                self.endpoints.push(target);
                self.endpoints.len() - 1
            }
        };
        self.channel = None;
    }

    /// One call, following the leader, within `call_timeout`.
    pub async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, CallError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.call_timeout;
        match tokio::time::timeout(timeout, self.follow(f)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Unavailable(format!(
                "no answer from the MC group in {} ms",
                timeout.as_millis()
            ))),
        }
    }

    async fn follow<T, F, Fut>(&mut self, mut f: F) -> Result<T, CallError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = Backoff::new(self.call_timeout);
        // Each MC twice (a leader named, then a broken connection), and elections between.
        let mut last = String::new();
        for _ in 0..(self.endpoints.len() * 2 + 10) {
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
                    // An election: wait as the answer asks. (An Unavailable answer from a
                    // leader is the caller's to judge: it names what is awaited.)
                    last = status.message().to_string();
                    let asked = wire.as_ref().and_then(retry_after);
                    backoff
                        .wait_at_least(last.clone(), asked)
                        .await
                        .map_err(|e| CallError::Unavailable(e.to_string()))?;
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
                _ => return Err(CallError::Refused(status)),
            }
        }
        Err(CallError::Unavailable(format!(
            "no leader answered: {last}"
        )))
    }
}
