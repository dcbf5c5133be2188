//! Choosing stores for replicas: failure domains first (topology's score: a new zone beats a
//! new rack beats a new host; one host never holds two replicas of an RG), then the store
//! holding the fewest replicas, then the lower id, so the same view always gives the same
//! choice (the simulator depends on it).

use std::collections::{BTreeMap, HashMap};

use topology::StoreLoc;

use crate::cluster::{ClusterView, StoreInfo};
use crate::error::{McError, Result};
use crate::ids::StoreId;

/// A store's failure domain, from its labels. Fullness is left out (capacity 1, used 0), so
/// the score is the failure-domain level alone: 3 a new zone, 2 a new rack, 1 a new host.
pub fn loc(store: &StoreInfo) -> StoreLoc {
    StoreLoc::from_labels(store.id, &store.labels, 1, 0)
}

/// Replicas per store, counting every store of the view (zero for empty ones), from the
/// view's index.
pub fn replica_counts(view: &ClusterView) -> HashMap<StoreId, usize> {
    view.stores
        .keys()
        .map(|s| (*s, view.replica_count(*s)))
        .collect()
}

/// Whether the store carries every required label.
pub fn matches_labels(store: &StoreInfo, required: &BTreeMap<String, String>) -> bool {
    required.iter().all(|(k, v)| store.labels.get(k) == Some(v))
}

/// The best store for one more replica next to `members`, among Up stores carrying the
/// required labels and not in `exclude`; `counts` are the stores' replica counts (a caller
/// choosing several adds its own picks). The score is returned too, for the scheduling log.
pub fn best_store(
    view: &ClusterView,
    members: &[StoreId],
    exclude: &[StoreId],
    required: &BTreeMap<String, String>,
    counts: &HashMap<StoreId, usize>,
) -> Option<(StoreId, f64)> {
    let member_locs: Vec<StoreLoc> = members
        .iter()
        .filter_map(|m| view.store(*m))
        .map(loc)
        .collect();
    let member_refs: Vec<&StoreLoc> = member_locs.iter().collect();
    view.stores
        .values()
        .filter(|s| s.state.accepts_replicas())
        .filter(|s| !members.contains(&s.id) && !exclude.contains(&s.id))
        .filter(|s| matches_labels(s, required))
        .filter_map(|s| {
            let domain = topology::placement::score(&loc(s), &member_refs)?;
            let count = counts.get(&s.id).copied().unwrap_or(0);
            Some((s.id, domain, count))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)).then(b.0.cmp(&a.0)))
        .map(|(id, domain, _)| (id, domain))
}

/// `n` stores for a new RG. `counts` (from `replica_counts`) take in the choice, so the next
/// RG of the same call goes elsewhere. Fails naming what is missing when the cluster cannot
/// give them.
pub fn choose_stores(
    view: &ClusterView,
    n: usize,
    required: &BTreeMap<String, String>,
    counts: &mut HashMap<StoreId, usize>,
) -> Result<Vec<StoreId>> {
    let mut chosen = Vec::with_capacity(n);
    while chosen.len() < n {
        match best_store(view, &chosen, &[], required, counts) {
            Some((s, _)) => {
                *counts.entry(s).or_default() += 1;
                chosen.push(s);
            }
            None => {
                let usable = view
                    .stores
                    .values()
                    .filter(|s| s.state.accepts_replicas() && matches_labels(s, required))
                    .count();
                return Err(McError::FailedPrecondition {
                    subject: "placement".into(),
                    state: format!(
                        "{usable} Up stores on distinct hosts carry the required labels {required:?}"
                    ),
                    required: format!("{n} for the new RG's replicas"),
                });
            }
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{RgInfo, Role, StoreState};

    fn store(id: u64, host: &str, zone: &str) -> StoreInfo {
        StoreInfo {
            capacity_bytes: 0,
            id,
            address: String::new(),
            state: StoreState::Up,
            labels: [("host", host), ("zone", zone)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn spreads_over_zones_then_prefers_emptier_stores_and_never_shares_a_host() {
        let mut view = ClusterView::default();
        for (id, host, zone) in [
            (1, "h1", "z1"),
            (2, "h1", "z2"),
            (3, "h3", "z1"),
            (4, "h4", "z2"),
            (5, "h5", "z3"),
        ] {
            view.put_store(store(id, host, zone));
        }
        view.put_rg(RgInfo {
            id: 1,
            members: [(1, Role::Voter), (5, Role::Voter)].into_iter().collect(),
            ..Default::default()
        });
        let none = BTreeMap::new();
        let chosen = choose_stores(&view, 3, &none, &mut replica_counts(&view)).unwrap();
        // Three zones: z3's only store, then z1/z2 stores on distinct hosts, emptiest first.
        let zones: std::collections::BTreeSet<_> = chosen
            .iter()
            .map(|s| view.stores[s].labels["zone"].clone())
            .collect();
        assert_eq!(zones.len(), 3, "{chosen:?}");
        let hosts: std::collections::BTreeSet<_> = chosen
            .iter()
            .map(|s| view.stores[s].labels["host"].clone())
            .collect();
        assert_eq!(hosts.len(), 3, "{chosen:?}");
        assert!(
            !chosen.contains(&1),
            "store 1 is the fullest in its zone: {chosen:?}"
        );

        let z9: BTreeMap<String, String> = [("zone".to_string(), "z9".to_string())].into();
        match choose_stores(&view, 3, &z9, &mut replica_counts(&view)).unwrap_err() {
            McError::FailedPrecondition { subject, .. } => assert_eq!(subject, "placement"),
            e => panic!("{e}"),
        }
    }
}
