//! A store's report is evidence, not truth. RG members, regions and ranges change only through
//! the MC's own job outcomes; a heartbeat may move what only the store can know (who leads, the
//! term, sizes, keys, load, split keys), and only within bounds. What disagrees changes nothing
//! and is held against the store that said it, so an operator learns which store lies.
//!
//! Two kinds of disagreement. Some no honest store ever sends (a term thousands ahead, a size
//! past any disk, an RG id the MC never handed out): they count at once. Others are what an
//! honest leader says while a job is between its step and its outcome (a learner the MC has not
//! recorded yet, a region a split just made, a new RG before its job's effect): they count only
//! when the same store keeps saying them about the same RG for longer than `grace_ms`, which no
//! in-flight job explains. A store with `suspect_after` lies inside `window_ms` is treated as
//! unhealthy (Down for placement and repair) until it has told no lie for `forgive_ms`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use crate::ids::{RegionId, RgId, StoreId};

/// Elections between two heartbeats the MC takes in; past it a term is a claim, not a count.
/// Each election waits out a timeout, so this is hours of failed elections.
pub const MAX_TERM_STEP: u64 = 10_000;
/// Membership changes between two heartbeats: each is a job step the MC ran.
pub const MAX_CONF_VER_STEP: u64 = 10_000;
/// A region larger than this is no region a store holds (regions split at megabytes).
pub const MAX_REGION_BYTES: u64 = 1 << 40;
pub const MAX_REGION_KEYS: u64 = 1 << 40;
/// Bytes per second one region, or one store, can serve; larger rates are claims.
pub const MAX_RATE: u64 = 1 << 40;
/// Soft disagreements kept per store: an honest store has a few jobs in flight, never this
/// many; past it a new one counts at once (and the table stays bounded).
const MAX_PENDING_PER_STORE: usize = 4_096;
/// One alert event per store and kind of lie in this long (alerts are catalog writes).
const EVENT_EVERY_MS: u64 = 10_000;

#[derive(Clone, Debug)]
pub struct EvidenceConfig {
    /// Largest capacity a store may report (`--max-store-capacity-bytes`).
    pub max_store_capacity_bytes: u64,
    /// How long a report may disagree in a way an in-flight job explains.
    pub grace_ms: u64,
    pub suspect_after: usize,
    pub window_ms: u64,
    pub forgive_ms: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            max_store_capacity_bytes: 1 << 56,
            grace_ms: 60_000,
            suspect_after: 10,
            window_ms: 60_000,
            forgive_ms: 10 * 60_000,
        }
    }
}

/// What a report said that the catalog does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disagreement {
    UnknownRg {
        rg: RgId,
    },
    LearnerLeads {
        rg: RgId,
    },
    Members {
        rg: RgId,
        reported: Vec<StoreId>,
        known: Vec<StoreId>,
    },
    UnknownRegion {
        rg: RgId,
        region: RegionId,
    },
    RegionOfAnotherRg {
        rg: RgId,
        region: RegionId,
        owner: RgId,
    },
    MissingRegions {
        rg: RgId,
        count: usize,
    },
    Range {
        rg: RgId,
        region: RegionId,
    },
    TermJump {
        rg: RgId,
        known: u64,
        reported: u64,
    },
    /// Claimed to lead at `claimed`; the RG's members say `leader` leads at `term`.
    LeaderClaim {
        rg: RgId,
        claimed: u64,
        leader: StoreId,
        term: u64,
    },
    ConfVerJump {
        rg: RgId,
        known: u64,
        reported: u64,
    },
    Number {
        field: &'static str,
        value: u64,
        max: u64,
    },
}

