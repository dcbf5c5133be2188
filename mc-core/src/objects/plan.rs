//! Planning a DDL call, without I/O: which objects it creates in the tree, which RG each
//! affinity group's regions go to (an RG of the same group with room, else a new RG on
//! stores chosen by placement score), and the key range of every new region.

use std::collections::{BTreeMap, HashMap};

use topology::{Kind, ObjectTree};

use crate::cluster::ClusterView;
use crate::cluster::routes::RouteIndex;
use crate::error::{McError, Result};
use crate::ids::{ObjectId, RgId, StoreId};
use crate::objects::records::{NewRg, ObjectRecord, ObjectState, OwnedRegion, SCHEMA_VERSION};
use crate::objects::{Objects, Target, tree_error};

pub use super::request::{Create, IndexDef, PartitionDef, PlacementHint};

#[derive(Clone, Debug)]
pub struct DdlConfig {
    pub default_replicas: u32,
    /// A new affinity group joins an RG while the RG then holds at most this many regions.
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

/// The first pass: the created objects (in the tree now) in creation order, and the RG each
/// affinity group's regions go to.
#[derive(Clone, Debug)]
pub struct Shape {
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

/// Adds the objects a call creates to the tree in place (no copy of a tree of 100,000
/// objects per call), refused as a whole if any one of them is (duplicate names in one call,
/// an unknown parent, a parent being dropped): on a refusal nothing is left in the tree.
/// The caller holds the objects' lock until the call is persisted or `undo`ne.
pub fn build_tree(objects: &mut Objects, what: &Create) -> Result<Vec<(ObjectId, IndexDef)>> {
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
    let parent = match what {
        Create::Database { .. } => None,
        Create::Table { database: p, .. }
        | Create::Index { parent: p, .. }
        | Create::Partition { parent: p, .. } => Some(parent_of(p)?),
    };
    let mut created = Vec::new();
    if let Err(e) = add_objects(&mut objects.tree, parent, what, &mut created) {
        undo(&mut objects.tree, &created);
        return Err(e);
    }
    Ok(created)
}

/// Takes the objects of a call that will not be persisted out of the tree again.
pub fn undo(tree: &mut ObjectTree, created: &[(ObjectId, IndexDef)]) {
    for (id, _) in created.iter().rev() {
        let _ = tree.drop_object(topology::ObjectId(*id));
    }
}

fn add_objects(
    tree: &mut ObjectTree,
    parent: Option<topology::ObjectId>,
    what: &Create,
    created: &mut Vec<(ObjectId, IndexDef)>,
) -> Result<()> {
    let parent = || parent.expect("resolved above");
    match what {
        Create::Database { name } => {
            let id = tree
                .create(None, Kind::Database, name)
                .map_err(tree_error)?;
            created.push((id.0, IndexDef::default()));
        }
        Create::Table {
            name,
            indexes,
            partitions,
            ..
        } => {
            let db = parent();
            let table = tree
                .create(Some(db), Kind::Table, name)
                .map_err(tree_error)?;
            created.push((table.0, IndexDef::default()));
            for index in indexes {
                add_index(tree, table, Kind::Index, index, created)?;
            }
            for part in partitions {
                add_partition(tree, table, part, created)?;
            }
        }
        Create::Index { index, .. } => {
            let p = parent();
            let kind = match tree.get(p).map(|o| o.kind) {
                Some(Kind::Partition) => Kind::LocalIndex,
                _ => Kind::Index,
            };
            // The table's total, as CreateTable counts it: one index at a time must not
            // pass the limit a CreateTable with all of them is refused at.
            let held = tree
                .children(p)
                .iter()
                .filter(|o| matches!(o.kind, Kind::Index | Kind::LocalIndex))
                .count();
            if held >= super::limits::MAX_INDEXES {
                return Err(McError::invalid(
                    "index",
                    format!(
                        "`{}` has {held} indexes; at most {}",
                        tree.path(p),
                        super::limits::MAX_INDEXES
                    ),
                ));
            }
            add_index(tree, p, kind, index, created)?;
        }
        Create::Partition { partition, .. } => {
            let p = parent();
            // Partitions and subpartitions of the whole table, as CreateTable counts them.
            let table = (0..2).fold(p, |id, _| match tree.get(id).map(|o| o.kind) {
                Some(Kind::Partition | Kind::SubPartition) => id.parent().unwrap_or(id),
                _ => id,
            });
            let held = tree
                .objects()
                .filter(|o| {
                    matches!(o.kind, Kind::Partition | Kind::SubPartition)
                        && table.is_ancestor_of(o.id)
                })
                .count();
            let adding = 1 + super::limits::partition_count(&partition.subs);
            if held + adding > super::limits::MAX_PARTITIONS {
                return Err(McError::invalid(
                    "partition",
                    format!(
                        "`{}` has {held} partitions; {adding} more would pass {}",
                        tree.path(table),
                        super::limits::MAX_PARTITIONS
                    ),
                ));
            }
            add_partition(tree, p, partition, created)?;
        }
    }
    Ok(())
}

/// What the packing of new groups into RGs must know beyond the view: regions promised to
/// RGs by calls still running, and RGs a job is changing now (a new group waits for neither).
#[derive(Clone, Debug, Default)]
pub struct Packing {
    pub reserved: HashMap<RgId, usize>,
    pub busy: std::collections::BTreeSet<RgId>,
}

/// Finds each affinity group's RG. A group that has one keeps it (a group stays whole in one
/// RG; the split checker moves a grown group out later). A new group goes to an RG with room
/// for it — the fullest that fits, so small tables pack into few RGs instead of one Raft
/// group each — on Up stores with its labels and replica count; else to new stores chosen by
/// placement (groups of one call that need new RGs spread over the stores).
pub fn shape(
    objects: &mut Objects,
    view: &ClusterView,
    index: &RouteIndex,
    what: &Create,
    hint: &PlacementHint,
    config: &DdlConfig,
    packing: &Packing,
) -> Result<Shape> {
    if hint.initial_regions > 256 {
        return Err(McError::invalid(
            "placement.initial_regions",
            "at most 256 regions per object",
        ));
    }
    let created = build_tree(objects, what)?;
    match homes(objects, view, index, created.clone(), hint, config, packing) {
        Ok(shape) => Ok(shape),
        Err(e) => {
            undo(&mut objects.tree, &created);
            Err(e)
        }
    }
}

fn homes(
    objects: &Objects,
    view: &ClusterView,
    index: &RouteIndex,
    created: Vec<(ObjectId, IndexDef)>,
    hint: &PlacementHint,
    config: &DdlConfig,
    packing: &Packing,
) -> Result<Shape> {
    let tree = &objects.tree;
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
    // Each group with the number of regions this call gives it.
    let mut groups: Vec<(ObjectId, usize)> = Vec::new();
    for (id, _) in &created {
        if topology::ObjectId(*id).level() == 0 {
            continue;
        }
        let root = tree
            .affinity_root(topology::ObjectId(*id))
            .map_err(tree_error)?
            .0;
        match groups.iter_mut().find(|(r, _)| *r == root) {
            Some((_, n)) => *n += regions_per_object as usize,
            None => groups.push((root, regions_per_object as usize)),
        }
    }
    let most = crate::jobs::types::create_regions::MAX_REGIONS;
    if let Some((_, n)) = groups.iter().find(|(_, n)| *n > most) {
        return Err(McError::invalid(
            "placement.initial_regions",
            format!(
                "{n} regions for one affinity group in one call; at most {most} (fewer \
                 initial regions, or the partitions in several calls)"
            ),
        ));
    }
    let total: usize = groups.iter().map(|(_, n)| *n).sum();
    if total > super::limits::MAX_REQUEST_REGIONS {
        return Err(McError::invalid(
            "placement.initial_regions",
            format!(
                "{total} regions in one call; at most {} (fewer initial regions, or the \
                 partitions in several calls)",
                super::limits::MAX_REQUEST_REGIONS
            ),
        ));
    }
    let mut counts: Option<HashMap<StoreId, usize>> = None;
    let mut added: HashMap<RgId, usize> = HashMap::new();
    let mut homes = Vec::new();
    for (root, needed) in groups {
        let home = match group_rg(objects, tree, view, index, root) {
            Some(rg) => Home::Existing(rg),
            None => match roomy_rg(view, config, packing, &added, hint, replicas, needed) {
                Some(rg) => Home::Existing(rg),
                None => {
                    let counts =
                        counts.get_or_insert_with(|| crate::placement::replica_counts(view));
                    Home::New(crate::placement::choose_stores(
                        view,
                        replicas,
                        &hint.labels,
                        counts,
                    )?)
                }
            },
        };
        if let Home::Existing(rg) = home {
            *added.entry(rg).or_default() += needed;
        }
        homes.push((root, home));
    }
    Ok(Shape {
        created,
        homes,
        regions_per_object,
    })
}

/// The RG that holds the group `root` now: where the view has its regions (one range of the
/// route index: the group's ids, and so its keys, are contiguous), which follows a split
/// checker's move; else, for a group still being created, the RG its records name (a new RG
/// the view has not heard of yet: the new objects' job waits for it).
fn group_rg(
    objects: &Objects,
    tree: &ObjectTree,
    view: &ClusterView,
    index: &RouteIndex,
    root: ObjectId,
) -> Option<RgId> {
    let in_group = |object: ObjectId| {
        tree.affinity_root(topology::ObjectId(object))
            .ok()
            .map(|x| x.0)
            == Some(root)
    };
    let (start, end) = topology::keys::subtree_range(topology::ObjectId(root));
    if let Some(rg) = index
        .regions_in(view, &start, &end)
        .into_iter()
        .filter(|r| in_group(r.object))
        .map(|r| r.rg)
        .find(|rg| view.rg(*rg).is_some())
    {
        return Some(rg);
    }
    let last = topology::ObjectId(root).subtree_end().unwrap_or(u64::MAX);
    objects
        .records
        .range(root..last)
        .filter(|(_, r)| r.state == ObjectState::Creating && in_group(r.object.id.0))
        .find_map(|(_, r)| r.rg)
}

/// The fullest RG with room for `needed` more regions whose members suit a new group: as many
/// voters as it wants replicas, all Up and carrying its labels, a known leader, no job on it.
fn roomy_rg(
    view: &ClusterView,
    config: &DdlConfig,
    packing: &Packing,
    added: &HashMap<RgId, usize>,
    hint: &PlacementHint,
    replicas: usize,
    needed: usize,
) -> Option<RgId> {
    view.rgs
        .values()
        .filter(|g| !g.offline && g.leader.is_some() && !packing.busy.contains(&g.id))
        .filter_map(|g| {
            let used = g.regions.len()
                + packing.reserved.get(&g.id).copied().unwrap_or(0)
                + added.get(&g.id).copied().unwrap_or(0);
            (used + needed <= config.rg_max_regions).then_some((g, used))
        })
        .filter(|(g, _)| {
            g.members.len() == replicas
                && g.members.iter().all(|(s, role)| {
                    *role == crate::cluster::Role::Voter
                        && view.store(*s).is_some_and(|st| {
                            st.state.accepts_replicas()
                                && crate::placement::matches_labels(st, &hint.labels)
                        })
                })
        })
        .max_by_key(|(g, used)| (*used, std::cmp::Reverse(g.id)))
        .map(|(g, _)| g.id)
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
    tree: &ObjectTree,
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
            let object = tree
                .get(topology::ObjectId(*id))
                .cloned()
                .expect("created objects are in the tree");
            let root = tree.affinity_root(object.id).ok().map(|r| r.0);
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
