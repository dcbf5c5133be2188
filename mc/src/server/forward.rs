//! Sends every client call to the MC that leads. On the leader, calls are authorized (see
//! [`super::auth`]) and go to this term's services; on a follower they are forwarded, whole
//! and streaming, to the leader over one TLS channel with the caller named, so clients and
//! stores may talk to any MC. Raft traffic between MCs is served locally, and only from
//! members of the group.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use infra::security::{Identity, Peer, Security, is_public};
use tonic::body::Body;
use tonic::transport::Channel;
use tower::{Layer, Service, ServiceExt};

use openraft::async_runtime::WatchReceiver;

use crate::api::auth::{self, Caller, DenialBudget};
use crate::api::errors::status;
use crate::catalog::raft::RaftCatalog;
use crate::error::McError;
use crate::server::leader::Leadership;

/// Marks a forwarded call, so two MCs that each believe the other leads answer NotLeader
/// instead of passing the call back and forth.
const FORWARDED: &str = auth::FORWARDED_BY;

#[derive(Clone)]
pub struct ForwardLayer {
    pub catalog: Arc<RaftCatalog>,
    pub leadership: Arc<Leadership>,
    pub security: Security,
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Forward {
            inner,
            catalog: self.catalog.clone(),
            leadership: self.leadership.clone(),
            channels: Arc::default(),
            security: self.security.clone(),
            denials: Arc::default(),
        }
    }
}

#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    catalog: Arc<RaftCatalog>,
    leadership: Arc<Leadership>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    security: Security,
    denials: Arc<DenialBudget>,
}

fn channel(
    security: &Security,
    channels: &Mutex<HashMap<String, Channel>>,
    addr: &str,
) -> Option<Channel> {
    let mut channels = channels.lock().expect("channel map lock");
    if let Some(c) = channels.get(addr) {
        return Some(c.clone());
    }
    let channel = security
        .endpoint(addr)
        .ok()?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    channels.insert(addr.to_string(), channel.clone());
    Some(channel)
}

fn not_leader(catalog: &RaftCatalog) -> http::Response<Body> {
    let (term, leader) = catalog.leader();
    status(McError::NotLeader { term, leader }).into_http()
}

/// How long a call waits for an election under way before it is answered NotLeader.
const ELECTION_WAIT: Duration = Duration::from_secs(5);

