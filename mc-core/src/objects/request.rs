//! What a DDL call asks for: the objects to create and where to place them. Checked by
//! `limits`, planned by `plan`.

use std::collections::BTreeMap;

use crate::objects::Target;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    pub unique: bool,
    pub global: bool,
    /// A global index placed on its own rather than with its table.
    pub own_group: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionDef {
    pub name: String,
    pub subs: Vec<PartitionDef>,
    pub local_indexes: Vec<IndexDef>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementHint {
    /// 0: the configured default.
    pub replicas: u32,
    pub labels: BTreeMap<String, String>,
    /// 0: one.
    pub initial_regions: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Create {
    Database {
        name: String,
    },
    Table {
        database: Target,
        name: String,
        indexes: Vec<IndexDef>,
        partitions: Vec<PartitionDef>,
    },
    Index {
        parent: Target,
        index: IndexDef,
    },
    Partition {
        parent: Target,
        partition: PartitionDef,
    },
}
