//! Region and RG-shape steps. Each is one Raft command proposed on the RG's leader and
//! applied by every replica (`rg::state_machine`); only metadata changes, data stays in place.

use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;

use proto::v1::{
    CreateRegionStep, DeleteRegionStep, MergeRegionStep, MergeRgStep, SplitRegionStep, SplitRgStep,
};

use super::replica_steps::{leader, raft_error};
use super::{Done, region_proto};
use crate::error::{Result, StoreError};
use crate::kv::rejection_to_error;
use crate::rg::types::{RegionMeta, RgCommand};
use crate::store::Store;

async fn propose(store: &Arc<Store>, rg: u64, cmd: RgCommand) -> Result<Done> {
    propose_at(store, rg, cmd).await.map(|(done, _)| done)
}

/// As `propose`, with the log index the command was applied at.
async fn propose_at(store: &Arc<Store>, rg: u64, cmd: RgCommand) -> Result<(Done, u64)> {
    let replica = leader(store, rg)?;
    let written = replica
        .raft
        .client_write(cmd)
        .await
        .map_err(|e| raft_error(rg, &replica.raft, e))?;
    let index = written.log_id().index();
    let response = written.response().clone();
    if let Some(rejection) = response.rejected {
        return Err(rejection_to_error(rejection));
    }
    let target_rg = rg;
    Ok((
        Done {
            regions: response
                .regions
                .iter()
                .map(|r| region_proto(target_rg, r))
                .collect(),
        },
        index,
    ))
}

fn epoch_version(epoch: &Option<proto::v1::RegionEpoch>, field: &'static str) -> Result<u64> {
    epoch
        .as_ref()
        .map(|e| e.version)
        .ok_or(StoreError::InvalidArgument {
            field,
            reason: "missing".into(),
        })
}

/// Regions one CreateRegion step may create: enough for a table with its indexes pre-split,
/// small enough that one Raft entry stays well under the message limit.
pub const MAX_REGIONS_PER_STEP: usize = 4_096;

fn region_meta(region: proto::v1::RegionDescriptor, field: &'static str) -> Result<RegionMeta> {
    let range = region.range.unwrap_or_default();
    if region.region_id == 0 {
        return Err(StoreError::InvalidArgument {
            field,
            reason: "region_id must be set".into(),
        });
    }
    if !range.end.is_empty() && range.end <= range.start {
        return Err(StoreError::InvalidArgument {
            field,
            reason: format!("region {}: end must be after start", region.region_id),
        });
    }
    Ok(RegionMeta {
        id: region.region_id,
        object_id: region.object_id,
        start: range.start,
        end: range.end,
        version: region.epoch.map(|e| e.version).unwrap_or(1).max(1),
    })
}

/// One region (`region`) as one command, or `region` and `regions` together as one
/// all-or-none command.
pub async fn create_region(store: &Arc<Store>, rg: u64, step: CreateRegionStep) -> Result<Done> {
    let count = step.regions.len() + usize::from(step.region.is_some());
    if count > MAX_REGIONS_PER_STEP {
        return Err(StoreError::InvalidArgument {
            field: "create_region.regions",
            reason: format!("{count} regions; at most {MAX_REGIONS_PER_STEP} per step"),
        });
    }
    let mut regions = Vec::with_capacity(step.regions.len() + 1);
    if let Some(region) = step.region {
        regions.push(region_meta(region, "create_region.region")?);
    }
    for region in step.regions {
        regions.push(region_meta(region, "create_region.regions")?);
    }
    match regions.len() {
        0 => Err(StoreError::InvalidArgument {
            field: "create_region.region",
            reason: "missing".into(),
        }),
        1 => {
            let region = regions.pop().expect("one");
            propose(store, rg, RgCommand::CreateRegion { region }).await
        }
        _ => propose(store, rg, RgCommand::CreateRegions { regions }).await,
    }
}

pub async fn split_region(store: &Arc<Store>, rg: u64, step: SplitRegionStep) -> Result<Done> {
    if step.split_key.is_empty() || step.new_region_id == 0 || step.region_id == 0 {
        return Err(StoreError::InvalidArgument {
            field: "split_region",
            reason: "region_id, split_key and new_region_id must be set".into(),
        });
    }
    let expected_version = epoch_version(&step.expected_epoch, "split_region.expected_epoch")?;
    propose(
        store,
        rg,
        RgCommand::SplitRegion {
            region_id: step.region_id,
            split_key: step.split_key,
            new_region_id: step.new_region_id,
            expected_version,
        },
    )
    .await
}

