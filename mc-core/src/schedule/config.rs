//! The schedulers' run-time configuration: intervals, thresholds and pauses, under
//! `schedule.*` keys of GetConfig/SetConfig. Persisted whole under one catalog key, so a new
//! leader schedules as the last one was told to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::McError;

pub const CONFIG_KEY: &[u8] = b"meta/schedule";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleConfig {
    /// Scheduler name → run interval; missing: the scheduler's default.
    pub intervals: BTreeMap<String, u64>,
    /// Scheduler name → paused until (ms since the epoch; u64::MAX: until resumed).
    pub paused: BTreeMap<String, u64>,
    /// Jobs one scheduler may propose in one run.
    pub max_proposals: u32,
    /// Replicas an RG keeps.
    pub replicas: u32,
    /// Replica counts of the fullest and emptiest store differ by at least this to move one.
    pub balance_replica_min_diff: u32,
    pub balance_leader_min_diff: u32,
    /// An RG with more regions than this is split, whole affinity groups to the new RG.
    pub split_max_rg_regions: u32,
    /// An affinity group sharing its RG with others moves to an RG of its own once its
    /// regions hold more than this (small tables are packed into shared RGs when created);
    /// 0: never.
    pub split_group_max_bytes: u64,
    /// ... or once its traffic (reads + writes) exceeds this; 0: never.
    pub split_group_max_bytes_per_sec: u64,
    /// A region above this size is split at the key its store reports near its middle;
    /// 0: never.
    pub split_region_max_bytes: u64,
    /// ... or above this many keys; 0: never.
    pub split_region_max_keys: u64,
    /// ... or serving more than this (reads + writes); 0: never.
    pub split_region_max_bytes_per_sec: u64,
    /// Adjacent regions of one object, together under this size, are merged; 0: never.
    pub merge_max_region_bytes: u64,
    /// Regions younger than this are not merged (a fresh split or pre-split stays).
    pub merge_min_age_ms: u64,
    /// A store is hot when it serves more than this, and more than `hot_tolerance_pct` above
    /// the mean.
    pub hot_min_bytes_per_sec: u64,
    pub hot_tolerance_pct: u32,
    /// How long a finished job's effect may take to show in the view before it is assumed
    /// shown (see `pending`).
    pub settle_ms: u64,
    /// A store reports a replica of an RG that does not list it for this long before the
    /// replica is destroyed (its report may trail a membership change).
    pub stray_grace_ms: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            intervals: BTreeMap::new(),
            paused: BTreeMap::new(),
            max_proposals: 4,
            replicas: 3,
            balance_replica_min_diff: 2,
            balance_leader_min_diff: 2,
            split_max_rg_regions: 64,
            split_group_max_bytes: 1 << 30,
            split_group_max_bytes_per_sec: 4 << 20,
            split_region_max_bytes: 96 << 20,
            split_region_max_keys: 960_000,
            split_region_max_bytes_per_sec: 16 << 20,
            merge_max_region_bytes: 16 << 20,
            merge_min_age_ms: 10 * 60_000,
            hot_min_bytes_per_sec: 1 << 20,
            hot_tolerance_pct: 25,
            settle_ms: 300_000,
            stray_grace_ms: 60_000,
        }
    }
}

/// Keys besides the per-scheduler intervals, with what they mean.
pub const KEYS: &[(&str, &str)] = &[
    (
        "schedule.max-proposals",
        "jobs one scheduler proposes per run",
    ),
    ("schedule.replicas", "replicas every RG keeps"),
    (
        "schedule.balance-replica.min-diff",
        "replica-count gap between the fullest and emptiest store that starts a move",
    ),
    (
        "schedule.balance-leader.min-diff",
        "leader-count gap between two stores that starts a transfer",
    ),
    (
        "schedule.split-checker.max-rg-regions",
        "regions an RG holds before it is split (affinity groups kept whole)",
    ),
    (
        "schedule.split-checker.max-group-bytes",
        "size of an affinity group in a shared RG above which it gets an RG of its own; 0: never",
    ),
    (
        "schedule.split-checker.max-group-bytes-per-sec",
        "traffic of an affinity group in a shared RG above which it gets an RG of its own; 0: never",
    ),
    (
        "schedule.split-checker.max-region-bytes",
        "size above which a region is split at the key its store reports; 0: never",
    ),
    (
        "schedule.split-checker.max-region-keys",
        "keys above which a region is split; 0: never",
    ),
    (
        "schedule.split-checker.max-region-bytes-per-sec",
        "traffic above which a region is split; 0: never",
    ),
    (
        "schedule.merge-checker.max-region-bytes",
        "adjacent regions of one object together under this are merged; 0: never",
    ),
    (
        "schedule.merge-checker.min-age-ms",
        "regions younger than this are not merged",
    ),
    (
        "schedule.hot-region.min-bytes-per-sec",
        "traffic a store must serve before it counts as hot",
    ),
    (
        "schedule.hot-region.tolerance-pct",
        "how far above the mean a store's traffic may be before it counts as hot",
    ),
    (
        "schedule.settle-ms",
        "how long a finished job's effect may take to show in heartbeats",
    ),
    (
        "schedule.stray-grace-ms",
        "how long a store reports a replica of an RG that does not list it before it is destroyed",
    ),
];

