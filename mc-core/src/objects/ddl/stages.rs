//! The jobs each stage of a DDL request runs, read from the request's record and, for the
//! stages that delete, from the view as it is when the stage runs.

use std::collections::BTreeSet;

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::ids::{ObjectId, RgId};
use crate::jobs::JobSpec;
use crate::jobs::executor::StepExecutor;
use crate::objects::records::{DdlRecord, RequestKind};

use super::{Ddl, leader_counts, regions_of};

impl<S: CatalogStore, E: StepExecutor, C: Clock> Ddl<S, E, C> {
    /// The jobs of stage 0 or 1, with the suffix of their request ids.
    pub(in crate::objects) async fn stage(
        &self,
        rec: &DdlRecord,
        stage: u8,
    ) -> Vec<(String, JobSpec)> {
        let objects = self.objects.lock().await;
        match (rec.kind, stage) {
            // Each new RG with its regions seeded and a leader chosen here, so the RG serves
            // as soon as its job ends; then, per RG that exists, one command for its regions.
            (RequestKind::Create, 0) => {
                let leaders = self.cluster.read(leader_counts);
                rec.new_rgs
                    .iter()
                    .map(|n| {
                        let leader = n
                            .stores
                            .iter()
                            .min_by_key(|s| (leaders.get(s).copied().unwrap_or(0), **s))
                            .copied();
                        (
                            format!("rg:{}", n.rg),
                            JobSpec::CreateRg {
                                rg: n.rg,
                                stores: n.stores.clone(),
                                leader,
                                regions: regions_of(&objects, rec, n.rg),
                            },
                        )
                    })
                    .collect()
            }
            (RequestKind::Create, _) => {
                let fresh: BTreeSet<RgId> = rec.new_rgs.iter().map(|n| n.rg).collect();
                let rgs: BTreeSet<RgId> = rec
                    .objects
                    .iter()
                    .filter_map(|o| objects.records.get(o))
                    .filter(|r| !r.regions.is_empty())
                    .filter_map(|r| r.rg)
                    .filter(|rg| !fresh.contains(rg))
                    .collect();
                rgs.into_iter()
                    .map(|rg| {
                        (
                            format!("regions:{rg}"),
                            JobSpec::CreateRegions {
                                rg,
                                regions: regions_of(&objects, rec, rg),
                            },
                        )
                    })
                    .collect()
            }
            // The objects' regions as they are now, not as they were when the request started:
            // a split that was running then has made a right half since (the procedure runs
            // this stage again until none is left).
            (RequestKind::Drop | RequestKind::Truncate, 0) => {
                let set: BTreeSet<ObjectId> = rec.objects.iter().copied().collect();
                let fresh: BTreeSet<u64> = rec.replacements.iter().map(|r| r.new.id).collect();
                self.cluster.read(|view| {
                    view.regions
                        .values()
                        .filter(|r| set.contains(&r.object) && !fresh.contains(&r.id))
                        .map(|r| {
                            (
                                format!("delete-region:{}", r.id),
                                JobSpec::DeleteRegion { region: r.id },
                            )
                        })
                        .collect()
                })
            }
            // Read again at this stage: an RG that holds a region now (one the Drop did not
            // delete) is not the Drop's to delete.
            (RequestKind::Drop, _) => self.cluster.read(|view| {
                rec.delete_rgs
                    .iter()
                    .filter(|rg| view.rg(**rg).is_some_and(|info| info.regions.is_empty()))
                    .map(|rg| (format!("delete-rg:{rg}"), JobSpec::DeleteRg { rg: *rg }))
                    .collect()
            }),
            (RequestKind::Truncate, _) => rec
                .replacements
                .iter()
                .map(|r| {
                    (
                        format!("region:{}", r.new.id),
                        JobSpec::CreateRegion {
                            rg: r.rg,
                            region: r.new.id,
                            object: r.object,
                            start: r.new.start.clone(),
                            end: r.new.end.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}
