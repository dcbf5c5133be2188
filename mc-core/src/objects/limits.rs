//! What one DDL call may ask for. Every limit refuses with InvalidArgument naming the field,
//! before anything is written: 20,000 indexes in one CreateTable were once accepted and
//! flooded the cluster with jobs.

use super::request::{Create, IndexDef, PartitionDef};
use crate::error::{McError, Result, short};

/// Longest object name (database, table, index, partition), in characters (the topology's
/// own limit, checked here first so a huge name is refused before anything else is read).
pub const MAX_NAME_CHARS: usize = 64;
/// Indexes one table (or one partition's local indexes) may have.
pub const MAX_INDEXES: usize = 64;
/// Partitions, counting subpartitions, one table may have.
pub const MAX_PARTITIONS: usize = 1_024;
/// Regions one DDL call may create in all (objects × initial regions): one call must not
/// become a flood of jobs and Raft commands.
pub const MAX_REQUEST_REGIONS: usize = 16_384;

fn name(field: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.chars().nth(MAX_NAME_CHARS).is_some()
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(McError::invalid(
            field,
            format!(
                "`{}`: 1-{MAX_NAME_CHARS} characters, no '/' or control characters",
                short(name)
            ),
        ));
    }
    Ok(())
}

fn indexes(field: &str, list: &[IndexDef]) -> Result<()> {
    if list.len() > MAX_INDEXES {
        return Err(McError::invalid(
            field,
            format!("{} indexes; at most {MAX_INDEXES}", list.len()),
        ));
    }
    list.iter()
        .try_for_each(|i| name(&format!("{field}.name"), &i.name))
}

fn count(parts: &[PartitionDef]) -> usize {
    parts.iter().map(|p| 1 + count(&p.subs)).sum()
}

/// Partitions and subpartitions in `parts`.
pub fn partition_count(parts: &[PartitionDef]) -> usize {
    count(parts)
}

fn partitions(field: &str, parts: &[PartitionDef]) -> Result<()> {
    for p in parts {
        name(&format!("{field}.name"), &p.name)?;
        indexes(&format!("{field}.local_indexes"), &p.local_indexes)?;
        partitions(&format!("{field}.subs"), &p.subs)?;
    }
    Ok(())
}

pub fn check(what: &Create) -> Result<()> {
    match what {
        Create::Database { name: n } => name("name", n),
        Create::Table {
            name: n,
            indexes: ix,
            partitions: parts,
            ..
        } => {
            name("name", n)?;
            indexes("indexes", ix)?;
            let total = count(parts);
            if total > MAX_PARTITIONS {
                return Err(McError::invalid(
                    "partitions",
                    format!("{total} partitions; at most {MAX_PARTITIONS}"),
                ));
            }
            partitions("partitions", parts)
        }
        Create::Index { index, .. } => name("index.name", &index.name),
        Create::Partition { partition, .. } => {
            if count(std::slice::from_ref(partition)) > MAX_PARTITIONS {
                return Err(McError::invalid(
                    "partition.subs",
                    format!("at most {MAX_PARTITIONS} partitions"),
                ));
            }
            partitions("partition", std::slice::from_ref(partition))
        }
    }
}
