//! Store node configuration: an optional TOML file, overridden by command-line flags.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Result, StoreError};
use crate::heartbeat::HeartbeatOptions;
use crate::store::{RaftTuning, StoreOptions};

/// Everything a store node reads at start. Field names are the TOML keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// 0: ask the MC for an id at first registration.
    pub store_id: u64,
    pub listen: String,
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    pub mc: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Bytes this store may fill; 0 (the default) reports the data directory's filesystem.
    pub capacity_bytes: u64,
    pub store_heartbeat_ms: u64,
    pub rg_heartbeat_ms: u64,
    pub raft_heartbeat_ms: u64,
    pub raft_election_min_ms: u64,
    pub raft_election_max_ms: u64,
    pub snapshot_after_logs: u64,
    pub logs_to_keep: u64,
    /// An RG nothing touched for this long stops its Raft ticks until something does; 0 keeps
    /// every RG ticking.
    pub hibernate_after_ms: u64,
    /// fsync the Raft log; never turn off outside benchmarks.
    pub sync: bool,
    /// Snapshot bytes per second sent to one peer; 0 is unlimited.
    pub snapshot_rate_bytes: u64,
    /// "text" or "json".
    pub log_format: String,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    pub metrics_listen: Option<String>,
    /// The cluster CA, this store's certificate and its key (PEM files).
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Plaintext, no authentication (benchmarks only).
    pub insecure: bool,
    /// Users that may read and write rows until an MC sends who may (a store run without an
    /// MC); the MC's list, once sent, replaces it.
    pub bootstrap_data_users: Vec<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let raft = RaftTuning::default();
        Self {
            store_id: 0,
            listen: "127.0.0.1:7000".into(),
            advertise: None,
            data_dir: "./store-data".into(),
            mc: vec![],
            labels: HashMap::new(),
            // From the filesystem.
            capacity_bytes: 0,
            store_heartbeat_ms: 10_000,
            rg_heartbeat_ms: 10_000,
            raft_heartbeat_ms: raft.heartbeat_ms,
            raft_election_min_ms: raft.election_min_ms,
            raft_election_max_ms: raft.election_max_ms,
            snapshot_after_logs: raft.snapshot_after_logs,
            logs_to_keep: raft.logs_to_keep,
            hibernate_after_ms: raft.hibernate_after_ms,
            sync: true,
            snapshot_rate_bytes: 0,
            log_format: "text".into(),
            metrics_listen: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            insecure: false,
            bootstrap_data_users: vec![],
        }
    }
}

impl StoreConfig {
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| StoreError::InvalidArgument {
            field: "config",
            reason: e.to_string(),
        })
    }

    /// Parses `zone=z1` style labels.
    pub fn parse_labels(items: &[String]) -> Result<HashMap<String, String>> {
        let mut labels = HashMap::new();
        for item in items {
            let Some((k, v)) = item.split_once('=') else {
                return Err(StoreError::InvalidArgument {
                    field: "labels",
                    reason: format!("`{item}` is not KEY=VALUE"),
                });
            };
            if k.is_empty() {
                return Err(StoreError::InvalidArgument {
                    field: "labels",
                    reason: format!("`{item}` has an empty key"),
                });
            }
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(labels)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(m) = &self.metrics_listen
            && m.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(StoreError::InvalidArgument {
                field: "metrics_listen",
                reason: format!("`{m}` is not HOST:PORT"),
            });
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(StoreError::InvalidArgument {
                field: "listen",
                reason: format!("`{}` is not HOST:PORT", self.listen),
            });
        }
        if self.raft_election_min_ms <= self.raft_heartbeat_ms
            || self.raft_election_max_ms <= self.raft_election_min_ms
        {
            return Err(StoreError::InvalidArgument {
                field: "raft_election_min_ms",
                reason: "needs raft_heartbeat_ms < raft_election_min_ms < raft_election_max_ms"
                    .into(),
            });
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(StoreError::InvalidArgument {
                field: "log_format",
                reason: "must be text or json".into(),
            });
        }
        Ok(())
    }

    pub fn advertise_addr(&self, bound: std::net::SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
    }

    /// The TLS material the config names (refused when it names none and not `insecure`).
    pub fn security(&self) -> Result<crate::security::Security> {
        crate::security::args::TlsArgs {
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            insecure: self.insecure,
        }
        .security()
        .map_err(|e| StoreError::InvalidArgument {
            field: "tls",
            reason: e.to_string(),
        })
    }

    pub fn store_options(
        &self,
        advertise: String,
        security: crate::security::Security,
    ) -> StoreOptions {
        StoreOptions {
            security,
            store_id: self.store_id,
            data_dir: self.data_dir.clone(),
            advertise,
            raft: RaftTuning {
                heartbeat_ms: self.raft_heartbeat_ms,
                election_min_ms: self.raft_election_min_ms,
                election_max_ms: self.raft_election_max_ms,
                snapshot_after_logs: self.snapshot_after_logs,
                logs_to_keep: self.logs_to_keep,
                hibernate_after_ms: self.hibernate_after_ms,
            },
            sync: self.sync,
            snapshot_rate: self.snapshot_rate_bytes,
        }
    }

    pub fn heartbeat_options(&self) -> HeartbeatOptions {
        HeartbeatOptions {
            mc_endpoints: self.mc.clone(),
            labels: self.labels.clone(),
            capacity_bytes: self.capacity_bytes,
            store_interval: Duration::from_millis(self.store_heartbeat_ms.max(10)),
            rg_interval: Duration::from_millis(self.rg_heartbeat_ms.max(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let config = StoreConfig::from_toml(
            "store_id = 4\nlisten = \"127.0.0.1:7004\"\n[labels]\nzone = \"z1\"\n",
        )
        .unwrap();
        assert_eq!(config.store_id, 4);
        assert_eq!(config.labels.get("zone").map(String::as_str), Some("z1"));
        assert!(config.sync);
        let err = StoreConfig::from_toml("stor_id = 4").unwrap_err();
        assert!(err.to_string().contains("stor_id"), "{err}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let mut config = StoreConfig {
            listen: "nowhere".into(),
            ..Default::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("listen")
        );
        config.listen = "127.0.0.1:1".into();
        config.metrics_listen = Some("metrics-host".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("metrics_listen")
        );
        config.metrics_listen = None;
        config.raft_election_min_ms = 10;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("raft_election_min_ms")
        );
        let err = StoreConfig::parse_labels(&["zone".into()]).unwrap_err();
        assert!(err.to_string().contains("labels"), "{err}");
    }
}