impl ScheduleConfig {
    /// The region sizes the view keeps sets of for the split and merge checkers.
    pub fn watch(&self) -> crate::cluster::index::Watch {
        let never = |n: u64| if n == 0 { u64::MAX } else { n };
        crate::cluster::index::Watch {
            small_bytes: self.merge_max_region_bytes,
            large_bytes: never(self.split_region_max_bytes),
            large_keys: never(self.split_region_max_keys),
        }
    }

    pub fn interval_ms(&self, name: &str, default: u64) -> u64 {
        self.intervals.get(name).copied().unwrap_or(default)
    }

    pub fn is_paused(&self, name: &str, now_ms: u64) -> bool {
        self.paused.get(name).is_some_and(|until| *until > now_ms)
    }

    pub fn get(&self, key: &str, defaults: &BTreeMap<&'static str, u64>) -> Option<String> {
        if let Some(name) = key
            .strip_prefix("schedule.")
            .and_then(|k| k.strip_suffix(".interval-ms"))
        {
            let default = *defaults.get(name)?;
            return Some(self.interval_ms(name, default).to_string());
        }
        Some(match key {
            "schedule.max-proposals" => self.max_proposals.to_string(),
            "schedule.replicas" => self.replicas.to_string(),
            "schedule.balance-replica.min-diff" => self.balance_replica_min_diff.to_string(),
            "schedule.balance-leader.min-diff" => self.balance_leader_min_diff.to_string(),
            "schedule.split-checker.max-rg-regions" => self.split_max_rg_regions.to_string(),
            "schedule.split-checker.max-group-bytes" => self.split_group_max_bytes.to_string(),
            "schedule.split-checker.max-group-bytes-per-sec" => {
                self.split_group_max_bytes_per_sec.to_string()
            }
            "schedule.split-checker.max-region-bytes" => self.split_region_max_bytes.to_string(),
            "schedule.split-checker.max-region-keys" => self.split_region_max_keys.to_string(),
            "schedule.split-checker.max-region-bytes-per-sec" => {
                self.split_region_max_bytes_per_sec.to_string()
            }
            "schedule.merge-checker.max-region-bytes" => self.merge_max_region_bytes.to_string(),
            "schedule.merge-checker.min-age-ms" => self.merge_min_age_ms.to_string(),
            "schedule.hot-region.min-bytes-per-sec" => self.hot_min_bytes_per_sec.to_string(),
            "schedule.hot-region.tolerance-pct" => self.hot_tolerance_pct.to_string(),
            "schedule.settle-ms" => self.settle_ms.to_string(),
            "schedule.stray-grace-ms" => self.stray_grace_ms.to_string(),
            _ => return None,
        })
    }

    /// `defaults` are the schedulers' default intervals by name: only their names are keys.
    pub fn set(
        &mut self,
        key: &str,
        value: &str,
        defaults: &BTreeMap<&'static str, u64>,
    ) -> Result<(), McError> {
        let bad = |reason: &str| McError::invalid(format!("values.{key}"), reason.to_string());
        let n: u64 = value
            .trim()
            .parse()
            .map_err(|_| bad("must be a non-negative integer"))?;
        let small = |min: u64, max: u64| -> Result<u32, McError> {
            if (min..=max).contains(&n) {
                Ok(n as u32)
            } else {
                Err(bad(&format!("must be {min}..={max}")))
            }
        };
        if let Some(name) = key
            .strip_prefix("schedule.")
            .and_then(|k| k.strip_suffix(".interval-ms"))
        {
            if !defaults.contains_key(name) {
                return Err(bad("no scheduler of that name"));
            }
            if n < 10 {
                return Err(bad("must be at least 10"));
            }
            self.intervals.insert(name.to_string(), n);
            return Ok(());
        }
        match key {
            "schedule.max-proposals" => self.max_proposals = small(1, 1_000)?,
            "schedule.replicas" => self.replicas = small(1, 7)?,
            "schedule.balance-replica.min-diff" => {
                self.balance_replica_min_diff = small(1, 1_000_000)?
            }
            "schedule.balance-leader.min-diff" => {
                self.balance_leader_min_diff = small(1, 1_000_000)?
            }
            "schedule.split-checker.max-rg-regions" => {
                self.split_max_rg_regions = small(2, 1_000_000)?
            }
            "schedule.split-checker.max-group-bytes" => self.split_group_max_bytes = n,
            "schedule.split-checker.max-group-bytes-per-sec" => {
                self.split_group_max_bytes_per_sec = n
            }
            "schedule.split-checker.max-region-bytes" => self.split_region_max_bytes = n,
            "schedule.split-checker.max-region-keys" => self.split_region_max_keys = n,
            "schedule.split-checker.max-region-bytes-per-sec" => {
                self.split_region_max_bytes_per_sec = n
            }
            "schedule.merge-checker.max-region-bytes" => self.merge_max_region_bytes = n,
            "schedule.merge-checker.min-age-ms" => self.merge_min_age_ms = n,
            "schedule.hot-region.min-bytes-per-sec" => self.hot_min_bytes_per_sec = n,
            "schedule.hot-region.tolerance-pct" => self.hot_tolerance_pct = small(0, 10_000)?,
            "schedule.settle-ms" => self.settle_ms = n,
            "schedule.stray-grace-ms" => self.stray_grace_ms = n,
            _ => return Err(bad("unknown configuration key")),
        }
        Ok(())
    }
}
