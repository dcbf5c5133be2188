//! Planning a DDL call, without I/O: which objects it creates in the tree, which RG each
//! affinity group's regions go to (an RG of the same group with room, else a new RG on
//! stores chosen by placement score), and the key range of every new region.

use std::collections::{BTreeMap, HashMap};

use topology::{Kind, ObjectTree};

use crate::cluster::ClusterView;
use crate::error::{McError, Result};
use crate::ids::{ObjectId, RgId, StoreId};
use crate::objects::records::{NewRg, ObjectRecord, ObjectState, OwnedRegion, SCHEMA_VERSION};
use crate::objects::{Objects, Target, tree_error};

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

#[derive(Clone, Debug)]
pub struct DdlConfig {
    pub default_replicas: u32,
    /// An RG of the same affinity group is reused while it holds fewer regions than this.
    pub rg_max_regions: usize,
}

impl Default for DdlConfig {
    fn default() -> Self {
        Self {
            default_replicas: 3,
            rg_max_regions: 64,
        }
    }
}

/// Where one affinity group's new regions go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Home {
    Existing(RgId),
    New(Vec<StoreId>),
}

/// The first pass: the tree after the call, the created objects in creation order, and the
/// RG each affinity group's regions go to.
#[derive(Clone, Debug)]
pub struct Shape {
    pub tree: ObjectTree,
    pub created: Vec<(ObjectId, IndexDef)>,
    pub homes: Vec<(ObjectId, Home)>,
    pub regions_per_object: u32,
}

impl Shape {
    pub fn new_rg_count(&self) -> u64 {
        self.homes
            .iter()
            .filter(|(_, h)| matches!(h, Home::New(_)))
            .count() as u64
    }

    /// Every created object but databases gets regions.
    pub fn region_count(&self) -> u64 {
        let with_data = self
            .created
            .iter()
            .filter(|(id, _)| topology::ObjectId(*id).level() > 0)
            .count() as u64;
        with_data * self.regions_per_object as u64
    }
}

fn add_index(
    tree: &mut ObjectTree,
    parent: topology::ObjectId,
    kind: Kind,
    index: &IndexDef,
    created: &mut Vec<(ObjectId, IndexDef)>,
) -> Result<()> {
    let id = tree
        .create(Some(parent), kind, &index.name)
        .map_err(tree_error)?;
    if index.global && index.own_group {
        tree.set_own_group(id, true).map_err(tree_error)?;
    }
    created.push((id.0, index.clone()));
    Ok(())
}

fn add_partition(
    tree: &mut ObjectTree,
    parent: topology::ObjectId,
    part: &PartitionDef,
    created: &mut Vec<(ObjectId, IndexDef)>,
) -> Result<()> {
    let parent_kind = tree.get(parent).map(|o| o.kind);
    let kind = if parent_kind == Some(Kind::Partition) {
        Kind::SubPartition
    } else {
        Kind::Partition
    };
    let id = tree
        .create(Some(parent), kind, &part.name)
        .map_err(tree_error)?;
    created.push((id.0, IndexDef::default()));
    if kind == Kind::SubPartition && (!part.subs.is_empty() || !part.local_indexes.is_empty()) {
        return Err(McError::invalid(
            "partition.sub_partitions",
            "a sub-partition has no sub-partitions or local indexes of its own",
        ));
    }
    for sub in &part.subs {
        add_partition(tree, id, sub, created)?;
    }
    for index in &part.local_indexes {
        add_index(tree, id, Kind::LocalIndex, index, created)?;
    }
    Ok(())
}

/// The objects a call creates, refused as a whole if any one of them is (duplicate names in
/// one call, an unknown parent, a parent being dropped).
pub fn build_tree(
    objects: &Objects,
    what: &Create,
) -> Result<(ObjectTree, Vec<(ObjectId, IndexDef)>)> {
    let mut tree = objects.tree.clone();
    let mut created = Vec::new();
    let parent_of = |target: &Target| -> Result<topology::ObjectId> {
        let id = objects.resolve(target)?;
        match objects.records.get(&id).map(|r| r.state) {
            Some(ObjectState::Dropping) => Err(McError::FailedPrecondition {
                subject: format!("object {}", objects.tree.path(topology::ObjectId(id))),
                state: "being dropped".into(),
                required: "an object that is not being dropped".into(),
            }),
            _ => Ok(topology::ObjectId(id)),
        }
    };
    match what {
        Create::Database { name } => {
            let id = tree
                .create(None, Kind::Database, name)
                .map_err(tree_error)?;
            created.push((id.0, IndexDef::default()));
        }
        Create::Table {
            database,
            name,
            indexes,
            partitions,
        } => {
            let db = parent_of(database)?;
            let table = tree
                .create(Some(db), Kind::Table, name)
                .map_err(tree_error)?;
            created.push((table.0, IndexDef::default()));
            for index in indexes {
                add_index(&mut tree, table, Kind::Index, index, &mut created)?;
            }
            for part in partitions {
                add_partition(&mut tree, table, part, &mut created)?;
            }
        }
        Create::Index { parent, index } => {
            let p = parent_of(parent)?;
            let kind = match tree.get(p).map(|o| o.kind) {
                Some(Kind::Partition) => Kind::LocalIndex,
                _ => Kind::Index,
            };
            add_index(&mut tree, p, kind, index, &mut created)?;
        }
        Create::Partition { parent, partition } => {
            let p = parent_of(parent)?;
            add_partition(&mut tree, p, partition, &mut created)?;
        }
    }
    Ok((tree, created))
}

