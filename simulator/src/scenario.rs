//! Scenario files (TOML). Unknown keys are refused by name, so a typo never silently changes
//! what is simulated.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Parse(String),
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Simulated time, in seconds.
    pub duration_secs: u64,
    /// How often balance and safety are sampled, in seconds.
    #[serde(default = "default_sample")]
    pub sample_secs: u64,
    pub cluster: Cluster,
    pub data: Data,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub events: Vec<Event>,
    /// Policies `compare` runs when none is named: "mc" and "pd".
    #[serde(default = "default_policies")]
    pub policies: Vec<String>,
    /// MC config overrides, as SetConfig keys (schedule.*).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Balance counts as converged once replica max/mean stays at or under this.
    #[serde(default = "default_threshold")]
    pub balance_threshold: f64,
    /// Expected outcomes, checked by `mcsim run` and the scenario tests.
    #[serde(default)]
    pub expect: Expect,
}

fn default_sample() -> u64 {
    60
}
fn default_policies() -> Vec<String> {
    vec!["mc".into(), "pd".into()]
}
fn default_threshold() -> f64 {
    1.1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Groups of identical stores.
    pub stores: Vec<StoreGroup>,
    /// Heartbeat interval, seconds; the MC's view is refreshed this often.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// Extra delay before a heartbeat reaches the MC (a stale view), seconds.
    #[serde(default)]
    pub heartbeat_delay_secs: u64,
    /// max_store_down_time, seconds.
    #[serde(default = "default_down")]
    pub down_after_secs: u64,
    /// Fixed latency of every step, milliseconds.
    #[serde(default = "default_step_latency")]
    pub step_latency_ms: u64,
    /// Snapshots a store takes in at once.
    #[serde(default = "default_snapshots")]
    pub snapshots_per_store: u32,
}

