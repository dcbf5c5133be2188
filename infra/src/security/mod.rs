//! The trust boundary, set up in one place for every server and client of MC: TLS with the
//! cluster CA (tonic with rustls), the identity a peer's certificate proves, the cluster id
//! that travels with every MC↔store and store↔store call, and the limits every server applies
//! to what a connection may make it do.
//!
//! A process runs either with TLS (its CA, certificate and key) or, only when asked for with
//! `--insecure`, in plaintext without authentication (benchmarks' plaintext baseline and local
//! experiments): then every caller is trusted, which the process logs loudly at start.

pub mod args;
mod guard;
mod identity;
pub mod pki;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{
    Certificate, ClientTlsConfig, Endpoint, Identity as TlsIdentity, Server, ServerTlsConfig,
};

pub use crate::names::{MAX_USER_NAME, new_cluster_id, valid_user_name};
pub use guard::{GuardLayer, Policy, is_public, peer_of};
pub use identity::Identity;

/// The metadata key that carries the sender's cluster id on every MC→store, store→store and
/// store→MC call.
pub const CLUSTER_ID_HEADER: &str = "mc-cluster-id";

/// Concurrent HTTP/2 streams one connection may open on any server: bounds what one client
/// makes a server hold (watches, heartbeat streams, calls in flight).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 512;

/// Largest header block a client may send (tokens, cluster id, grpc-timeout, tracing).
pub const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// A TLS handshake that has not finished by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("certificates: {0}")]
    Pki(String),
    #[error(
        "no TLS identity: pass --tls-ca, --tls-cert and --tls-key (`mc certs init` makes them), or --insecure to run without authentication"
    )]
    NoIdentity,
}

/// Who called, as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A certificate from the cluster CA that names this identity.
    Authenticated(Identity),
    /// No client certificate, or one that names no MC identity: only a bearer token can make
    /// such a caller someone.
    Anonymous,
    /// The server runs `--insecure`: nobody is checked.
    Unchecked,
}

struct Material {
    me: Identity,
    server: ServerTlsConfig,
    client: ClientTlsConfig,
}

/// A process's TLS material and identity, cheap to clone; `plaintext()` is the insecure mode.
#[derive(Clone)]
pub struct Security {
    tls: Option<Arc<Material>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.me() {
            Some(me) => write!(f, "Security(tls as {me})"),
            None => write!(f, "Security(plaintext, unchecked)"),
        }
    }
}

impl Security {
    /// No TLS and no checks: every caller is trusted.
    pub fn plaintext() -> Self {
        Self { tls: None }
    }

    /// TLS with the cluster CA, this process's certificate and key (PEM). The certificate must
    /// name exactly one MC identity.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, SecurityError> {
        let der = first_cert_der(cert)?;
        let me = Identity::from_cert_der(&der).ok_or_else(|| {
            SecurityError::Tls(
                "the certificate names no MC identity (a SAN URI spiffe://mc/<kind>/<id>)".into(),
            )
        })?;
        let identity = TlsIdentity::from_pem(cert, key);
        let ca = Certificate::from_pem(ca);
        let server = ServerTlsConfig::new()
            .identity(identity.clone())
            .client_ca_root(ca.clone())
            // Users may come with a bearer token instead of a certificate; every service
            // refuses an anonymous caller itself (Unauthenticated, not a failed handshake).
            .client_auth_optional(true)
            .timeout(HANDSHAKE_TIMEOUT);
        let client = ClientTlsConfig::new().ca_certificate(ca).identity(identity);
        Ok(Self {
            tls: Some(Arc::new(Material { me, server, client })),
        })
    }

    /// TLS from PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, SecurityError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| SecurityError::Tls(format!("{}: {e}", p.display())))
        };
        Self::from_pem(&read(ca)?, &read(cert)?, &read(key)?)
    }

    /// TLS that only verifies servers (no client certificate): a user who authenticates with a
    /// bearer token.
    pub fn ca_only(ca: &[u8]) -> Self {
        let client = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        Self {
            tls: Some(Arc::new(Material {
                me: Identity::User(String::new()),
                server: ServerTlsConfig::new(),
                client,
            })),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The identity this process's certificate names (`None` in plaintext).
    pub fn me(&self) -> Option<&Identity> {
        self.tls.as_ref().map(|m| &m.me)
    }

    /// The endpoint every client of MC dials `addr` (HOST:PORT, or a URL) with.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, tonic::transport::Error> {
        let host = addr
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        match &self.tls {
            Some(m) => {
                Endpoint::from_shared(format!("https://{host}"))?.tls_config(m.client.clone())
            }
            None => Endpoint::from_shared(format!("http://{host}")),
        }
    }

    /// Connects to `addr` now (tools and tests; servers use `endpoint(..).connect_lazy()`).
    pub async fn connect(
        &self,
        addr: &str,
    ) -> Result<tonic::transport::Channel, tonic::transport::Error> {
        self.endpoint(addr)?.tcp_nodelay(true).connect().await
    }

    /// The server builder every MC and store server starts from: TLS, and the limits one
    /// connection is held to.
    pub fn server(&self) -> Result<Server, SecurityError> {
        let mut builder = Server::builder()
            .tcp_nodelay(true)
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        if let Some(m) = &self.tls {
            builder = builder
                .tls_config(m.server.clone())
                .map_err(|e| SecurityError::Tls(e.to_string()))?;
        }
        Ok(builder)
    }

    /// Who sent a request, from the connection it came on.
    pub fn peer(&self, extensions: &http::Extensions) -> Peer {
        if self.tls.is_none() {
            return Peer::Unchecked;
        }
        extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| certs.first().and_then(|c| Identity::from_cert_der(c)))
            .map_or(Peer::Anonymous, Peer::Authenticated)
    }
}

fn first_cert_der(pem: &[u8]) -> Result<Vec<u8>, SecurityError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or_else(|| SecurityError::Tls("no CERTIFICATE block in the PEM".into()))?
        .map(|c| c.to_vec())
        .map_err(|e| SecurityError::Tls(format!("certificate PEM: {e}")))
}

/// The cluster id a request carries, if any: 16 hex digits, or nothing (what is not one is
/// treated as none, which a store of a cluster refuses).
pub fn cluster_id_of(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CLUSTER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() == 16)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .filter(|id| *id != 0)
}

/// Sets the sender's cluster id on an outgoing request (nothing while it has none yet).
pub fn tag<T>(request: &mut tonic::Request<T>, cluster_id: u64) {
    if cluster_id == 0 {
        return;
    }
    if let Ok(v) = format!("{cluster_id:016x}").parse() {
        request.metadata_mut().insert(CLUSTER_ID_HEADER, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_certificate_names_its_identity() {
        let ca = pki::Authority::generate("t").unwrap();
        for who in [
            Identity::Mc(3),
            Identity::Store(7),
            Identity::User("bob".into()),
        ] {
            let issued = ca.issue(&who, &["localhost".into()]).unwrap();
            let der = first_cert_der(issued.cert_pem.as_bytes()).unwrap();
            assert_eq!(Identity::from_cert_der(&der), Some(who.clone()));
            let s = Security::from_pem(
                ca.ca_pem().as_bytes(),
                issued.cert_pem.as_bytes(),
                issued.key_pem.as_bytes(),
            )
            .unwrap();
            assert_eq!(s.me(), Some(&who));
        }
        assert!(Identity::from_cert_der(b"not a certificate").is_none());
    }
}
