//! What each job type plans and does to the view, by its spec (the spec itself is
//! `crate::job_spec`).

pub use crate::job_spec::{JobSpec, NewId};

use crate::cluster::ClusterView;
use crate::error::Result;
use crate::ids::{RgId, StoreId};
use crate::jobs::plan::{NewRegion, Plan};
use crate::jobs::types as t;

impl JobSpec {
    /// The definition version a new job of this type records.
    pub fn definition_version(&self) -> u32 {
        match self {
            JobSpec::MigrateReplica { .. } => t::migrate_replica::VERSION,
            JobSpec::AddReplica { .. } => t::add_replica::VERSION,
            JobSpec::RemoveReplica { .. } => t::remove_replica::VERSION,
            JobSpec::PromoteReplica { .. } => t::promote_replica::VERSION,
            JobSpec::DemoteReplica { .. } => t::demote_replica::VERSION,
            JobSpec::OnlineReplica { .. } => t::online_replica::VERSION,
            JobSpec::OfflineReplica { .. } => t::offline_replica::VERSION,
            JobSpec::TransferLeader { .. } => t::transfer_leader::VERSION,
            JobSpec::DestroyReplica { .. } => t::destroy_replica::VERSION,
            JobSpec::CreateRg { .. } => t::create_rg::VERSION,
            JobSpec::SplitRg { .. } => t::split_rg::VERSION,
            JobSpec::MergeRg { .. } => t::merge_rg::VERSION,
            JobSpec::OfflineRg { .. } => t::offline_rg::VERSION,
            JobSpec::OnlineRg { .. } => t::online_rg::VERSION,
            JobSpec::DeleteRg { .. } => t::delete_rg::VERSION,
            JobSpec::CreateRegion { .. } => t::create_region::VERSION,
            JobSpec::SplitRegion { .. } => t::split_region::VERSION,
            JobSpec::MergeRegion { .. } => t::merge_region::VERSION,
            JobSpec::DeleteRegion { .. } => t::delete_region::VERSION,
            JobSpec::DrainStore { .. } => t::drain_store::VERSION,
            JobSpec::CreateRegions { .. } => t::create_regions::VERSION,
        }
    }

    /// Checks the job against the cluster and builds its steps. Nothing is persisted when
    /// this fails.
    /// `plan`, with the route index at hand for checks that would otherwise pass over every
    /// region of the view (the DDL path's bulk region creation).
    pub fn plan_indexed(
        &self,
        view: &ClusterView,
        index: &crate::cluster::routes::RouteIndex,
    ) -> Result<Plan> {
        match self {
            JobSpec::CreateRegions { rg, regions } => {
                t::create_regions::plan_indexed(view, index, *rg, regions)
            }
            _ => self.plan(view),
        }
    }

    pub fn plan(&self, view: &ClusterView) -> Result<Plan> {
        match self {
            JobSpec::MigrateReplica { rg, from, to } => {
                t::migrate_replica::plan(view, *rg, *from, *to)
            }
            JobSpec::AddReplica { rg, store, voter } => {
                t::add_replica::plan(view, *rg, *store, *voter)
            }
            JobSpec::RemoveReplica { rg, store } => t::remove_replica::plan(view, *rg, *store),
            JobSpec::PromoteReplica { rg, store } => t::promote_replica::plan(view, *rg, *store),
            JobSpec::DemoteReplica { rg, store } => t::demote_replica::plan(view, *rg, *store),
            JobSpec::OnlineReplica { rg, store } => t::online_replica::plan(view, *rg, *store),
            JobSpec::OfflineReplica { rg, store } => t::offline_replica::plan(view, *rg, *store),
            JobSpec::TransferLeader { rg, to } => t::transfer_leader::plan(view, *rg, *to),
            JobSpec::DestroyReplica { rg, store } => t::destroy_replica::plan(view, *rg, *store),
            JobSpec::CreateRg {
                rg,
                stores,
                leader,
                regions,
            } => t::create_rg::plan(view, *rg, stores, *leader, regions),
            JobSpec::SplitRg {
                rg,
                new_rg,
                regions,
            } => t::split_rg::plan(view, *rg, *new_rg, regions),
            JobSpec::MergeRg { source, target } => t::merge_rg::plan(view, *source, *target),
            JobSpec::OfflineRg { rg } => t::offline_rg::plan(view, *rg),
            JobSpec::OnlineRg { rg } => t::online_rg::plan(view, *rg),
            JobSpec::DeleteRg { rg } => t::delete_rg::plan(view, *rg),
            JobSpec::CreateRegion {
                rg,
                region,
                object,
                start,
                end,
            } => t::create_region::plan(
                view,
                *rg,
                NewRegion {
                    id: *region,
                    object: *object,
                    start: start.clone(),
                    end: end.clone(),
                },
            ),
            JobSpec::SplitRegion {
                region,
                at,
                new_region,
            } => t::split_region::plan(view, *region, at.clone(), *new_region),
            JobSpec::MergeRegion { left, right } => t::merge_region::plan(view, *left, *right),
            JobSpec::DeleteRegion { region } => t::delete_region::plan(view, *region),
            JobSpec::DrainStore { store, .. } => t::drain_store::plan(view, *store),
            JobSpec::CreateRegions { rg, regions } => t::create_regions::plan(view, *rg, regions),
        }
    }