pub async fn merge_region(store: &Arc<Store>, rg: u64, step: MergeRegionStep) -> Result<Done> {
    let left_version = epoch_version(&step.left_epoch, "merge_region.left_epoch")?;
    let right_version = epoch_version(&step.right_epoch, "merge_region.right_epoch")?;
    propose(
        store,
        rg,
        RgCommand::MergeRegion {
            left_id: step.left_region_id,
            right_id: step.right_region_id,
            left_version,
            right_version,
        },
    )
    .await
}

pub async fn delete_region(store: &Arc<Store>, rg: u64, step: DeleteRegionStep) -> Result<Done> {
    let expected_version = epoch_version(&step.expected_epoch, "delete_region.expected_epoch")?;
    propose(
        store,
        rg,
        RgCommand::DeleteRegion {
            region_id: step.region_id,
            expected_version,
            delete_data: step.delete_data,
        },
    )
    .await
}

pub async fn split_rg(store: &Arc<Store>, rg: u64, step: SplitRgStep) -> Result<Done> {
    if step.new_rg_id == 0 || step.region_ids.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "split_rg",
            reason: "new_rg_id and region_ids must be set".into(),
        });
    }
    if store.replica(step.new_rg_id).is_some() {
        return Err(StoreError::RgExists(step.new_rg_id));
    }
    let new_rg = step.new_rg_id;
    let mut done = propose(
        store,
        rg,
        RgCommand::SplitRg {
            new_rg_id: new_rg,
            region_ids: step.region_ids,
        },
    )
    .await?;
    for region in &mut done.regions {
        region.rg_id = new_rg;
    }
    Ok(done)
}

pub async fn merge_rg(store: &Arc<Store>, rg: u64, step: MergeRgStep) -> Result<Done> {
    if step.source_rg_id == 0 || step.source_rg_id == rg {
        return Err(StoreError::InvalidArgument {
            field: "merge_rg.source_rg_id",
            reason: "must name another RG".into(),
        });
    }
    let source = store
        .replica(step.source_rg_id)
        .ok_or(StoreError::RgNotFound(step.source_rg_id))?;
    store.touch(&source);
    if !source.is_offline() {
        return Err(StoreError::Failed(format!(
            "source RG {} must be offline before a merge",
            step.source_rg_id
        )));
    }
    // A repeat after the merge applied here: the source holds no regions any more, and a
    // second entry would only be one more thing for lagging members to apply.
    let left = store
        .engine
        .scan_meta::<RegionMeta>(&crate::engine::keys::region_prefix(step.source_rg_id))?;
    if left.is_empty() {
        snapshot_past_merge(store, rg, None).await?;
        return Ok(Done { regions: vec![] });
    }
    let (done, index) = propose_at(
        store,
        rg,
        if step.expected_members.is_empty() {
            RgCommand::MergeRg {
                source_rg_id: step.source_rg_id,
                source_applied_index: step.source_applied_index,
            }
        } else {
            RgCommand::MergeRgChecked {
                source_rg_id: step.source_rg_id,
                source_applied_index: step.source_applied_index,
                members: step.expected_members,
            }
        },
    )
    .await?;
    snapshot_past_merge(store, rg, Some(index)).await?;
    Ok(done)
}

/// Waits until the target leader's snapshot covers the merge entry (`index`; the last applied
/// one for a repeat), so a replica the MC adds after this step gets the merged regions in a
/// snapshot instead of replaying the merge without a source (the apply fails there, and the
/// replica stops for good). openraft ignores a trigger while a build runs, so this triggers
/// again after each build that ends short. Retryable when the step's deadline passes: a repeat
/// finds the source empty and only waits again.
async fn snapshot_past_merge(store: &Arc<Store>, rg: u64, index: Option<u64>) -> Result<()> {
    let replica = leader(store, rg)?;
    let index = index.unwrap_or_else(|| {
        replica
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .map_or(0, |l| l.index())
    });
    crate::store::snapshot_covering(&replica.raft, rg, index).await
}
