//! Failure domains and placement. A store's location comes from its labels: zone > rack >
//! host. The replicas of one RG must be on distinct hosts, and should spread over zones (then
//! racks) when there are enough. A candidate store is scored against the RG's current members:
//! first by the failure domain it adds (a new zone beats a new rack beats a new host), then by
//! how full it is relative to its capacity.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Where a store is, and how loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreLoc {
    pub id: u64,
    pub zone: String,
    pub rack: String,
    pub host: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
}

impl StoreLoc {
    /// From labels; a missing label counts as its own domain named after the store, so
    /// unlabelled stores are distinct hosts (as on a laptop) but share no zone.
    pub fn from_labels(
        id: u64,
        labels: &BTreeMap<String, String>,
        capacity: u64,
        used: u64,
    ) -> Self {
        let get = |k: &str| {
            labels
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("store-{id}"))
        };
        Self {
            id,
            zone: get("zone"),
            rack: get("rack"),
            host: get("host"),
            capacity_bytes: capacity,
            used_bytes: used,
        }
    }

    fn usage(&self) -> f64 {
        if self.capacity_bytes == 0 {
            1.0
        } else {
            self.used_bytes as f64 / self.capacity_bytes as f64
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("stores {a} and {b} are on the same host `{host}`")]
    SameHost { a: u64, b: u64, host: String },
    #[error("{replicas} replicas share {zones} zone(s) while {available} are available")]
    ZonesNotSpread {
        replicas: usize,
        zones: usize,
        available: usize,
    },
}

/// Checks an RG's replica set: distinct hosts always; spread over as many zones as the
/// cluster (`all`) offers, up to one per replica.
pub fn check(replicas: &[&StoreLoc], all: &[StoreLoc]) -> Result<(), Violation> {
    for (i, a) in replicas.iter().enumerate() {
        if let Some(b) = replicas[i + 1..].iter().find(|b| b.host == a.host) {
            return Err(Violation::SameHost {
                a: a.id,
                b: b.id,
                host: a.host.clone(),
            });
        }
    }
    let zones: BTreeSet<&str> = replicas.iter().map(|s| s.zone.as_str()).collect();
    let available = all
        .iter()
        .map(|s| s.zone.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    if zones.len() < replicas.len().min(available) {
        return Err(Violation::ZonesNotSpread {
            replicas: replicas.len(),
            zones: zones.len(),
            available,
        });
    }
    Ok(())
}

/// How good `candidate` is as a new member next to `members`; None when it shares a host
/// with one (never allowed). Higher is better: 3 for a new zone, 2 for a new rack, 1 for a
/// new host only, minus its fullness (0..1) to break ties toward emptier stores.
pub fn score(candidate: &StoreLoc, members: &[&StoreLoc]) -> Option<f64> {
    if members
        .iter()
        .any(|m| m.host == candidate.host || m.id == candidate.id)
    {
        return None;
    }
    let domain = if members.iter().all(|m| m.zone != candidate.zone) {
        3.0
    } else if members.iter().all(|m| m.rack != candidate.rack) {
        2.0
    } else {
        1.0
    };
    Some(domain - candidate.usage().min(1.0))
}

/// The best candidate for a new replica, or None; ties go to the lower store id, so the
/// choice is the same on every run.
pub fn pick<'a>(candidates: &'a [StoreLoc], members: &[&StoreLoc]) -> Option<&'a StoreLoc> {
    candidates
        .iter()
        .filter_map(|c| score(c, members).map(|s| (s, c)))
        .max_by(|(sa, a), (sb, b)| sa.total_cmp(sb).then(b.id.cmp(&a.id)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: u64, zone: &str, rack: &str, host: &str, used: u64) -> StoreLoc {
        StoreLoc {
            id,
            zone: zone.into(),
            rack: rack.into(),
            host: host.into(),
            capacity_bytes: 100,
            used_bytes: used,
        }
    }

    #[test]
    fn a_new_zone_beats_a_new_rack_beats_an_emptier_store() {
        let members = [store(1, "z1", "r1", "h1", 10)];
        let m: Vec<&StoreLoc> = members.iter().collect();
        let cands = [
            store(2, "z1", "r1", "h1", 0),  // same host: never
            store(3, "z1", "r1", "h3", 0),  // new host
            store(4, "z1", "r2", "h4", 50), // new rack
            store(5, "z2", "r9", "h5", 90), // new zone, nearly full
        ];
        assert_eq!(score(&cands[0], &m), None);
        assert_eq!(pick(&cands, &m).unwrap().id, 5);
        assert_eq!(pick(&cands[..3], &m).unwrap().id, 4);
        assert_eq!(pick(&cands[..1], &m), None);
    }

    #[test]
    fn checks_name_the_violation() {
        let all = [
            store(1, "z1", "r1", "h1", 0),
            store(2, "z1", "r1", "h1", 0),
            store(3, "z2", "r2", "h3", 0),
        ];
        assert_eq!(
            check(&[&all[0], &all[1]], &all).unwrap_err(),
            Violation::SameHost {
                a: 1,
                b: 2,
                host: "h1".into()
            }
        );
        let same_zone = store(4, "z1", "r5", "h4", 0);
        assert!(matches!(
            check(&[&all[0], &same_zone], &all),
            Err(Violation::ZonesNotSpread {
                zones: 1,
                available: 2,
                ..
            })
        ));
        assert!(check(&[&all[0], &all[2]], &all).is_ok());
    }

    /// Random clusters and random member sets: picking replicas one by one never puts two on
    /// one host, and always spreads over as many zones as exist (up to the replica count).
    #[test]
    fn placement_never_puts_two_replicas_on_one_host() {
        let mut x: u64 = 42;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for _ in 0..2_000 {
            let zones = 1 + next(4);
            let stores: Vec<StoreLoc> = (1..=3 + next(12))
                .map(|id| {
                    let z = next(zones);
                    let r = next(3);
                    // Few hosts: several stores often share one.
                    let h = next(6);
                    store(
                        id,
                        &format!("z{z}"),
                        &format!("z{z}r{r}"),
                        &format!("z{z}r{r}h{h}"),
                        next(100),
                    )
                })
                .collect();
            let mut chosen: Vec<&StoreLoc> = Vec::new();
            for _ in 0..3 {
                match pick(&stores, &chosen) {
                    Some(s) => chosen.push(s),
                    None => break,
                }
            }
            let hosts: BTreeSet<&str> = chosen.iter().map(|s| s.host.as_str()).collect();
            assert_eq!(hosts.len(), chosen.len(), "two replicas on one host");
            let distinct_hosts = stores
                .iter()
                .map(|s| &s.host)
                .collect::<BTreeSet<_>>()
                .len();
            assert_eq!(
                chosen.len(),
                3.min(distinct_hosts),
                "a free host was left unused"
            );
            if chosen.len() == 3 {
                check(&chosen, &stores).unwrap();
            }
        }
    }
}
