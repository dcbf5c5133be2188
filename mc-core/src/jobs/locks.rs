//! Hierarchical share/exclusive locks (database → table → RG → region), taken all at once
//! before a job's first step and released when it ends. One job changes an RG at a time;
//! region jobs share their RG and hold their regions exclusively. A refusal names the holder.
//!
//! The table lives in memory and is rebuilt from the catalog's unfinished jobs on recovery:
//! a job record says which locks it holds, so the catalog stays the only source of truth.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{JobId, ObjectId, RegionId, RgId, StoreId};
use crate::jobs::spec::JobSpec;

/// Ordered by level, so acquisition order is the hierarchy's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Database(ObjectId),
    Table(ObjectId),
    Store(StoreId),
    Rg(RgId),
    Region(RegionId),
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Database(id) => write!(f, "database/{id}"),
            Resource::Table(id) => write!(f, "table/{id}"),
            Resource::Store(id) => write!(f, "store/{id}"),
            Resource::Rg(id) => write!(f, "rg/{id}"),
            Resource::Region(id) => write!(f, "region/{id}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Shared,
    Exclusive,
}

pub type LockSet = Vec<(Resource, Mode)>;

/// The locks a job of this spec takes.
pub fn locks_for(spec: &JobSpec, region_rg: impl Fn(RegionId) -> Option<RgId>) -> LockSet {
    use JobSpec::*;
    use Mode::*;
    let mut set: LockSet = match spec {
        MigrateReplica { rg, .. }
        | AddReplica { rg, .. }
        | RemoveReplica { rg, .. }
        | PromoteReplica { rg, .. }
        | DemoteReplica { rg, .. }
        | OnlineReplica { rg, .. }
        | OfflineReplica { rg, .. }
        | TransferLeader { rg, .. }
        | DestroyReplica { rg, .. }
        | CreateRg { rg, .. }
        | OfflineRg { rg }
        | OnlineRg { rg }
        | DeleteRg { rg } => vec![(Resource::Rg(*rg), Exclusive)],
        SplitRg {
            rg,
            new_rg,
            regions,
        } => {
            let mut v = vec![
                (Resource::Rg(*rg), Exclusive),
                (Resource::Rg(*new_rg), Exclusive),
            ];
            v.extend(regions.iter().map(|r| (Resource::Region(*r), Exclusive)));
            v
        }
        MergeRg { source, target } => vec![
            (Resource::Rg(*source), Exclusive),
            (Resource::Rg(*target), Exclusive),
        ],
        CreateRegion { rg, region, .. } => vec![
            (Resource::Rg(*rg), Shared),
            (Resource::Region(*region), Exclusive),
        ],
        CreateRegions { rg, regions } => std::iter::once((Resource::Rg(*rg), Shared))
            .chain(regions.iter().map(|r| (Resource::Region(r.id), Exclusive)))
            .collect(),
        SplitRegion {
            region, new_region, ..
        } => {
            let mut v = vec![
                (Resource::Region(*region), Exclusive),
                (Resource::Region(*new_region), Exclusive),
            ];
            v.extend(region_rg(*region).map(|rg| (Resource::Rg(rg), Shared)));
            v
        }
        MergeRegion { left, right } => {
            let mut v = vec![
                (Resource::Region(*left), Exclusive),
                (Resource::Region(*right), Exclusive),
            ];
            v.extend(region_rg(*left).map(|rg| (Resource::Rg(rg), Shared)));
            v
        }
        DeleteRegion { region } => {
            let mut v = vec![(Resource::Region(*region), Exclusive)];
            v.extend(region_rg(*region).map(|rg| (Resource::Rg(rg), Shared)));
            v
        }
        // Children lock their RGs; the drain holds the store so two drains do not race.
        DrainStore { store, .. } => vec![(Resource::Store(*store), Exclusive)],
    };
    set.sort();
    set.dedup();
    set
}

#[derive(Debug, Default)]
struct Holders {
    exclusive: Option<JobId>,
    shared: BTreeSet<JobId>,
}

#[derive(Debug, Default)]
pub struct LockTable {
    held: BTreeMap<Resource, Holders>,
}

