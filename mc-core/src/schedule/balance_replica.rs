//! Evens out replica counts, weighted by capacity, over the Up stores. Moves one RG replica
//! (MigrateReplica: learner first, so the RG never drops below its voters) from the fullest
//! store to the emptiest while their weighted counts differ by at least `min-diff`. Whole RGs move, so the affinity groups inside
//! an RG stay together. A move never lowers the RG's failure-domain spread; among the movable
//! RGs the smallest goes first (fewest bytes to copy).

use std::collections::{BTreeSet, HashMap};

use super::{Ctx, Decision, Scheduler};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
use crate::placement::loc;

pub struct BalanceReplica;

impl Scheduler for BalanceReplica {
    fn name(&self) -> &'static str {
        "balance-replica"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn same_inputs_same_result(&self) -> bool {
        true
    }

    fn default_interval_ms(&self) -> u64 {
        5_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let mut counts = ctx.replica_counts();
        if counts.len() < 2 {
            return vec![];
        }
        let mean = counts.values().sum::<usize>() as f64 / counts.len() as f64;
        // Capacity weights: a store twice the mean capacity should hold twice the replicas.
        // Unknown capacities (0) weigh all stores alike.
        let caps: Vec<u64> = counts
            .keys()
            .map(|s| view.store(*s).map(|x| x.capacity_bytes).unwrap_or(0))
            .collect();
        let known = caps.iter().all(|c| *c > 0);
        // Summed as floats: capacities come from stores, and many large ones overflow a u64.
        let mean_cap = caps.iter().map(|c| *c as f64).sum::<f64>() / caps.len() as f64;
        let weight = |s: u64| -> f64 {
            match view.store(s) {
                Some(x) if known => x.capacity_bytes as f64 / mean_cap,
                _ => 1.0,
            }
        };
        let at: HashMap<u64, topology::StoreLoc> =
            view.stores.values().map(|s| (s.id, loc(s))).collect();
        let mut used = BTreeSet::new();
        let mut ranked = HashMap::new();
        let mut out = Vec::new();
        while out.len() < ctx.config.max_proposals as usize {
            // Pairs of the 16 fullest and 16 emptiest stores by gap, widest first: when the
            // widest cannot move anything (say the only store of a zone), the next one may.
            let mut order: Vec<(f64, u64)> = counts
                .iter()
                .map(|(s, n)| (*n as f64 / weight(*s), *s))
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let fullest = order.iter().take(16);
            let emptiest: Vec<_> = order.iter().rev().take(16).collect();
            let mut pairs: Vec<(f64, u64, u64)> = fullest
                .flat_map(|(_, s)| {
                    let (weight, counts) = (&weight, &counts);
                    emptiest.iter().filter_map(move |(_, d)| {
                        let (sn, dn) = (counts[s] as f64, counts[d] as f64);
                        let (ws, wd) = (weight(*s), weight(*d));
                        let gap = sn / ws - dn / wd;
                        // Worth it only if the move does not just turn the gap around.
                        let after = (sn - 1.0) / ws - (dn + 1.0) / wd;
                        (sn > 0.0 && after > -1e-9).then_some((gap, *s, *d))
                    })
                })
                .filter(|(gap, _, _)| *gap >= ctx.config.balance_replica_min_diff as f64 - 1e-9)
                .collect();
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            if pairs.is_empty() {
                if out.is_empty() {
                    let (&src, &src_n) = counts
                        .iter()
                        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
                        .expect("two stores");
                    let (&dst, &dst_n) = counts
                        .iter()
                        .min_by_key(|(id, n)| (**n, **id))
                        .expect("two stores");
                    out.push(Decision::Skip {
                        subject: "cluster".into(),
                        reason: format!(
                            "replicas balanced: store {src} has {src_n}, store {dst} has {dst_n} \
                             (gap {} < {})",
                            src_n - dst_n,
                            ctx.config.balance_replica_min_diff
                        ),
                    });
                }
                break;
            }
            // First from a sample of each source's RGs; only when no pair can move one of
            // those, from all of them (so a run that proposes nothing has looked at every
            // candidate, and the round may skip it until its inputs change).
            let pick = [Some(sample_start(ctx)), None]
                .into_iter()
                .find_map(|sample| {
                    pairs.iter().find_map(|(_, src, dst)| {
                        movable(ctx, &at, &mut ranked, *src, *dst, &used, sample)
                            .map(|m| (*src, *dst, m))
                    })
                });
            let Some((src, dst, (bytes, rg, from_score, to_score))) = pick else {
                if out.is_empty() {
                    let (_, src, dst) = pairs[0];
                    out.push(Decision::Skip {
                        subject: format!("store/{src}"),
                        reason: format!(
                            "store {src} has {} replicas and store {dst} {}, but no RG can move \
                             between unbalanced stores (busy, unhealthy, already there or a worse \
                             placement)",
                            counts[&src], counts[&dst]
                        ),
                    });
                }
                break;
            };
            let (src_n, dst_n) = (counts[&src], counts[&dst]);
            used.insert(rg);
            *counts.get_mut(&src).expect("counted") -= 1;
            *counts.get_mut(&dst).expect("counted") += 1;
            out.push(Decision::Propose {
                spec: JobSpec::MigrateReplica {
                    rg,
                    from: src,
                    to: dst,
                },
                reason: format!(
                    "store {src} holds {src_n} replicas, store {dst} {dst_n} (mean {mean:.1}); \
                     moving RG {rg} ({bytes} bytes)"
                ),
                scores: vec![
                    ("source_replicas".into(), src_n as f64),
                    ("target_replicas".into(), dst_n as f64),
                    ("mean_replicas".into(), mean),
                    ("rg_bytes".into(), bytes as f64),
                    ("source_domain_score".into(), from_score),
                    ("target_domain_score".into(), to_score),
                ],
            });
        }
        out
    }
}

