//! The PD-like baseline: PD's balance-region and balance-leader as its documentation describes
//! them, count-based — a region (an RG here) moves from the store with the highest region
//! count to the one with the lowest when they differ by more than a tolerance, the region
//! picked at random among the source's healthy ones; leaders likewise. No affinity: the
//! baseline also starts with one RG per object. Placement still keeps replicas on distinct
//! hosts (PD's default isolation). It runs through the same `Scheduler` trait as the MC's.

use std::sync::Mutex;

use mc_core::cluster::Role;
use mc_core::jobs::JobSpec;
use mc_core::jobs::queue::Priority;
use mc_core::placement;
use mc_core::schedule::{Ctx, Decision, Scheduler, up_store_counts};

use crate::rng::Rng;

pub struct PdBalanceRegion {
    rng: Mutex<Rng>,
}

pub struct PdBalanceLeader {
    rng: Mutex<Rng>,
}

impl PdBalanceRegion {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(Rng::new(seed ^ 0xBA1A)),
        }
    }
}

impl PdBalanceLeader {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(Rng::new(seed ^ 0x1EAD)),
        }
    }
}

impl Scheduler for PdBalanceRegion {
    fn name(&self) -> &'static str {
        "pd-balance-region"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn default_interval_ms(&self) -> u64 {
        5_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let counts = up_store_counts(view);
        let (Some((&src, &sn)), Some((&dst, &dn))) = (
            counts
                .iter()
                .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id))),
            counts.iter().min_by_key(|(id, n)| (**n, **id)),
        ) else {
            return vec![];
        };
        if sn < dn + 2 {
            return vec![];
        }
        let dst_loc = view.store(dst).map(placement::loc);
        let candidates: Vec<u64> = view
            .rgs
            .values()
            .filter(|rg| rg.members.contains_key(&src) && !rg.members.contains_key(&dst))
            .filter(|rg| !ctx.busy.contains(&rg.id) && ctx.healthy(rg.id) && !rg.offline)
            .filter(|rg| {
                // Distinct hosts only; zones are not weighed.
                rg.members.keys().filter(|s| **s != src).all(|s| {
                    view.store(*s).map(placement::loc).map(|l| l.host)
                        != dst_loc.as_ref().map(|d| d.host.clone())
                })
            })
            .map(|rg| rg.id)
            .collect();
        if candidates.is_empty() {
            return vec![];
        }
        let pick =
            candidates[self.rng.lock().expect("rng").below(candidates.len() as u64) as usize];
        vec![Decision::Propose {
            spec: JobSpec::MigrateReplica {
                rg: pick,
                from: src,
                to: dst,
            },
            reason: format!("pd balance-region: store {src} has {sn} regions, store {dst} {dn}"),
            scores: vec![
                ("source_count".into(), sn as f64),
                ("target_count".into(), dn as f64),
            ],
        }]
    }
}

impl Scheduler for PdBalanceLeader {
    fn name(&self) -> &'static str {
        "pd-balance-leader"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn default_interval_ms(&self) -> u64 {
        5_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let leaders = mc_core::schedule::up_leader_counts(view);
        let (Some((&src, &sn)), Some((&dst, &dn))) = (
            leaders
                .iter()
                .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id))),
            leaders.iter().min_by_key(|(id, n)| (**n, **id)),
        ) else {
            return vec![];
        };
        if sn < dn + 2 {
            return vec![];
        }
        let candidates: Vec<u64> = view
            .rgs
            .values()
            .filter(|rg| rg.leader == Some(src) && rg.members.get(&dst) == Some(&Role::Voter))
            .filter(|rg| !ctx.busy.contains(&rg.id))
            .map(|rg| rg.id)
            .collect();
        if candidates.is_empty() {
            return vec![];
        }
        let pick =
            candidates[self.rng.lock().expect("rng").below(candidates.len() as u64) as usize];
        vec![Decision::Propose {
            spec: JobSpec::TransferLeader { rg: pick, to: dst },
            reason: format!("pd balance-leader: store {src} leads {sn}, store {dst} {dn}"),
            scores: vec![],
        }]
    }
}

/// The schedulers a policy runs.
pub fn schedulers(policy: &str, seed: u64) -> Vec<Box<dyn Scheduler>> {
    match policy {
        "pd" => vec![
            Box::new(mc_core::schedule::replica_checker::ReplicaChecker),
            Box::new(PdBalanceRegion::new(seed)),
            Box::new(PdBalanceLeader::new(seed)),
        ],
        _ => mc_core::schedule::all(),
    }
}
