//! A run's report held against the scenario's expectations.

use super::*;

/// The scenario's expectations that the report does not meet.
pub(super) fn check(s: &Scenario, r: &Report, m: &Model) -> Vec<String> {
    let mut failed = Vec::new();
    let e = &s.expect;
    let f = &r.final_sample;
    if let Some(x) = e.max_final_imbalance
        && f.replicas.max_over_mean > x
    {
        failed.push(format!(
            "final replica max/mean {} > {x}",
            f.replicas.max_over_mean
        ));
    }
    if let Some(x) = e.max_moves
        && r.work.replica_adds > x
    {
        failed.push(format!("{} moves > {x}", r.work.replica_adds));
    }
    if let Some(x) = e.min_moves
        && r.work.replica_adds < x
    {
        failed.push(format!("{} moves < {x}", r.work.replica_adds));
    }
    if e.fully_replicated {
        let short = m
            .view
            .rgs
            .values()
            .filter(|rg| rg.voters().filter(|v| m.alive(*v)).count() < m.replicas as usize)
            .count();
        if short > 0 {
            failed.push(format!("{short} RGs short of replicas at the end"));
        }
    }
    if let Some(x) = e.min_affinity
        && f.affinity_together < x
    {
        failed.push(format!(
            "affinity groups together {} < {x}",
            f.affinity_together
        ));
    }
    if let Some(x) = e.max_final_load_imbalance
        && f.load.max_over_mean > x
    {
        failed.push(format!(
            "final traffic max/mean {} > {x}",
            f.load.max_over_mean
        ));
    }
    if let Some(x) = e.min_splits
        && r.work.splits < x
    {
        failed.push(format!("{} splits < {x}", r.work.splits));
    }
    if let Some(x) = e.max_final_region_mib {
        let largest = m
            .view
            .regions
            .values()
            .map(|r| r.size_bytes)
            .max()
            .unwrap_or(0);
        if largest > x << 20 {
            failed.push(format!("largest region {} MiB > {x} MiB", largest >> 20));
        }
    }
    let counts = mc_core::placement::replica_counts(&m.view);
    for s in &e.empty_stores {
        let n = counts.get(s).copied().unwrap_or(0);
        if n > 0 {
            failed.push(format!("store {s} still holds {n} replicas"));
        }
    }
    if let Some(x) = e.max_below_quorum
        && r.safety.peak_below_quorum_regions > x
    {
        failed.push(format!(
            "peak regions below quorum {} > {x}",
            r.safety.peak_below_quorum_regions
        ));
    }
    failed
}
