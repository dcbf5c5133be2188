//! The TLS flags every binary takes (`store-node`, `mc serve`, `mcctl`), with the same names
//! and environment variables everywhere.

use std::path::PathBuf;

use super::{Security, SecurityError};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// The cluster CA's certificate (PEM): every peer's certificate must chain to it.
    #[arg(long, global = true, env = "MC_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This component's certificate (PEM); its SAN URI spiffe://mc/<mc|store|user>/<id> is
    /// its identity.
    #[arg(long, global = true, env = "MC_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, global = true, env = "MC_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Plaintext without any authentication: every caller is trusted. Only for benchmarks'
    /// plaintext baseline and throwaway experiments.
    #[arg(long, global = true, env = "MC_INSECURE")]
    pub insecure: bool,
}

impl TlsArgs {
    /// The security these flags ask for; refused when they name no identity and no
    /// `--insecure`, so a component never runs open by accident.
    pub fn security(&self) -> Result<Security, SecurityError> {
        if self.insecure {
            tracing::warn!("running --insecure: plaintext, and every caller is trusted");
            return Ok(Security::plaintext());
        }
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Security::from_files(ca, cert, key),
            _ => Err(SecurityError::NoIdentity),
        }
    }
}
