//! What a job does, as persisted in the catalog and named on the wire. Serde-tagged with
//! stable names: adding a variant is fine, renaming one is a schema migration. Every job type
//! of `proto::job_types` has exactly one variant (a test checks it). Below the job engine, so
//! the logs that record proposed jobs need not know how jobs run; what a spec plans and does to
//! the view is in `jobs::spec`.

use proto::v1::{JobType, job_spec};
use serde::{Deserialize, Serialize};

use crate::cluster::effect::NewRegion;
use crate::error::{McError, Result};
use crate::ids::{ObjectId, RegionId, RgId, StoreId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    MigrateReplica {
        rg: RgId,
        from: StoreId,
        to: StoreId,
    },
    AddReplica {
        rg: RgId,
        store: StoreId,
        voter: bool,
    },
    RemoveReplica {
        rg: RgId,
        store: StoreId,
    },
    PromoteReplica {
        rg: RgId,
        store: StoreId,
    },
    DemoteReplica {
        rg: RgId,
        store: StoreId,
    },
    OnlineReplica {
        rg: RgId,
        store: StoreId,
    },
    OfflineReplica {
        rg: RgId,
        store: StoreId,
    },
    TransferLeader {
        rg: RgId,
        to: StoreId,
    },
    DestroyReplica {
        rg: RgId,
        store: StoreId,
    },
    CreateRg {
        rg: RgId,
        stores: Vec<StoreId>,
        leader: Option<StoreId>,
        /// Seeded with the RG on every member (a DDL call's regions): no Raft command.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regions: Vec<NewRegion>,
    },
    SplitRg {
        rg: RgId,
        new_rg: RgId,
        regions: Vec<RegionId>,
    },
    MergeRg {
        source: RgId,
        target: RgId,
    },
    OfflineRg {
        rg: RgId,
    },
    OnlineRg {
        rg: RgId,
    },
    DeleteRg {
        rg: RgId,
    },
    CreateRegion {
        rg: RgId,
        region: RegionId,
        object: ObjectId,
        start: Vec<u8>,
        end: Vec<u8>,
    },
    SplitRegion {
        region: RegionId,
        at: Vec<u8>,
        new_region: RegionId,
    },
    MergeRegion {
        left: RegionId,
        right: RegionId,
    },
    DeleteRegion {
        region: RegionId,
    },
    DrainStore {
        store: StoreId,
        max_parallel: u32,
    },
    /// A DDL call's regions for an RG that exists: one step, one Raft command.
    CreateRegions {
        rg: RgId,
        regions: Vec<NewRegion>,
    },
}

/// Ids a submission allocates before its plan is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewId {
    Rg,
    Region,
}

impl JobSpec {
    pub fn job_type(&self) -> JobType {
        match self {
            JobSpec::MigrateReplica { .. } => JobType::MigrateReplica,
            JobSpec::AddReplica { .. } => JobType::AddReplica,
            JobSpec::RemoveReplica { .. } => JobType::RemoveReplica,
            JobSpec::PromoteReplica { .. } => JobType::PromoteReplica,
            JobSpec::DemoteReplica { .. } => JobType::DemoteReplica,
            JobSpec::OnlineReplica { .. } => JobType::OnlineReplica,
            JobSpec::OfflineReplica { .. } => JobType::OfflineReplica,
            JobSpec::TransferLeader { .. } => JobType::TransferLeader,
            JobSpec::DestroyReplica { .. } => JobType::DestroyReplica,
            JobSpec::CreateRg { .. } => JobType::CreateRg,
            JobSpec::SplitRg { .. } => JobType::SplitRg,
            JobSpec::MergeRg { .. } => JobType::MergeRg,
            JobSpec::OfflineRg { .. } => JobType::OfflineRg,
            JobSpec::OnlineRg { .. } => JobType::OnlineRg,
            JobSpec::DeleteRg { .. } => JobType::DeleteRg,
            JobSpec::CreateRegion { .. } => JobType::CreateRegion,
            JobSpec::SplitRegion { .. } => JobType::SplitRegion,
            JobSpec::MergeRegion { .. } => JobType::MergeRegion,
            JobSpec::DeleteRegion { .. } => JobType::DeleteRegion,
            JobSpec::DrainStore { .. } => JobType::DrainStore,
            JobSpec::CreateRegions { .. } => JobType::CreateRegions,
        }
    }