/// Where a call goes now: this term's services, or the leader's address. While an election
/// is under way the call waits for its outcome instead of failing at once.
async fn destination(
    catalog: &RaftCatalog,
    leadership: &Leadership,
    forwarded: bool,
) -> Option<Result<Arc<crate::server::leader::LeaderTerm>, String>> {
    let deadline = tokio::time::Instant::now() + ELECTION_WAIT;
    loop {
        if let Some(term) = leadership.current() {
            return Some(Ok(term));
        }
        match catalog.leader().1 {
            Some((id, addr)) if id != catalog.id() => {
                return (!forwarded).then_some(Err(addr));
            }
            // Unknown, or this MC won and is still taking up the term.
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records a refusal in the audit log (within the denial budget) and answers it.
fn refuse(
    denials: &DenialBudget,
    catalog: &Arc<RaftCatalog>,
    term: Option<&crate::server::leader::LeaderTerm>,
    caller: &Caller,
    path: &str,
    error: McError,
) -> http::Response<Body> {
    let status = status(error);
    tracing::info!(path, principal = %caller.principal(), code = ?status.code(), reason = status.message(), "call refused");
    if let (Some(term), Some(skipped)) = (term, denials.admit(&caller.principal())) {
        let (catalog, ids) = (catalog.clone(), term.log_ids.clone());
        let (principal, method) = (
            caller.principal(),
            crate::error::short(path.trim_start_matches("/mc.v1.")),
        );
        let result: Result<tonic::Response<()>, tonic::Status> = Err(status.clone());
        tokio::spawn(async move {
            let call = crate::api::audit::Call {
                principal,
                method: &method,
                request: if skipped > 0 {
                    format!(
                        "(refused before it was read; {skipped} refusals not recorded before it)"
                    )
                } else {
                    "(refused before it was read)".into()
                },
                job_id: 0,
                subjects: vec!["auth".into()],
            };
            crate::api::audit::record(&*catalog, &ids, call, &result).await;
        });
    }
    status.into_http()
}

async fn route(
    forward: Forward<()>,
    caller: Caller,
    mut req: http::Request<Body>,
) -> Result<http::Response<Body>, Infallible> {
    let Forward {
        catalog,
        leadership,
        channels,
        security,
        denials,
        ..
    } = forward;
    let forwarded = req.headers().contains_key(FORWARDED);
    let channel = match destination(&catalog, &leadership, forwarded).await {
        Some(Ok(term)) => {
            let path = req.uri().path().to_string();
            let (caller, verdict) = auth::authorize(&catalog, &path, caller, req.headers());
            if let Err(e) = verdict {
                return Ok(refuse(&denials, &catalog, Some(&term), &caller, &path, e));
            }
            req.extensions_mut().insert(caller);
            return term.routes.clone().oneshot(req).await;
        }
        Some(Err(addr)) => channel(&security, &channels, &addr),
        None => None,
    };
    let Some(channel) = channel else {
        return Ok(not_leader(&catalog));
    };
    if let Ok(me) = http::HeaderValue::from_str(&catalog.id().to_string()) {
        req.headers_mut().insert(FORWARDED, me);
    }
    // Whom the leader is to believe this call is from: never what the caller wrote.
    req.headers_mut().remove(auth::FORWARDED_FOR);
    if let Some(v) = caller.header_value() {
        req.headers_mut().insert(auth::FORWARDED_FOR, v);
    }
    match channel.oneshot(req).await {
        Ok(response) => Ok(response),
        Err(e) => {
            tracing::debug!(error = %e, "forwarding to the MC leader failed");
            Ok(not_leader(&catalog))
        }
    }
}

fn is_member(catalog: &RaftCatalog, id: u64) -> bool {
    catalog
        .raft()
        .metrics()
        .borrow_watched()
        .membership_config
        .nodes()
        .any(|(n, _)| *n == id)
}

/// Raft traffic of the MC group comes only from its members' certificates.
fn raft_peer_allowed(catalog: &RaftCatalog, peer: &Peer) -> Result<(), McError> {
    match peer {
        Peer::Unchecked => Ok(()),
        Peer::Authenticated(Identity::Mc(id)) => {
            if is_member(catalog, *id) {
                Ok(())
            } else {
                Err(McError::PermissionDenied {
                    principal: format!("mc/{id}"),
                    permission: "mc.raft",
                    reason: "not a member of the MC group".into(),
                })
            }
        }
        Peer::Authenticated(other) => Err(McError::PermissionDenied {
            principal: other.to_string(),
            permission: "mc.raft",
            reason: "RaftService of the MC group takes only MC certificates".into(),
        }),
        Peer::Anonymous => Err(McError::unauthenticated(
            "RaftService needs an MC certificate of the cluster CA",
        )),
    }
}

impl<S> Service<http::Request<Body>> for Forward<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every call clones the service it uses and waits for it to be ready itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // Raft traffic, health checks and reflection are this MC's own.
        let path = req.uri().path();
        if is_public(path) {
            let inner = self.inner.clone();
            return Box::pin(inner.oneshot(req));
        }
        let peer = self.security.peer(req.extensions());
        if path.starts_with("/mc.v1.RaftService/") {
            if let Err(e) = raft_peer_allowed(&self.catalog, &peer) {
                let caller = auth::caller(&peer, req.headers(), |_| false);
                let path = crate::error::short(path);
                let response = refuse(&self.denials, &self.catalog, None, &caller, &path, e);
                return Box::pin(async move { Ok(response) });
            }
            let inner = self.inner.clone();
            return Box::pin(inner.oneshot(req));
        }
        let catalog = self.catalog.clone();
        let caller = auth::caller(&peer, req.headers(), |id| {
            id != catalog.id() && is_member(&catalog, id)
        });
        let forward = Forward {
            inner: (),
            catalog: self.catalog.clone(),
            leadership: self.leadership.clone(),
            channels: self.channels.clone(),
            security: self.security.clone(),
            denials: self.denials.clone(),
        };
        Box::pin(route(forward, caller, req))
    }
}