/// Each source store's RGs (sampled or not) as (traffic, bytes, id), coldest then smallest.
type Ranked = HashMap<(u64, bool), Vec<(u64, u64, u64)>>;

/// RGs of the source store tried for one pair of stores (see `movable`).
const CANDIDATES: usize = 256;

/// RGs of the source store ranked first (see `run`): a store holds thousands, and ranking
/// them all by traffic and size for every move cost more than the rest of a run.
const SAMPLE: usize = 1024;

/// Where this run's sample of each store's RGs starts: another place each run (virtual time
/// in mcsim, so the same seed runs the same).
fn sample_start(ctx: &Ctx) -> u64 {
    let top = ctx.view.rgs.keys().next_back().copied().unwrap_or(0);
    let mut x = ctx.now_ms.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % (top + 1)
}

/// The RG to move from `src` to `dst`: (bytes, id, source and target domain scores) of the
/// coldest, then smallest, one whose move keeps its failure-domain spread. `ranked` caches each
/// source store's RGs ordered coldest and smallest first, so the placement checks run only
/// until one fits instead of on every RG of the store.
fn movable(
    ctx: &Ctx,
    at: &HashMap<u64, topology::StoreLoc>,
    ranked: &mut Ranked,
    src: u64,
    dst: u64,
    used: &BTreeSet<u64>,
    sample: Option<u64>,
) -> Option<(u64, u64, f64, f64)> {
    let view = ctx.view;
    let dst_loc = at.get(&dst)?;
    let src_loc = at.get(&src)?;
    // A store with no more RGs than a sample is ranked whole at once.
    let sample = sample.filter(|_| view.replica_count(src) > SAMPLE);
    let order = ranked.entry((src, sample.is_some())).or_insert_with(|| {
        let rgs: Box<dyn Iterator<Item = u64>> = match sample {
            Some(start) => Box::new(view.replicas_on_from(src, start).take(SAMPLE)),
            None => Box::new(view.replicas_on(src)),
        };
        let mut order: Vec<(u64, u64, u64)> = rgs
            .map(|rg| {
                let t = view.rg_totals(rg);
                (t.load.total(), t.bytes, rg)
            })
            .collect();
        order.sort_unstable();
        order
    });
    // The coldest, then the smallest: hot RGs are placed by the hot-region scheduler, and
    // moving them for a count would undo its work. Only the first CANDIDATES are tried for
    // one pair of stores: a pair that fits none of them (the target adds no failure domain)
    // gives way to the next pair instead of costing a check of every RG of the source.
    // RGs that cannot move at all (busy, already moved this run) do not count.
    let free = order
        .iter()
        .filter(|(_, _, id)| !ctx.busy.contains(id) && !used.contains(id));
    free.take(CANDIDATES).find_map(|(_, bytes, id)| {
        let rg = view.rg(*id)?;
        if rg.members.contains_key(&dst)
            || !rg.heard
            || rg.offline
            || !ctx.healthy(*id)
            || !ctx.allowed(*id, dst)
        {
            return None;
        }
        let rest: Vec<&topology::StoreLoc> = rg
            .members
            .keys()
            .filter(|s| **s != src)
            .filter_map(|s| at.get(s))
            .collect();
        let from = topology::placement::score(src_loc, &rest)?;
        let to = topology::placement::score(dst_loc, &rest)?;
        (to >= from).then_some((*bytes, *id, from, to))
    })
}
