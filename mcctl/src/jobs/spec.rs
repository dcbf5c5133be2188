//! A job's spec from the command line: every job type's flags, checked before anything is sent.

use super::*;

pub(super) fn priority(p: &str) -> Result<u32, CliError> {
    match p {
        "admin" => Ok(1),
        "repair" => Ok(2),
        "ddl" => Ok(3),
        "balance" => Ok(4),
        other => Err(CliError::Usage(format!(
            "--priority: `{other}` is not admin, repair, ddl or balance"
        ))),
    }
}

pub(super) fn key(k: &str) -> Result<Vec<u8>, CliError> {
    match k.strip_prefix("0x") {
        Some(hex) if hex.len() % 2 == 0 => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| CliError::Usage(format!("--key: `{k}` is not hex"))),
        Some(_) => Err(CliError::Usage(format!(
            "--key: `{k}` has an odd number of hex digits"
        ))),
        None => Ok(k.as_bytes().to_vec()),
    }
}

pub(super) fn spec_of(cmd: &JobCmd) -> Result<Option<(job_spec::Spec, SubmitOpts)>, CliError> {
    use job_spec::Spec as S;
    Ok(Some(match cmd {
        JobCmd::Migrate { rg, from, to, opts } => (
            S::MigrateReplica(MigrateReplicaSpec {
                rg_id: *rg,
                from_store_id: *from,
                to_store_id: *to,
            }),
            opts.clone(),
        ),
        JobCmd::AddReplica {
            rg,
            store,
            learner,
            opts,
        } => (
            S::AddReplica(AddReplicaSpec {
                rg_id: *rg,
                store_id: *store,
                role: if *learner {
                    ReplicaRole::Learner
                } else {
                    ReplicaRole::Voter
                } as i32,
            }),
            opts.clone(),
        ),
        JobCmd::RemoveReplica { rg, store, opts } => (
            S::RemoveReplica(RemoveReplicaSpec {
                rg_id: *rg,
                store_id: *store,
            }),
            opts.clone(),
        ),
        JobCmd::TransferLeader { rg, to, opts } => (
            S::TransferLeader(TransferLeaderSpec {
                rg_id: *rg,
                to_store_id: *to,
            }),
            opts.clone(),
        ),
        JobCmd::SplitRegion {
            region,
            key: k,
            opts,
        } => (
            S::SplitRegion(SplitRegionSpec {
                region_id: *region,
                split_key: key(k)?,
                new_region_id: 0,
            }),
            opts.clone(),
        ),
        JobCmd::MergeRegion { left, right, opts } => (
            S::MergeRegion(MergeRegionSpec {
                left_region_id: *left,
                right_region_id: *right,
            }),
            opts.clone(),
        ),
        JobCmd::SplitRg { rg, regions, opts } => (
            S::SplitRg(SplitRgSpec {
                rg_id: *rg,
                region_ids: regions.clone(),
                new_rg_id: 0,
            }),
            opts.clone(),
        ),
        JobCmd::MergeRg {
            source,
            target,
            opts,
        } => (
            S::MergeRg(MergeRgSpec {
                source_rg_id: *source,
                target_rg_id: *target,
            }),
            opts.clone(),
        ),
        JobCmd::CreateRg {
            stores,
            leader,
            opts,
        } => (
            S::CreateRg(CreateRgSpec {
                store_ids: stores.clone(),
                leader_store_id: *leader,
                ..Default::default()
            }),
            opts.clone(),
        ),
        JobCmd::DeleteRg { rg, opts } => (S::DeleteRg(DeleteRgSpec { rg_id: *rg }), opts.clone()),
        JobCmd::Drain {
            store,
            max_parallel,
            opts,
        } => (
            S::DrainStore(DrainStoreSpec {
                store_id: *store,
                max_parallel: *max_parallel,
            }),
            opts.clone(),
        ),
        _ => return Ok(None),
    }))
}
