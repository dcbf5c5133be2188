//! Bounds on in-flight work, changeable at run time: how many jobs run at once, how many steps
//! per minute a store receives, how many snapshots a store takes in at once (a new learner
//! receives its RG). A step that would exceed a bound waits; nothing is refused.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, StoreId};
use crate::jobs::plan::AtomicStep;
use crate::jobs::queue::{Priority, PriorityOrder};
use crate::step::LimitClass;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Jobs running at once (past Pending, not final); 0 is unlimited.
    pub max_running_jobs: usize,
    /// Default steps per minute a store receives; 0 is unlimited.
    pub store_steps_per_minute: u32,
    /// Default snapshots a store receives at once; 0 is unlimited.
    pub store_snapshots_in_flight: u32,
    /// Per-store overrides of the two above.
    pub per_store: BTreeMap<StoreId, (u32, u32)>,
    /// Which class of Pending jobs starts first when `max_running_jobs` is reached.
    #[serde(default)]
    pub priority_order: PriorityOrder,
    /// Metadata-only steps a store receives per minute (creating a seeded replica of a new
    /// RG, creating, splitting, merging or deleting regions): counted apart from the steps
    /// that move data, so a DDL burst is not throttled like a rebalance. 0 is unlimited.
    #[serde(default = "default_metadata_steps")]
    pub store_metadata_steps_per_minute: u32,
}

fn default_metadata_steps() -> u32 {
    60_000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_running_jobs: 64,
            store_steps_per_minute: 600,
            store_snapshots_in_flight: 2,
            per_store: BTreeMap::new(),
            priority_order: PriorityOrder::default(),
            store_metadata_steps_per_minute: default_metadata_steps(),
        }
    }
}

#[derive(Debug, Default)]
pub struct LimitState {
    pub limits: Limits,
    running: BTreeSet<JobId>,
    /// Pending jobs refused a start, by (class rank, id): the queue they start from.
    waiting: BTreeSet<(usize, JobId)>,
    /// Dispatch times in the last minute, per store (data steps; metadata steps apart).
    recent: HashMap<StoreId, VecDeque<u64>>,
    recent_metadata: HashMap<StoreId, VecDeque<u64>>,
    /// (store → jobs with an AddLearner to it in flight).
    snapshots: HashMap<StoreId, BTreeSet<JobId>>,
}

/// The store a step loads, whether it counts apart as metadata, and whether it is a snapshot.
fn load(step: &AtomicStep) -> Option<(StoreId, bool, bool)> {
    match step.spec()?.limit_class() {
        LimitClass::Leader => None,
        LimitClass::Data(s) => Some((s, false, false)),
        LimitClass::Metadata(s) => Some((s, true, false)),
        LimitClass::Snapshot(s) => Some((s, false, true)),
    }
}

impl LimitState {
    fn store_limits(&self, store: StoreId) -> (u32, u32) {
        self.limits.per_store.get(&store).copied().unwrap_or((
            self.limits.store_steps_per_minute,
            self.limits.store_snapshots_in_flight,
        ))
    }

    /// May `job` of class `priority` start running now? When the running-jobs limit is
    /// reached it queues: a freed slot goes to the most urgent class, oldest job first.
    pub fn may_start(&mut self, job: JobId, priority: Priority) -> bool {
        if self.limits.max_running_jobs == 0 || self.running.contains(&job) {
            return true;
        }
        let entry = (self.limits.priority_order.rank(priority), job);
        self.waiting.insert(entry);
        self.running.len() < self.limits.max_running_jobs && self.waiting.first() == Some(&entry)
    }

    pub fn started(&mut self, job: JobId) {
        self.waiting.retain(|(_, j)| *j != job);
        self.running.insert(job);
    }

    pub fn ended(&mut self, job: JobId) {
        self.waiting.retain(|(_, j)| *j != job);
        self.running.remove(&job);
        for jobs in self.snapshots.values_mut() {
            jobs.remove(&job);
        }
    }

