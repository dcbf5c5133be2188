//! The first thing every server does with a call: find who sent it (the connection's
//! certificate), ask the server's policy whether that caller may make it, and hand the
//! answer on to the service in the request's extensions. A refused call never reaches a
//! service, so no handler can forget the check.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

use super::{Peer, Security};

/// What a server allows. `admit` sees the method path, the caller and the headers; it answers
/// with the status to refuse with (Unauthenticated, PermissionDenied, FailedPrecondition).
pub trait Policy: Send + Sync + 'static {
    fn admit(
        &self,
        path: &str,
        peer: &Peer,
        headers: &http::HeaderMap,
    ) -> Result<(), tonic::Status>;
}

/// Health checks and reflection answer anyone: probes and grpcurl need them before they
/// hold credentials, and they change nothing.
pub fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

#[derive(Clone)]
pub struct GuardLayer {
    security: Security,
    policy: Arc<dyn Policy>,
}

impl GuardLayer {
    pub fn new(security: Security, policy: Arc<dyn Policy>) -> Self {
        Self { security, policy }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            security: self.security.clone(),
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    security: Security,
    policy: Arc<dyn Policy>,
}

impl<S> Service<http::Request<Body>> for Guard<S>
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
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let peer = self.security.peer(req.extensions());
        let path = req.uri().path();
        if !is_public(path)
            && let Err(status) = self.policy.admit(path, &peer, req.headers())
        {
            let path: String = path.chars().take(96).collect();
            tracing::info!(path, ?peer, code = ?status.code(), reason = status.message(), "call refused");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        req.extensions_mut().insert(peer);
        let inner = self.inner.clone();
        Box::pin(inner.oneshot(req))
    }
}

/// The caller a guarded service was given (always set behind a guard).
pub fn peer_of<T>(request: &tonic::Request<T>) -> Peer {
    request
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Anonymous)
}