    /// What the job does to the cluster's shape once it succeeds (each type declares it).
    pub fn effect(&self) -> crate::jobs::effect::Effect {
        use crate::jobs::effect::Effect;
        match self {
            JobSpec::MigrateReplica { rg, from, to } => t::migrate_replica::effect(*rg, *from, *to),
            JobSpec::AddReplica { rg, store, voter } => t::add_replica::effect(*rg, *store, *voter),
            JobSpec::RemoveReplica { rg, store } => t::remove_replica::effect(*rg, *store),
            JobSpec::TransferLeader { rg, to } => t::transfer_leader::effect(*rg, *to),
            JobSpec::CreateRg {
                rg,
                stores,
                leader,
                regions,
            } => t::create_rg::effect(*rg, stores, *leader, regions),
            JobSpec::CreateRegions { rg, regions } => t::create_regions::effect(*rg, regions),
            JobSpec::SplitRg {
                rg,
                new_rg,
                regions,
            } => t::split_rg::effect(*rg, *new_rg, regions),
            JobSpec::MergeRg { source, target } => t::merge_rg::effect(*source, *target),
            JobSpec::OfflineRg { rg } => t::offline_rg::effect(*rg),
            JobSpec::OnlineRg { rg } => t::online_rg::effect(*rg),
            JobSpec::DeleteRg { rg } => t::delete_rg::effect(*rg),
            JobSpec::CreateRegion {
                rg,
                region,
                object,
                start,
                end,
            } => t::create_region::effect(
                *rg,
                &NewRegion {
                    id: *region,
                    object: *object,
                    start: start.clone(),
                    end: end.clone(),
                },
            ),
            JobSpec::SplitRegion {
                region,
                at,
                new_region,
            } => t::split_region::effect(*region, at, *new_region),
            JobSpec::MergeRegion { left, right } => t::merge_region::effect(*left, *right),
            JobSpec::DeleteRegion { region } => t::delete_region::effect(*region),
            // Role changes, a replica going offline or online, destroying a replica that is no
            // member, and a drain (its children carry the moves) leave the shape as it is.
            JobSpec::PromoteReplica { .. }
            | JobSpec::DemoteReplica { .. }
            | JobSpec::OnlineReplica { .. }
            | JobSpec::OfflineReplica { .. }
            | JobSpec::DestroyReplica { .. }
            | JobSpec::DrainStore { .. } => Effect::None,
        }
    }

    /// RGs and stores the job is about, for ListJobs filters.
    pub fn touches(&self, plan: &Plan) -> (Vec<RgId>, Vec<StoreId>) {
        let mut rgs: Vec<RgId> = plan.steps.iter().filter_map(|s| s.step.rg()).collect();
        let mut stores: Vec<StoreId> = plan
            .steps
            .iter()
            .filter_map(|s| match s.step.target() {
                crate::jobs::plan::Target::Store(st) => Some(st),
                _ => None,
            })
            .collect();
        if let JobSpec::MigrateReplica { from, to, .. } = self {
            stores.extend([*from, *to]);
        }
        if let JobSpec::DrainStore { store, .. } = self {
            stores.push(*store);
        }
        rgs.sort();
        rgs.dedup();
        stores.sort();
        stores.dedup();
        (rgs, stores)
    }
}