    /// `Ok` and the dispatch is counted, or the time to try again.
    pub fn admit(&mut self, job: JobId, step: &AtomicStep, now: u64) -> Result<(), u64> {
        let Some((store, metadata, snapshot)) = load(step) else {
            return Ok(());
        };
        let (mut per_minute, snapshots) = self.store_limits(store);
        if metadata {
            // Its own limit, but an SRE's throttle on this store (a sick one) holds for it too.
            let own = self.limits.store_metadata_steps_per_minute;
            per_minute = match self.limits.per_store.get(&store) {
                Some((n, _)) if *n > 0 && (own == 0 || *n < own) => *n,
                _ => own,
            };
        }
        let window = |recent: &mut VecDeque<u64>| {
            while recent.front().is_some_and(|t| now >= t + 60_000) {
                recent.pop_front();
            }
        };
        if per_minute > 0 {
            let recent = if metadata {
                self.recent_metadata.entry(store).or_default()
            } else {
                self.recent.entry(store).or_default()
            };
            window(recent);
            if recent.len() >= per_minute as usize {
                return Err(recent[0] + 60_000);
            }
        }
        if snapshots > 0 && snapshot {
            let in_flight = self.snapshots.entry(store).or_default();
            if !in_flight.contains(&job) && in_flight.len() >= snapshots as usize {
                return Err(now + 100);
            }
            in_flight.insert(job);
        }
        if per_minute > 0 {
            let recent = if metadata {
                self.recent_metadata.entry(store).or_default()
            } else {
                self.recent.entry(store).or_default()
            };
            recent.push_back(now);
        }
        Ok(())
    }

    /// A step's outcome arrived: its snapshot, if any, is no longer in flight.
    pub fn finished(&mut self, job: JobId, step: &AtomicStep) {
        if let Some((store, _, true)) = load(step)
            && let Some(jobs) = self.snapshots.get_mut(&store)
        {
            jobs.remove(&job);
        }
    }
}

/// What the API needs to read and change the limits of a running engine.
pub trait LimitsControl: Send + Sync + 'static {
    fn limits(&self) -> Limits;
    fn set_limits(&self, limits: Limits);
}

/// Run-time configuration keys, as `mcctl config` spells them.
pub const CONFIG_KEYS: &[(&str, &str)] = &[
    ("jobs.max-running", "jobs running at once; 0 is unlimited"),
    (
        "store.steps-per-minute",
        "steps a store receives per minute unless overridden; 0 is unlimited",
    ),
    (
        "store.snapshots-in-flight",
        "snapshots a store receives at once unless overridden; 0 is unlimited",
    ),
    (
        "store.metadata-steps-per-minute",
        "metadata-only steps (a new RG's seeded replicas, region create/split/merge/delete) a \
         store receives per minute, apart from steps that move data; 0 is unlimited",
    ),
    (
        "queue.priority-order",
        "which class of waiting jobs starts first: admin, repair, ddl, balance in any order",
    ),
];

