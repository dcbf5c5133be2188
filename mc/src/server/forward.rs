//! Sends every client call to the MC that leads. On the leader, calls go to this term's
//! services; on a follower they are forwarded, whole and streaming, to the leader over one
//! channel, so clients and stores may talk to any MC. Raft traffic between MCs is always
//! served locally.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service, ServiceExt};

use crate::api::errors::status;
use crate::catalog::raft::RaftCatalog;
use crate::catalog::users;
use crate::error::McError;
use crate::server::leader::Leadership;

/// Marks a forwarded call, so two MCs that each believe the other leads answer NotLeader
/// instead of passing the call back and forth.
const FORWARDED: &str = "mc-forwarded-by";

#[derive(Clone)]
pub struct ForwardLayer {
    pub catalog: Arc<RaftCatalog>,
    pub leadership: Arc<Leadership>,
    /// Check every client call against the caller's roles (on the leader).
    pub enforce_permissions: bool,
}

impl<S> Layer<S> for ForwardLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Forward {
            inner,
            catalog: self.catalog.clone(),
            leadership: self.leadership.clone(),
            channels: Arc::default(),
            enforce_permissions: self.enforce_permissions,
        }
    }
}

#[derive(Clone)]
pub struct Forward<S> {
    inner: S,
    catalog: Arc<RaftCatalog>,
    leadership: Arc<Leadership>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    enforce_permissions: bool,
}

fn channel(channels: &Mutex<HashMap<String, Channel>>, addr: &str) -> Option<Channel> {
    let mut channels = channels.lock().expect("channel map lock");
    if let Some(c) = channels.get(addr) {
        return Some(c.clone());
    }
    let channel = Endpoint::from_shared(format!("http://{addr}"))
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
) -> Option<Result<Routes, String>> {
    let deadline = tokio::time::Instant::now() + ELECTION_WAIT;
    loop {
        if let Some(term) = leadership.current() {
            return Some(Ok(term.routes.clone()));
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

/// On the leader, with permissions enforced: may the named principal make this call?
fn permitted(catalog: &RaftCatalog, req: &http::Request<Body>) -> Result<(), McError> {
    let Some(permission) = users::permission_for(req.uri().path()) else {
        return Ok(());
    };
    let principal = req
        .headers()
        .get(crate::api::audit::PRINCIPAL_HEADER)
        .and_then(|v| v.to_str().ok());
    users::check(catalog, principal, permission)
}

async fn route(
    catalog: Arc<RaftCatalog>,
    leadership: Arc<Leadership>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    enforce_permissions: bool,
    mut req: http::Request<Body>,
) -> Result<http::Response<Body>, Infallible> {
    let forwarded = req.headers().contains_key(FORWARDED);
    let channel = match destination(&catalog, &leadership, forwarded).await {
        Some(Ok(routes)) => {
            if enforce_permissions && let Err(e) = permitted(&catalog, &req) {
                return Ok(status(e).into_http());
            }
            return routes.oneshot(req).await;
        }
        Some(Err(addr)) => channel(&channels, &addr),
        None => None,
    };
    let Some(channel) = channel else {
        return Ok(not_leader(&catalog));
    };
    if let Ok(me) = http::HeaderValue::from_str(&catalog.id().to_string()) {
        req.headers_mut().insert(FORWARDED, me);
    }
    match channel.oneshot(req).await {
        Ok(response) => Ok(response),
        Err(e) => {
            tracing::debug!(error = %e, "forwarding to the MC leader failed");
            Ok(not_leader(&catalog))
        }
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
        if path.starts_with("/mc.v1.RaftService/")
            || path.starts_with("/grpc.health.v1.")
            || path.starts_with("/grpc.reflection.")
        {
            let inner = self.inner.clone();
            return Box::pin(inner.oneshot(req));
        }
        Box::pin(route(
            self.catalog.clone(),
            self.leadership.clone(),
            self.channels.clone(),
            self.enforce_permissions,
            req,
        ))
    }
}