impl Disagreement {
    /// No honest store sends it, whatever job is in flight.
    pub fn is_lie_at_once(&self) -> bool {
        matches!(
            self,
            Disagreement::TermJump { .. }
                | Disagreement::ConfVerJump { .. }
                | Disagreement::Number { .. }
                | Disagreement::LeaderClaim { .. }
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Disagreement::UnknownRg { .. } => "unknown_rg",
            Disagreement::LearnerLeads { .. } => "learner_leads",
            Disagreement::Members { .. } => "members",
            Disagreement::UnknownRegion { .. } => "unknown_region",
            Disagreement::RegionOfAnotherRg { .. } => "region_of_another_rg",
            Disagreement::MissingRegions { .. } => "missing_regions",
            Disagreement::Range { .. } => "range",
            Disagreement::TermJump { .. } => "term_jump",
            Disagreement::LeaderClaim { .. } => "leader_claim",
            Disagreement::ConfVerJump { .. } => "conf_ver_jump",
            Disagreement::Number { .. } => "number",
        }
    }
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::UnknownRg { rg } => write!(f, "reports RG {rg}, which no job made"),
            Disagreement::LearnerLeads { rg } => {
                write!(f, "claims to lead RG {rg}, where it is a learner")
            }
            Disagreement::Members {
                rg,
                reported,
                known,
            } => write!(
                f,
                "reports members {} of RG {rg}; the jobs made {}",
                few(reported),
                few(known)
            ),
            Disagreement::UnknownRegion { rg, region } => {
                write!(f, "reports region {region} in RG {rg}, which no job made")
            }
            Disagreement::RegionOfAnotherRg { rg, region, owner } => write!(
                f,
                "reports region {region} in RG {rg}; it belongs to RG {owner}"
            ),
            Disagreement::MissingRegions { rg, count } => {
                write!(f, "leaves out {count} regions of RG {rg}")
            }
            Disagreement::Range { rg, region } => write!(
                f,
                "reports another range for region {region} of RG {rg} than the jobs made"
            ),
            Disagreement::TermJump {
                rg,
                known,
                reported,
            } => write!(
                f,
                "reports term {reported} for RG {rg}, {} past the known {known}",
                reported.saturating_sub(*known)
            ),
            Disagreement::LeaderClaim {
                rg,
                claimed,
                leader,
                term,
            } => write!(
                f,
                "claimed to lead RG {rg} at term {claimed}; its members say store {leader} leads \
                 at term {term}"
            ),
            Disagreement::ConfVerJump {
                rg,
                known,
                reported,
            } => write!(
                f,
                "reports membership version {reported} for RG {rg}, past the known {known}"
            ),
            Disagreement::Number { field, value, max } => {
                write!(f, "reports {field} = {value}, above the bound {max}")
            }
        }
    }
}

/// A list as text, its first eight items at most (a report's lists are as long as a liar
/// makes them).
fn few(ids: &[u64]) -> String {
    let shown: Vec<String> = ids.iter().take(8).map(u64::to_string).collect();
    match ids.len() {
        n if n > 8 => format!("[{}, … {} in all]", shown.join(", "), n),
        _ => format!("[{}]", shown.join(", ")),
    }
}

/// What the alerting side must tell operators about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceEvent {
    /// The store said something the catalog does not hold (one per kind per 10 s).
    Lied {
        store: StoreId,
        kind: &'static str,
        what: String,
    },
    /// Too many lies: treated as unhealthy.
    Suspect { store: StoreId, why: String },
    /// No lie for `forgive_ms`: trusted again.
    Trusted { store: StoreId },
}

/// One store's record of disagreements.
#[derive(Clone, Debug, Default)]
pub struct StoreRecord {
    pub lies: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub last: Option<String>,
    pub last_ms: u64,
    pub suspect_since: Option<u64>,
    recent: VecDeque<u64>,
    last_event: HashMap<&'static str, u64>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    stores: HashMap<StoreId, StoreRecord>,
    /// Per store, per RG: since when it has disagreed in a way a job in flight explains.
    pending: HashMap<StoreId, HashMap<RgId, u64>>,
    events: Vec<EvidenceEvent>,
}