/// Finds each affinity group's RG: one that already holds the group and has room, else new
/// stores chosen by placement. Groups of one call that need new RGs spread over the stores.
pub fn shape(
    objects: &Objects,
    view: &ClusterView,
    what: &Create,
    hint: &PlacementHint,
    config: &DdlConfig,
) -> Result<Shape> {
    let (tree, created) = build_tree(objects, what)?;
    if hint.initial_regions > 256 {
        return Err(McError::invalid(
            "placement.initial_regions",
            "at most 256 regions per object",
        ));
    }
    let regions_per_object = hint.initial_regions.max(1);
    let replicas = if hint.replicas == 0 {
        config.default_replicas
    } else {
        hint.replicas
    } as usize;
    let mut roots: Vec<ObjectId> = Vec::new();
    for (id, _) in &created {
        if topology::ObjectId(*id).level() == 0 {
            continue;
        }
        let root = tree
            .affinity_root(topology::ObjectId(*id))
            .map_err(tree_error)?
            .0;
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    let mut counts: HashMap<StoreId, usize> = crate::schedule::placement::replica_counts(view);
    let mut homes = Vec::new();
    for root in roots {
        let needed = created
            .iter()
            .filter(|(id, _)| {
                tree.affinity_root(topology::ObjectId(*id))
                    .ok()
                    .map(|r| r.0)
                    == Some(root)
            })
            .count()
            * regions_per_object as usize;
        let existing = objects
            .records
            .values()
            .filter(|r| r.state == ObjectState::Serving)
            .filter(|r| tree.affinity_root(r.object.id).ok().map(|x| x.0) == Some(root))
            .filter_map(|r| r.rg)
            .find(|rg| {
                view.rg(*rg)
                    .is_some_and(|info| info.regions.len() + needed <= config.rg_max_regions)
            });
        let home = match existing {
            Some(rg) => Home::Existing(rg),
            None => {
                let stores = crate::schedule::placement::choose_stores(
                    view,
                    replicas,
                    &hint.labels,
                    &mut counts,
                )?;
                Home::New(stores)
            }
        };
        homes.push((root, home));
    }
    Ok(Shape {
        tree,
        created,
        homes,
        regions_per_object,
    })
}

/// `[start, end)` of each of an object's `n` initial regions: its key range cut at evenly
/// spaced first bytes after the id prefix.
pub fn region_ranges(id: ObjectId, n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (start, end) = topology::keys::object_range(topology::ObjectId(id));
    let mut cuts = vec![start.clone()];
    for i in 1..n {
        let mut k = start.clone();
        k.push((i * 256 / n) as u8);
        cuts.push(k);
    }
    cuts.push(end);
    cuts.windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect()
}

/// The records of the created objects, with allocated RG and region ids: `first_rg` and
/// `first_region` are the first of `new_rg_count` and `region_count` reserved ids.
pub fn assemble(
    shape: &Shape,
    hint: &PlacementHint,
    first_rg: RgId,
    first_region: u64,
    now_ms: u64,
) -> (Vec<ObjectRecord>, Vec<NewRg>) {
    let mut next_rg = first_rg;
    let mut new_rgs = Vec::new();
    let mut rg_of_root = BTreeMap::new();
    for (root, home) in &shape.homes {
        let rg = match home {
            Home::Existing(rg) => *rg,
            Home::New(stores) => {
                let rg = next_rg;
                next_rg += 1;
                new_rgs.push(NewRg {
                    rg,
                    stores: stores.clone(),
                });
                rg
            }
        };
        rg_of_root.insert(*root, rg);
    }
    let mut next_region = first_region;
    let records = shape
        .created
        .iter()
        .map(|(id, def)| {
            let object = shape
                .tree
                .get(topology::ObjectId(*id))
                .cloned()
                .expect("created objects are in the tree");
            let root = shape.tree.affinity_root(object.id).ok().map(|r| r.0);
            let rg = root.and_then(|r| rg_of_root.get(&r).copied());
            let regions = if object.id.level() == 0 {
                vec![]
            } else {
                region_ranges(*id, shape.regions_per_object)
                    .into_iter()
                    .map(|(start, end)| {
                        let id = next_region;
                        next_region += 1;
                        OwnedRegion { id, start, end }
                    })
                    .collect()
            };
            ObjectRecord {
                schema: SCHEMA_VERSION,
                object,
                state: ObjectState::Creating,
                unique: def.unique,
                global: def.global,
                rg: if regions.is_empty() { None } else { rg },
                regions,
                created_ms: now_ms,
                replicas: hint.replicas,
                labels: hint.labels.clone(),
            }
        })
        .collect();
    (records, new_rgs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_ranges_tile_the_object_range() {
        let id = topology::ObjectId::database(1).unwrap().child(2).unwrap().0;
        let (start, end) = topology::keys::object_range(topology::ObjectId(id));
        for n in [1, 2, 3, 4, 256] {
            let r = region_ranges(id, n);
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].0, start);
            assert_eq!(r.last().unwrap().1, end);
            for w in r.windows(2) {
                assert_eq!(w[0].1, w[1].0);
                assert!(w[0].0 < w[0].1);
            }
        }
    }
}