    /// The name used in errors, logs and the CLI ("MigrateReplica").
    pub fn type_name(&self) -> &'static str {
        proto::job_types::def(self.job_type())
            .map(|d| d.name)
            .unwrap_or("Unknown")
    }

    /// The wire spec, with the ids a submission needs allocated by `alloc`. Field names in
    /// errors are the proto's (`spec.migrate_replica.to_store_id`).
    pub fn from_proto(
        spec: &proto::v1::JobSpec,
        alloc: &mut dyn FnMut(NewId) -> u64,
    ) -> Result<Self> {
        use job_spec::Spec as S;
        let spec = spec
            .spec
            .as_ref()
            .ok_or_else(|| McError::invalid("spec", "exactly one job type must be set"))?;
        Ok(match spec {
            S::MigrateReplica(s) => JobSpec::MigrateReplica {
                rg: s.rg_id,
                from: s.from_store_id,
                to: s.to_store_id,
            },
            S::AddReplica(s) => JobSpec::AddReplica {
                rg: s.rg_id,
                store: s.store_id,
                voter: s.role() != proto::v1::ReplicaRole::Learner,
            },
            S::RemoveReplica(s) => JobSpec::RemoveReplica {
                rg: s.rg_id,
                store: s.store_id,
            },
            S::PromoteReplica(s) => JobSpec::PromoteReplica {
                rg: s.rg_id,
                store: s.store_id,
            },
            S::DemoteReplica(s) => JobSpec::DemoteReplica {
                rg: s.rg_id,
                store: s.store_id,
            },
            S::OnlineReplica(s) => JobSpec::OnlineReplica {
                rg: s.rg_id,
                store: s.store_id,
            },
            S::OfflineReplica(s) => JobSpec::OfflineReplica {
                rg: s.rg_id,
                store: s.store_id,
            },
            S::TransferLeader(s) => JobSpec::TransferLeader {
                rg: s.rg_id,
                to: s.to_store_id,
            },
            S::DestroyReplica(s) => JobSpec::DestroyReplica {
                rg: s.rg_id,
                store: s.store_id,
            },
            S::CreateRg(s) => {
                if !s.regions.is_empty() {
                    return Err(McError::invalid(
                        "spec.create_rg.regions",
                        "set by DDL calls only; create regions with create_region",
                    ));
                }
                JobSpec::CreateRg {
                    rg: alloc(NewId::Rg),
                    stores: s.store_ids.clone(),
                    leader: (s.leader_store_id != 0).then_some(s.leader_store_id),
                    regions: vec![],
                }
            }
            S::CreateRegions(_) => {
                return Err(McError::invalid(
                    "spec.create_regions",
                    "submitted by DDL calls only; create one region with create_region",
                ));
            }
            S::SplitRg(s) => JobSpec::SplitRg {
                rg: s.rg_id,
                new_rg: alloc(NewId::Rg),
                regions: s.region_ids.clone(),
            },
            S::MergeRg(s) => JobSpec::MergeRg {
                source: s.source_rg_id,
                target: s.target_rg_id,
            },
            S::OfflineRg(s) => JobSpec::OfflineRg { rg: s.rg_id },
            S::OnlineRg(s) => JobSpec::OnlineRg { rg: s.rg_id },
            S::DeleteRg(s) => JobSpec::DeleteRg { rg: s.rg_id },
            S::CreateRegion(s) => {
                let range = s
                    .range
                    .clone()
                    .ok_or_else(|| McError::invalid("spec.create_region.range", "missing"))?;
                JobSpec::CreateRegion {
                    rg: s.rg_id,
                    region: alloc(NewId::Region),
                    object: s.object_id,
                    start: range.start,
                    end: range.end,
                }
            }
            S::SplitRegion(s) => JobSpec::SplitRegion {
                region: s.region_id,
                at: s.split_key.clone(),
                new_region: alloc(NewId::Region),
            },
            S::MergeRegion(s) => JobSpec::MergeRegion {
                left: s.left_region_id,
                right: s.right_region_id,
            },
            S::DeleteRegion(s) => JobSpec::DeleteRegion {
                region: s.region_id,
            },
            S::DrainStore(s) => JobSpec::DrainStore {
                store: s.store_id,
                max_parallel: s.max_parallel,
            },
        })
    }
}