impl Ledger {
    /// Counts a lie against `store` now.
    pub fn lie(&mut self, config: &EvidenceConfig, store: StoreId, what: &Disagreement, now: u64) {
        let record = self.stores.entry(store).or_default();
        record.lies += 1;
        *record.by_kind.entry(what.kind()).or_default() += 1;
        let text = what.to_string();
        record.last = Some(text.clone());
        record.last_ms = now;
        record.recent.push_back(now);
        while record
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > config.window_ms)
            || record.recent.len() > config.suspect_after.max(1)
        {
            record.recent.pop_front();
        }
        let last_event = record.last_event.entry(what.kind()).or_insert(0);
        if *last_event == 0 || now.saturating_sub(*last_event) >= EVENT_EVERY_MS {
            *last_event = now.max(1);
            // Logged at the alerts' rate: a liar's flood must not become a log flood.
            tracing::warn!(store, lie = %text, "store report contradicts the catalog; ignored");
            self.events.push(EvidenceEvent::Lied {
                store,
                kind: what.kind(),
                what: text.clone(),
            });
        }
        if record.suspect_since.is_none() && record.recent.len() >= config.suspect_after {
            record.suspect_since = Some(now);
            let why = format!(
                "{} reports that contradict the catalog within {} s (last: {text})",
                record.recent.len(),
                config.window_ms / 1_000
            );
            self.events.push(EvidenceEvent::Suspect { store, why });
        }
    }

    /// A disagreement a job in flight may explain: counted once it has lasted `grace_ms`
    /// (then again every `grace_ms` while it lasts).
    pub fn disagree(
        &mut self,
        config: &EvidenceConfig,
        store: StoreId,
        rg: RgId,
        what: &Disagreement,
        now: u64,
    ) {
        if what.is_lie_at_once() {
            return self.lie(config, store, what, now);
        }
        let pending = self.pending.entry(store).or_default();
        let since = match pending.get(&rg) {
            Some(since) => *since,
            None if pending.len() >= MAX_PENDING_PER_STORE => {
                return self.lie(config, store, what, now);
            }
            None => {
                pending.insert(rg, now);
                now
            }
        };
        if now.saturating_sub(since) >= config.grace_ms {
            pending.insert(rg, now);
            self.lie(config, store, what, now);
        }
    }

    /// The store's report of `rg` agreed with the catalog.
    pub fn agree(&mut self, store: StoreId, rg: RgId) {
        if let Some(p) = self.pending.get_mut(&store) {
            p.remove(&rg);
        }
    }

    /// Why the store is not believed, while it is not.
    pub fn suspect(&self, store: StoreId) -> Option<String> {
        let record = self.stores.get(&store)?;
        record.suspect_since?;
        Some(format!(
            "its reports contradict the catalog ({} so far; last: {})",
            record.lies,
            record.last.as_deref().unwrap_or("?")
        ))
    }

    /// Forgives suspects that told no lie for `forgive_ms`; forgets pending disagreements
    /// of RGs nobody reported again for long (a liar's invented ids).
    pub fn tick(&mut self, config: &EvidenceConfig, now: u64) {
        for (store, record) in self.stores.iter_mut() {
            if record.suspect_since.is_some()
                && now.saturating_sub(record.last_ms) >= config.forgive_ms
            {
                record.suspect_since = None;
                record.recent.clear();
                self.events.push(EvidenceEvent::Trusted { store: *store });
            }
        }
        let stale = config.grace_ms.saturating_mul(4);
        for p in self.pending.values_mut() {
            p.retain(|_, since| now.saturating_sub(*since) < stale);
        }
        self.pending.retain(|_, p| !p.is_empty());
    }

    pub fn take_events(&mut self) -> Vec<EvidenceEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn record(&self, store: StoreId) -> Option<&StoreRecord> {
        self.stores.get(&store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EvidenceConfig {
        EvidenceConfig {
            grace_ms: 1_000,
            suspect_after: 3,
            window_ms: 10_000,
            forgive_ms: 60_000,
            ..Default::default()
        }
    }

    #[test]
    fn a_disagreement_a_job_explains_counts_only_when_it_lasts() {
        let (c, mut l) = (config(), Ledger::default());
        let what = Disagreement::UnknownRg { rg: 9 };
        l.disagree(&c, 3, 9, &what, 100);
        l.disagree(&c, 3, 9, &what, 900);
        assert!(l.record(3).is_none(), "within the grace: nothing counted");
        l.agree(3, 9);
        l.disagree(&c, 3, 9, &what, 1_200);
        assert!(l.record(3).is_none(), "agreement restarted the grace");
        l.disagree(&c, 3, 9, &what, 2_200);
        assert_eq!(l.record(3).unwrap().lies, 1);
        assert_eq!(
            l.take_events(),
            vec![EvidenceEvent::Lied {
                store: 3,
                kind: "unknown_rg",
                what: "reports RG 9, which no job made".into()
            }]
        );
    }

    #[test]
    fn lies_make_a_suspect_who_is_forgiven_after_a_quiet_spell() {
        let (c, mut l) = (config(), Ledger::default());
        let jump = Disagreement::TermJump {
            rg: 1,
            known: 5,
            reported: u64::MAX,
        };
        for t in 0..3 {
            l.disagree(&c, 2, 1, &jump, 1_000 + t);
        }
        assert!(l.suspect(2).is_some());
        let events = l.take_events();
        assert_eq!(
            events.len(),
            2,
            "one alert per kind per 10 s, then the suspicion"
        );
        assert!(matches!(
            &events[1],
            EvidenceEvent::Suspect { store: 2, .. }
        ));
        l.tick(&c, 30_000);
        assert!(l.suspect(2).is_some());
        l.tick(&c, 61_003);
        assert!(l.suspect(2).is_none());
        assert_eq!(l.take_events(), vec![EvidenceEvent::Trusted { store: 2 }]);
    }

    #[test]
    fn a_flood_of_invented_rgs_stays_bounded() {
        let (c, mut l) = (config(), Ledger::default());
        let n = 2 * MAX_PENDING_PER_STORE as u64;
        for rg in 0..n {
            l.disagree(&c, 4, rg, &Disagreement::UnknownRg { rg }, 5);
        }
        assert!(l.pending[&4].len() <= MAX_PENDING_PER_STORE);
        assert_eq!(l.record(4).unwrap().lies, n - MAX_PENDING_PER_STORE as u64);
        assert!(l.suspect(4).is_some());
        assert!(l.take_events().len() <= 3);
    }
}