fn default_heartbeat() -> u64 {
    10
}
fn default_down() -> u64 {
    1_800
}
fn default_step_latency() -> u64 {
    20
}
fn default_snapshots() -> u32 {
    2
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreGroup {
    pub count: u32,
    /// Zones the group's stores are spread over, round robin ("z1", "z2", …).
    #[serde(default = "default_zones")]
    pub zones: Vec<String>,
    /// Stores per host (1: every store its own host).
    #[serde(default = "one")]
    pub stores_per_host: u32,
    #[serde(default = "default_capacity")]
    pub capacity_gib: u64,
    /// Snapshot bandwidth, MiB/s.
    #[serde(default = "default_bandwidth")]
    pub bandwidth_mib: u64,
    /// Relative CPU (1.0: baseline); scales how much traffic a store serves well.
    #[serde(default = "one_f")]
    pub cpu: f64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_zones() -> Vec<String> {
    vec!["z1".into(), "z2".into(), "z3".into()]
}
fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_capacity() -> u64 {
    1024
}
fn default_bandwidth() -> u64 {
    100
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    pub tables: Vec<TableGroup>,
    /// Where the data starts: "balanced", or "skewed" (only on the first `skew_stores`).
    #[serde(default = "default_start")]
    pub start: String,
    #[serde(default = "three")]
    pub skew_stores: u32,
    #[serde(default = "three")]
    pub replicas: u32,
    /// The share of written bytes that stays as new data: each region grows by its write
    /// rate times this (0: sizes stay as they start). Regions that grow get split keys, so
    /// the split checker splits them past its size limit.
    #[serde(default)]
    pub growth: f64,
}

fn default_start() -> String {
    "balanced".into()
}
fn three() -> u32 {
    3
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableGroup {
    /// Tables like this one.
    pub count: u32,
    #[serde(default)]
    pub indexes: u32,
    #[serde(default)]
    pub partitions: u32,
    /// Regions per object (the table, each index, each partition).
    #[serde(default = "one")]
    pub regions_per_object: u32,
    /// Region size, MiB: uniform between these.
    #[serde(default = "default_size_min")]
    pub region_mib_min: u64,
    #[serde(default = "default_size_max")]
    pub region_mib_max: u64,
    /// Read and write bytes per second of each table (its indexes and partitions included).
    #[serde(default)]
    pub read_bps: u64,
    #[serde(default)]
    pub write_bps: u64,
    /// Labels every replica of these tables must be on.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_size_min() -> u64 {
    32
}
fn default_size_max() -> u64 {
    96
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Zipf exponent over tables for traffic and transactions (0: uniform).
    #[serde(default)]
    pub skew: f64,
    /// Probability that a transaction on a table also touches each of its indexes.
    #[serde(default = "half")]
    pub co_access: f64,
    /// Transactions sampled per sample interval for the distributed-transaction ratio.
    #[serde(default = "default_txns")]
    pub txns_per_sample: u32,
}

impl Default for Workload {
    /// The same defaults as an empty `[workload]` table.
    fn default() -> Self {
        Self {
            skew: 0.0,
            co_access: half(),
            txns_per_sample: default_txns(),
        }
    }
}

fn half() -> f64 {
    0.5
}
fn default_txns() -> u32 {
    1_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub at_secs: u64,
    /// add_store, kill_store, drain_store, zone_loss, label_change, load_change.
    pub kind: String,
    /// The store (kill_store, drain_store, label_change).
    #[serde(default)]
    pub store: u64,
    /// add_store: how many.
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// load_change: traffic multiplier, applied to the first `tables` tables (0: all).
    #[serde(default = "one_f")]
    pub factor: f64,
    #[serde(default)]
    pub tables: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Replica max/mean at the end at most this.
    pub max_final_imbalance: Option<f64>,
    /// At most this many replica moves in all.
    pub max_moves: Option<u64>,
    /// At least this many replica moves.
    pub min_moves: Option<u64>,
    /// Every RG has its replicas on live stores at the end.
    #[serde(default)]
    pub fully_replicated: bool,
    /// Share of affinity groups placed together at the end, at least.
    pub min_affinity: Option<f64>,
    /// Peak regions below quorum, at most.
    pub max_below_quorum: Option<u64>,
    /// Traffic per store max/mean at the end, at most.
    pub max_final_load_imbalance: Option<f64>,
    /// Stores that hold no replica at the end (drained, or relabelled out of a rule).
    #[serde(default)]
    pub empty_stores: Vec<u64>,
    /// At least this many region (or RG) splits.
    pub min_splits: Option<u64>,
    /// The largest region at the end at most this many MiB.
    pub max_final_region_mib: Option<u64>,
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |field: &str, reason: &str| {
            Err(ScenarioError::Invalid {
                field: field.into(),
                reason: reason.into(),
            })
        };
        if self.duration_secs == 0 {
            return bad("duration_secs", "must be positive");
        }
        if self.sample_secs == 0 {
            return bad("sample_secs", "must be positive");
        }
        if self.cluster.stores.iter().map(|g| g.count).sum::<u32>() < self.data.replicas {
            return bad("cluster.stores", "fewer stores than data.replicas");
        }
        if !matches!(self.data.start.as_str(), "balanced" | "skewed") {
            return bad("data.start", "balanced or skewed");
        }
        for t in &self.data.tables {
            if t.region_mib_min > t.region_mib_max {
                return bad("data.tables.region_mib_min", "above region_mib_max");
            }
            if t.regions_per_object == 0 {
                return bad("data.tables.regions_per_object", "at least 1");
            }
        }
        for e in &self.events {
            if !matches!(
                e.kind.as_str(),
                "add_store"
                    | "kill_store"
                    | "drain_store"
                    | "zone_loss"
                    | "label_change"
                    | "load_change"
            ) {
                return bad("events.kind", &format!("`{}` is not an event kind", e.kind));
            }
        }
        for p in &self.policies {
            if !matches!(p.as_str(), "mc" | "pd") {
                return bad("policies", &format!("`{p}` is not mc or pd"));
            }
        }
        Ok(())
    }
}
