//! What a run measures, and the report it writes. Everything in `Report` is a function of the
//! scenario and the seed (no wall clock), rounded to fixed precision, so two runs give the same
//! JSON byte for byte and the same hash; wall-clock costs are kept apart in `Cost`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::Model;
use crate::rng::Rng;

/// Four decimals: enough to read, and no float noise in the bytes.
pub fn round(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10_000.0).round() / 10_000.0
    } else {
        0.0
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Spread {
    pub max_over_mean: f64,
    pub cv: f64,
}

fn spread(values: &[f64]) -> Spread {
    if values.is_empty() {
        return Spread::default();
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    if mean <= 0.0 {
        return Spread {
            max_over_mean: 1.0,
            cv: 0.0,
        };
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Spread {
        max_over_mean: round(max / mean),
        cv: round(var.sqrt() / mean),
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    pub t_secs: u64,
    pub replicas: Spread,
    pub leaders: Spread,
    pub bytes: Spread,
    pub load: Spread,
    pub under_replicated_regions: u64,
    pub below_quorum_regions: u64,
    pub snapshots_in_flight: u64,
    pub affinity_together: f64,
    pub multi_rg_txn_ratio: f64,
    pub multi_store_txn_ratio: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Work {
    pub jobs_by_type: BTreeMap<String, u64>,
    pub jobs_failed: u64,
    pub replica_adds: u64,
    pub replica_removes: u64,
    pub leader_transfers: u64,
    pub splits: u64,
    pub merges: u64,
    pub bytes_moved: u64,
    pub lower_bound_moves: u64,
    pub moves_over_lower_bound: f64,
    /// A replica added back to a store it was removed from earlier.
    pub redundant_moves: u64,
    pub thrash_score: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Safety {
    pub under_replicated_region_secs: u64,
    pub below_quorum_region_secs: u64,
    pub peak_below_quorum_regions: u64,
    /// Per store loss (kill or zone loss): seconds until every RG had its replicas again;
    /// none when the run ended first.
    pub rereplication_secs: Vec<Option<u64>>,
    pub peak_snapshots_per_store: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub policy: String,
    pub seed: u64,
    pub duration_secs: u64,
    pub stores: usize,
    pub rgs: usize,
    pub regions: usize,
    pub final_sample: Sample,
    /// First time after which replica max/mean stayed within the threshold; none if never.
    pub convergence_secs: Option<u64>,
    pub work: Work,
    pub safety: Safety,
    pub samples: Vec<Sample>,
    /// Expectations of the scenario that did not hold.
    pub failed_expectations: Vec<String>,
}

/// Wall-clock costs of a run: not part of the report's hash.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cost {
    pub wall_secs: f64,
    pub sim_over_wall: f64,
    pub peak_rss_mib: f64,
    pub scheduler_runs: u64,
    pub decisions: u64,
    pub scheduler_cpu_us_per_decision: f64,
}

/// Peak resident memory of this process (VmHWM), MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A sample of the model as it truly is (not as the MC sees it).
pub fn sample(
    m: &Model,
    t_secs: u64,
    snapshots: u64,
    txns: u32,
    co_access: f64,
    rng: &mut Rng,
    cumulative_tables: &[f64],
) -> Sample {
    let up: Vec<u64> = m
        .stores
        .values()
        .filter(|s| s.alive)
        .map(|s| s.id)
        // Balance is judged over the stores that take replicas: not draining, not retired.
        .filter(|s| {
            m.view
                .store(*s)
                .is_some_and(|x| x.state == mc_core::cluster::StoreState::Up)
        })
        .collect();
    let mut replicas: BTreeMap<u64, f64> = up.iter().map(|s| (*s, 0.0)).collect();
    let mut leaders = replicas.clone();
    let mut bytes = replicas.clone();
    let mut load = replicas.clone();
    let mut under = 0;
    let mut below = 0;
    for rg in m.view.rgs.values() {
        let size = m.view.rg_bytes(rg.id) as f64;
        for s in rg.members.keys() {
            if let Some(x) = replicas.get_mut(s) {
                *x += 1.0;
            }
            if let Some(x) = bytes.get_mut(s) {
                *x += size;
            }
        }
        if let Some(x) = rg.leader.and_then(|l| leaders.get_mut(&l)) {
            *x += 1.0;
        }
        if let Some(x) = rg.leader.and_then(|l| load.get_mut(&l)) {
            *x += m.view.rg_load(rg.id).total() as f64;
        }
        let voters: Vec<u64> = rg.voters().collect();
        let live = voters.iter().filter(|v| m.alive(**v)).count();
        let regions = rg.regions.len() as u64;
        if live < m.replicas as usize {
            under += regions;
        }
        if live <= voters.len() / 2 {
            below += regions;
        }
    }
    // Affinity: a group is together when all its regions share one store set and one leader.
    // Group root → the (store set, leader) pairs its regions are on.
    type Homes = BTreeSet<(Vec<u64>, Option<u64>)>;
    let mut groups: BTreeMap<u64, Homes> = BTreeMap::new();
    for r in m.view.regions.values() {
        let root = m.affinity.get(&r.object).copied().unwrap_or(r.object);
        if let Some(rg) = m.view.rg(r.rg) {
            let stores: Vec<u64> = rg.members.keys().copied().collect();
            groups.entry(root).or_default().insert((stores, rg.leader));
        }
    }
    let together =
        groups.values().filter(|g| g.len() == 1).count() as f64 / groups.len().max(1) as f64;
    // Transactions: a table's region plus each index's with probability `co_access`.
    let mut by_object: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in m.view.regions.values() {
        by_object.entry(r.object).or_default().push(r.id);
    }
    let (mut multi_rg, mut multi_store) = (0u32, 0u32);
    if !m.tables.is_empty() {
        for _ in 0..txns {
            let t = &m.tables[crate::rng::pick(cumulative_tables, rng)];
            let mut objects = vec![if t.partitions.is_empty() {
                t.table
            } else {
                t.partitions[rng.below(t.partitions.len() as u64) as usize]
            }];
            for i in &t.indexes {
                if rng.f64() < co_access {
                    objects.push(*i);
                }
            }
            let mut rgs = BTreeSet::new();
            let mut stores = BTreeSet::new();
            for o in objects {
                let Some(regions) = by_object.get(&o) else {
                    continue;
                };
                let r = regions[rng.below(regions.len() as u64) as usize];
                let rg = m.view.regions[&r].rg;
                rgs.insert(rg);
                if let Some(l) = m.view.rg(rg).and_then(|g| g.leader) {
                    stores.insert(l);
                }
            }
            multi_rg += (rgs.len() > 1) as u32;
            multi_store += (stores.len() > 1) as u32;
        }
    }
    let v = |m: &BTreeMap<u64, f64>| m.values().copied().collect::<Vec<_>>();
    Sample {
        t_secs,
        replicas: spread(&v(&replicas)),
        leaders: spread(&v(&leaders)),
        bytes: spread(&v(&bytes)),
        load: spread(&v(&load)),
        under_replicated_regions: under,
        below_quorum_regions: below,
        snapshots_in_flight: snapshots,
        affinity_together: round(together),
        multi_rg_txn_ratio: round(multi_rg as f64 / txns.max(1) as f64),
        multi_store_txn_ratio: round(multi_store as f64 / txns.max(1) as f64),
    }
}

/// The fixed summary `mcsim run` prints.
pub fn summary(r: &Report, hash: &str) -> String {
    let f = &r.final_sample;
    let rr: Vec<String> = r
        .safety
        .rereplication_secs
        .iter()
        .map(|x| x.map(|s| format!("{s}s")).unwrap_or_else(|| "never".into()))
        .collect();
    format!(
        "mcsim {scenario} policy={policy} seed={seed}: {stores} stores, {rgs} RGs, {regions} regions, {dur}s simulated\n\
         balance (end)   replicas max/mean {rm} (cv {rc}), leaders {lm}, bytes {bm}, load {ldm}\n\
         convergence     {conv}\n\
         work            {jobs} jobs ({failed} failed), {adds} replica adds, {removes} removes, {transfers} leader transfers, {splits} splits, {merges} merges, {moved} MiB moved\n\
         efficiency      moves/lower bound {mlb} (lower bound {lb}), redundant moves {red}, thrash {thrash}\n\
         safety          under-replicated {ur} region-s, below quorum {bq} region-s (peak {pbq} regions), re-replication [{rr}], peak snapshots/store {ps}\n\
         affinity        groups together {aff}, txns over >1 RG {mrg}, over >1 store {mst}\n\
         expectations    {exp}\n\
         report hash     {hash}\n",
        scenario = r.scenario,
        policy = r.policy,
        seed = r.seed,
        stores = r.stores,
        rgs = r.rgs,
        regions = r.regions,
        dur = r.duration_secs,
        rm = f.replicas.max_over_mean,
        rc = f.replicas.cv,
        lm = f.leaders.max_over_mean,
        bm = f.bytes.max_over_mean,
        ldm = f.load.max_over_mean,
        conv = r
            .convergence_secs
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "not within the run".into()),
        jobs = r.work.jobs_by_type.values().sum::<u64>(),
        failed = r.work.jobs_failed,
        adds = r.work.replica_adds,
        removes = r.work.replica_removes,
        transfers = r.work.leader_transfers,
        splits = r.work.splits,
        merges = r.work.merges,
        moved = r.work.bytes_moved >> 20,
        mlb = r.work.moves_over_lower_bound,
        lb = r.work.lower_bound_moves,
        red = r.work.redundant_moves,
        thrash = r.work.thrash_score,
        ur = r.safety.under_replicated_region_secs,
        bq = r.safety.below_quorum_region_secs,
        pbq = r.safety.peak_below_quorum_regions,
        rr = rr.join(", "),
        ps = r.safety.peak_snapshots_per_store,
        aff = f.affinity_together,
        mrg = f.multi_rg_txn_ratio,
        mst = f.multi_store_txn_ratio,
        exp = if r.failed_expectations.is_empty() {
            "all met".to_string()
        } else {
            r.failed_expectations.join("; ")
        },
    )
}

/// One SVG line chart of a series over time.
pub fn svg_chart(title: &str, points: &[(u64, f64)]) -> String {
    let (w, h, pad) = (640.0, 240.0, 40.0);
    let max_t = points.iter().map(|p| p.0).max().unwrap_or(1).max(1) as f64;
    let max_y = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9);
    let path: Vec<String> = points
        .iter()
        .map(|(t, y)| {
            format!(
                "{:.1},{:.1}",
                pad + (*t as f64 / max_t) * (w - 2.0 * pad),
                h - pad - (y / max_y) * (h - 2.0 * pad)
            )
        })
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{pad}\" y=\"20\">{title}</text>\n\
         <line x1=\"{pad}\" y1=\"{yb}\" x2=\"{xe}\" y2=\"{yb}\" stroke=\"black\"/>\n\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{yb}\" stroke=\"black\"/>\n\
         <text x=\"4\" y=\"{yt}\">{max_y:.2}</text>\n\
         <text x=\"{xe}\" y=\"{yl}\" text-anchor=\"end\">{max_t}s</text>\n\
         <polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"2\" points=\"{pts}\"/>\n\
         </svg>\n",
        yb = h - pad,
        xe = w - pad,
        yt = pad + 4.0,
        yl = h - pad + 16.0,
        pts = path.join(" "),
    )
}