impl LockTable {
    /// Takes every lock of `set` for `job`, or none: the first conflicting resource and one
    /// job holding it otherwise.
    pub fn try_acquire(&mut self, job: JobId, set: &LockSet) -> Result<(), (Resource, JobId)> {
        for (resource, mode) in set {
            if let Some(h) = self.held.get(resource) {
                if let Some(x) = h.exclusive.filter(|x| *x != job) {
                    return Err((*resource, x));
                }
                if *mode == Mode::Exclusive
                    && let Some(s) = h.shared.iter().find(|s| **s != job)
                {
                    return Err((*resource, *s));
                }
            }
        }
        for (resource, mode) in set {
            let h = self.held.entry(*resource).or_default();
            match mode {
                Mode::Exclusive => h.exclusive = Some(job),
                Mode::Shared => {
                    h.shared.insert(job);
                }
            }
        }
        Ok(())
    }

    /// RGs some job holds a lock on (directly): schedulers leave them alone.
    pub fn locked_rgs(&self) -> std::collections::BTreeSet<RgId> {
        self.held
            .keys()
            .filter_map(|r| match r {
                Resource::Rg(rg) => Some(*rg),
                _ => None,
            })
            .collect()
    }

    /// RGs a job holds exclusively (a membership change, a split): a DDL call's regions
    /// (which share the RG) would wait for it.
    pub fn exclusive_rgs(&self) -> std::collections::BTreeSet<RgId> {
        self.held
            .iter()
            .filter(|(_, h)| h.exclusive.is_some())
            .filter_map(|(r, _)| match r {
                Resource::Rg(rg) => Some(*rg),
                _ => None,
            })
            .collect()
    }

    pub fn release(&mut self, job: JobId) {
        self.held.retain(|_, h| {
            if h.exclusive == Some(job) {
                h.exclusive = None;
            }
            h.shared.remove(&job);
            h.exclusive.is_some() || !h.shared.is_empty()
        });
    }

    pub fn exclusive_holder(&self, resource: Resource) -> Option<JobId> {
        self.held.get(&resource).and_then(|h| h.exclusive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mode::*;
    use Resource::*;

    #[test]
    fn conflicts_follow_share_and_exclusive() {
        let cases: &[(LockSet, LockSet, bool)] = &[
            (vec![(Rg(1), Exclusive)], vec![(Rg(1), Exclusive)], false),
            (vec![(Rg(1), Exclusive)], vec![(Rg(1), Shared)], false),
            (vec![(Rg(1), Shared)], vec![(Rg(1), Exclusive)], false),
            (vec![(Rg(1), Shared)], vec![(Rg(1), Shared)], true),
            (vec![(Rg(1), Exclusive)], vec![(Rg(2), Exclusive)], true),
            (
                vec![(Rg(1), Shared), (Region(5), Exclusive)],
                vec![(Rg(1), Shared), (Region(6), Exclusive)],
                true,
            ),
            (
                vec![(Rg(1), Shared), (Region(5), Exclusive)],
                vec![(Rg(1), Shared), (Region(5), Exclusive)],
                false,
            ),
        ];
        for (first, second, compatible) in cases {
            let mut table = LockTable::default();
            table.try_acquire(1, first).unwrap();
            assert_eq!(
                table.try_acquire(2, second).is_ok(),
                *compatible,
                "{first:?} then {second:?}"
            );
        }
    }

    #[test]
    fn acquisition_is_all_or_nothing_and_release_frees_everything() {
        let mut table = LockTable::default();
        table.try_acquire(1, &vec![(Rg(2), Exclusive)]).unwrap();
        assert_eq!(
            table.try_acquire(2, &vec![(Rg(1), Exclusive), (Rg(2), Exclusive)]),
            Err((Rg(2), 1))
        );
        assert_eq!(
            table.exclusive_holder(Rg(1)),
            None,
            "nothing of a refused set is held"
        );
        table.release(1);
        table
            .try_acquire(2, &vec![(Rg(1), Exclusive), (Rg(2), Exclusive)])
            .unwrap();
        table.release(2);
        assert!(table.held.is_empty());
    }

    #[test]
    fn region_jobs_share_their_rg_and_replica_jobs_take_it() {
        let rg_of = |_| Some(1);
        let split = locks_for(
            &JobSpec::SplitRegion {
                region: 10,
                at: b"m".to_vec(),
                new_region: 12,
            },
            rg_of,
        );
        let delete = locks_for(&JobSpec::DeleteRegion { region: 11 }, rg_of);
        let migrate = locks_for(
            &JobSpec::MigrateReplica {
                rg: 1,
                from: 1,
                to: 4,
            },
            rg_of,
        );
        let mut table = LockTable::default();
        table.try_acquire(1, &split).unwrap();
        table.try_acquire(2, &delete).unwrap();
        assert_eq!(table.try_acquire(3, &migrate), Err((Rg(1), 1)));
    }
}