impl Limits {
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "jobs.max-running" => self.max_running_jobs.to_string(),
            "store.steps-per-minute" => self.store_steps_per_minute.to_string(),
            "store.snapshots-in-flight" => self.store_snapshots_in_flight.to_string(),
            "store.metadata-steps-per-minute" => self.store_metadata_steps_per_minute.to_string(),
            "queue.priority-order" => self.priority_order.render(),
            _ => return None,
        })
    }

    /// Sets one key; the error names the key and says what is wrong.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), crate::error::McError> {
        let bad = |reason: &str| {
            crate::error::McError::invalid(format!("values.{key}"), reason.to_string())
        };
        if key == "queue.priority-order" {
            self.priority_order = PriorityOrder::parse(value).map_err(|e| bad(&e))?;
            return Ok(());
        }
        let n: u64 = value
            .trim()
            .parse()
            .map_err(|_| bad("must be a non-negative integer"))?;
        match key {
            "jobs.max-running" => self.max_running_jobs = n as usize,
            "store.steps-per-minute" => {
                self.store_steps_per_minute = u32::try_from(n).map_err(|_| bad("too large"))?
            }
            "store.snapshots-in-flight" => {
                self.store_snapshots_in_flight = u32::try_from(n).map_err(|_| bad("too large"))?
            }
            "store.metadata-steps-per-minute" => {
                self.store_metadata_steps_per_minute =
                    u32::try_from(n).map_err(|_| bad("too large"))?
            }
            _ => {
                return Err(crate::error::McError::invalid(
                    format!("values.{key}"),
                    "unknown configuration key",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step;

    #[test]
    fn steps_per_minute_wait_for_the_oldest_to_age_out() {
        let mut s = LimitState {
            limits: Limits {
                store_steps_per_minute: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let create = AtomicStep::Create(step::Create {
            rg: 1,
            store: 4,
            members: vec![],
            regions: vec![],
            campaign: false,
        });
        assert!(s.admit(1, &create, 1_000).is_ok());
        assert!(s.admit(2, &create, 2_000).is_ok());
        assert_eq!(s.admit(3, &create, 3_000), Err(61_000));
        assert!(s.admit(3, &create, 61_000).is_ok());
        // Another store is not affected, nor is a leader step.
        assert!(
            s.admit(
                3,
                &AtomicStep::Create(step::Create {
                    rg: 1,
                    store: 5,
                    members: vec![],
                    regions: vec![],
                    campaign: false,
                }),
                3_000
            )
            .is_ok()
        );
    }

    #[test]
    fn metadata_steps_have_their_own_limit() {
        let mut s = LimitState {
            limits: Limits {
                store_steps_per_minute: 1,
                store_metadata_steps_per_minute: 3,
                ..Default::default()
            },
            ..Default::default()
        };
        let seeded = |rg| {
            AtomicStep::Create(step::Create {
                rg,
                store: 4,
                members: vec![4, 5, 6],
                regions: vec![],
                campaign: false,
            })
        };
        // The data step uses up its own limit; new RGs' seeded replicas still go out.
        assert!(
            s.admit(
                1,
                &AtomicStep::AddLearner(step::AddLearner { rg: 9, store: 4 }),
                0
            )
            .is_ok()
        );
        assert!(s.admit(2, &AtomicStep::destroy(9, 4), 0).is_err());
        for rg in 1..=3 {
            assert!(s.admit(rg, &seeded(rg), 10).is_ok(), "seeded replica {rg}");
        }
        assert_eq!(s.admit(4, &seeded(4), 20), Err(60_010));
        // A leader step is not counted per store.
        let create = AtomicStep::CreateRegion(step::CreateRegion {
            rg: 1,
            region: crate::jobs::plan::NewRegion {
                id: 1,
                object: 1,
                start: vec![],
                end: vec![],
            },
        });
        assert!(s.admit(5, &create, 20).is_ok());
    }

    #[test]
    fn a_freed_slot_goes_to_the_most_urgent_class_then_the_oldest() {
        let mut s = LimitState {
            limits: Limits {
                max_running_jobs: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(s.may_start(1, Priority::Balance));
        s.started(1);
        // Full: balance 2, DDL 3 and repair 4 queue.
        assert!(!s.may_start(2, Priority::Balance));
        assert!(!s.may_start(3, Priority::Ddl));
        assert!(!s.may_start(4, Priority::Repair));
        s.ended(1);
        assert!(!s.may_start(2, Priority::Balance), "the repair goes first");
        assert!(!s.may_start(3, Priority::Ddl));
        assert!(s.may_start(4, Priority::Repair));
        s.started(4);
        s.ended(4);
        assert!(!s.may_start(2, Priority::Balance));
        assert!(s.may_start(3, Priority::Ddl));
        s.started(3);
        s.ended(3);
        // A reordered queue: balance before DDL.
        s.limits.priority_order = PriorityOrder::parse("balance,admin,repair,ddl").unwrap();
        s.waiting.clear();
        assert!(s.may_start(2, Priority::Balance));
        s.started(2);
        assert!(!s.may_start(5, Priority::Admin));
        s.ended(5);
        assert!(s.waiting.is_empty(), "a cancelled job leaves the queue");
    }

    #[test]
    fn snapshots_in_flight_per_store() {
        let mut s = LimitState {
            limits: Limits {
                store_snapshots_in_flight: 1,
                store_steps_per_minute: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let add = |rg| AtomicStep::AddLearner(step::AddLearner { rg, store: 4 });
        assert!(s.admit(1, &add(1), 0).is_ok());
        assert_eq!(s.admit(2, &add(2), 0), Err(100));
        assert!(
            s.admit(1, &add(1), 50).is_ok(),
            "a retry of the same job is not a second snapshot"
        );
        s.finished(1, &add(1));
        assert!(s.admit(2, &add(2), 200).is_ok());
    }

    #[test]
    fn running_jobs_are_capped_and_overrides_apply_per_store() {
        let mut s = LimitState {
            limits: Limits {
                max_running_jobs: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(s.may_start(1, Priority::Admin));
        s.started(1);
        assert!(!s.may_start(2, Priority::Admin) && s.may_start(1, Priority::Admin));
        s.ended(1);
        assert!(s.may_start(2, Priority::Admin));
        s.limits.per_store.insert(4, (1, 0));
        let destroy = AtomicStep::destroy(1, 4);
        assert!(s.admit(2, &destroy, 0).is_ok());
        assert!(s.admit(2, &destroy, 1).is_err());
    }
}