impl JobSpec {
    /// The wire form, for GetJob and ListJobs.
    pub fn to_proto(&self) -> proto::v1::JobSpec {
        use job_spec::Spec as S;
        use proto::v1 as pb;
        let spec = match self.clone() {
            JobSpec::MigrateReplica { rg, from, to } => S::MigrateReplica(pb::MigrateReplicaSpec {
                rg_id: rg,
                from_store_id: from,
                to_store_id: to,
            }),
            JobSpec::AddReplica { rg, store, voter } => S::AddReplica(pb::AddReplicaSpec {
                rg_id: rg,
                store_id: store,
                role: if voter {
                    pb::ReplicaRole::Voter
                } else {
                    pb::ReplicaRole::Learner
                } as i32,
            }),
            JobSpec::RemoveReplica { rg, store } => S::RemoveReplica(pb::RemoveReplicaSpec {
                rg_id: rg,
                store_id: store,
            }),
            JobSpec::PromoteReplica { rg, store } => S::PromoteReplica(pb::PromoteReplicaSpec {
                rg_id: rg,
                store_id: store,
            }),
            JobSpec::DemoteReplica { rg, store } => S::DemoteReplica(pb::DemoteReplicaSpec {
                rg_id: rg,
                store_id: store,
            }),
            JobSpec::OnlineReplica { rg, store } => S::OnlineReplica(pb::OnlineReplicaSpec {
                rg_id: rg,
                store_id: store,
            }),
            JobSpec::OfflineReplica { rg, store } => S::OfflineReplica(pb::OfflineReplicaSpec {
                rg_id: rg,
                store_id: store,
            }),
            JobSpec::TransferLeader { rg, to } => S::TransferLeader(pb::TransferLeaderSpec {
                rg_id: rg,
                to_store_id: to,
            }),
            JobSpec::DestroyReplica { rg, store } => S::DestroyReplica(pb::DestroyReplicaSpec {
                rg_id: rg,
                store_id: store,
            }),
            JobSpec::CreateRg {
                rg,
                stores,
                leader,
                regions,
            } => S::CreateRg(pb::CreateRgSpec {
                replica_count: stores.len() as u32,
                store_ids: stores,
                leader_store_id: leader.unwrap_or(0),
                rg_id: rg,
                regions: regions.into_iter().map(|r| region_spec(rg, r)).collect(),
            }),
            JobSpec::CreateRegions { rg, regions } => S::CreateRegions(pb::CreateRegionsSpec {
                rg_id: rg,
                regions: regions.into_iter().map(|r| region_spec(rg, r)).collect(),
            }),
            JobSpec::SplitRg {
                rg,
                new_rg,
                regions,
            } => S::SplitRg(pb::SplitRgSpec {
                rg_id: rg,
                region_ids: regions,
                new_rg_id: new_rg,
            }),
            JobSpec::MergeRg { source, target } => S::MergeRg(pb::MergeRgSpec {
                source_rg_id: source,
                target_rg_id: target,
            }),
            JobSpec::OfflineRg { rg } => S::OfflineRg(pb::OfflineRgSpec { rg_id: rg }),
            JobSpec::OnlineRg { rg } => S::OnlineRg(pb::OnlineRgSpec { rg_id: rg }),
            JobSpec::DeleteRg { rg } => S::DeleteRg(pb::DeleteRgSpec { rg_id: rg }),
            JobSpec::CreateRegion {
                rg,
                region,
                object,
                start,
                end,
            } => S::CreateRegion(pb::CreateRegionSpec {
                rg_id: rg,
                object_id: object,
                range: Some(pb::KeyRange { start, end }),
                region_id: region,
            }),
            JobSpec::SplitRegion {
                region,
                at,
                new_region,
            } => S::SplitRegion(pb::SplitRegionSpec {
                region_id: region,
                split_key: at,
                new_region_id: new_region,
            }),
            JobSpec::MergeRegion { left, right } => S::MergeRegion(pb::MergeRegionSpec {
                left_region_id: left,
                right_region_id: right,
            }),
            JobSpec::DeleteRegion { region } => {
                S::DeleteRegion(pb::DeleteRegionSpec { region_id: region })
            }
            JobSpec::DrainStore {
                store,
                max_parallel,
            } => S::DrainStore(pb::DrainStoreSpec {
                store_id: store,
                max_parallel,
            }),
        };
        pb::JobSpec { spec: Some(spec) }
    }
}

fn region_spec(rg: RgId, r: NewRegion) -> proto::v1::CreateRegionSpec {
    proto::v1::CreateRegionSpec {
        rg_id: rg,
        object_id: r.object,
        range: Some(proto::v1::KeyRange {
            start: r.start,
            end: r.end,
        }),
        region_id: r.id,
    }
}
