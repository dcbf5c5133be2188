//! The data-object tree: databases, tables, their indexes and partitions, and below those
//! sub-partitions and partition-local indexes. Names are unique among siblings; ids are
//! allocated from the parent's path. Affinity groups — what should live in one RG — are a
//! table with its indexes, and a partition with its local indexes; a global index may opt out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ObjectId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Database,
    Table,
    Index,
    Partition,
    SubPartition,
    LocalIndex,
}

impl Kind {
    pub fn level(self) -> usize {
        match self {
            Kind::Database => 0,
            Kind::Table => 1,
            Kind::Index | Kind::Partition => 2,
            Kind::SubPartition | Kind::LocalIndex => 3,
        }
    }

    /// The kinds a parent of this kind may have as children.
    fn allows_child(self, child: Kind) -> bool {
        matches!(
            (self, child),
            (Kind::Database, Kind::Table)
                | (Kind::Table, Kind::Index | Kind::Partition)
                | (Kind::Partition, Kind::SubPartition | Kind::LocalIndex)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub id: ObjectId,
    pub kind: Kind,
    pub name: String,
    /// For a global index: placed on its own rather than with its table.
    #[serde(default)]
    pub own_group: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("{kind:?} `{name}` already exists in {parent}")]
    AlreadyExists {
        parent: String,
        kind: Kind,
        name: String,
    },
    #[error("object {0} not found")]
    NotFound(ObjectId),
    #[error("no object at path `{0}`")]
    NoSuchPath(String),
    #[error("a {child:?} cannot be created under a {parent:?}")]
    WrongParent { parent: Kind, child: Kind },
    #[error("invalid name `{0}`: 1-64 characters, no '/' or control characters")]
    InvalidName(String),
    #[error("{0} has no room for another child")]
    Full(String),
}

/// The tree; ids, names and kinds only (regions and RGs live in the MC's catalog).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredTree")]
pub struct ObjectTree {
    objects: BTreeMap<ObjectId, Object>,
    /// The highest child number ever given under each parent (0: the cluster's databases):
    /// a dropped object's id, and so its key range, is never handed out again.
    #[serde(default)]
    high_water: BTreeMap<u64, u64>,
    /// (parent slot, name) → object: a name is checked and resolved in O(log n), not by a
    /// pass over every object (a CREATE TABLE in a database of 100,000 objects).
    #[serde(skip)]
    names: BTreeMap<(u64, String), ObjectId>,
}

/// What a stored tree holds; the name index is rebuilt from it.
#[derive(Deserialize)]
struct StoredTree {
    objects: BTreeMap<ObjectId, Object>,
    #[serde(default)]
    high_water: BTreeMap<u64, u64>,
}

impl From<StoredTree> for ObjectTree {
    fn from(t: StoredTree) -> Self {
        Self::from_parts(t.objects.into_values(), t.high_water)
    }
}

fn slot(parent: Option<ObjectId>) -> u64 {
    parent.map(|p| p.0).unwrap_or(0)
}

/// The ids of `id` and everything below it: a contiguous range.
fn subtree(id: ObjectId) -> std::ops::Range<ObjectId> {
    id..ObjectId(id.subtree_end().unwrap_or(u64::MAX))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(|c| c == '/' || c.is_control())
}

impl ObjectTree {
    /// A tree rebuilt from stored objects and per-parent high-water marks (as `objects` and
    /// `high_water` return them). Objects whose parent is missing are kept: a catalog written
    /// mid-drop may hold children of an already removed parent, and dropping them must work.
    pub fn from_parts(
        objects: impl IntoIterator<Item = Object>,
        high_water: impl IntoIterator<Item = (u64, u64)>,
    ) -> Self {
        let objects: BTreeMap<ObjectId, Object> = objects.into_iter().map(|o| (o.id, o)).collect();
        let names = objects
            .values()
            .map(|o| ((slot(o.id.parent()), o.name.clone()), o.id))
            .collect();
        let mut tree = Self {
            objects,
            high_water: high_water.into_iter().collect(),
            names,
        };
        // A lost high-water record must not let an id be handed out twice.
        let seen: Vec<(u64, u64)> = tree
            .objects
            .keys()
            .map(|id| (id.parent().map(|p| p.0).unwrap_or(0), id.number()))
            .collect();
        for (slot, n) in seen {
            let hw = tree.high_water.entry(slot).or_insert(0);
            *hw = (*hw).max(n);
        }
        tree
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// The highest child number handed out under `slot` (a parent id, 0 for databases).
    pub fn high_water(&self, slot: u64) -> u64 {
        self.high_water.get(&slot).copied().unwrap_or(0)
    }

    pub fn get(&self, id: ObjectId) -> Option<&Object> {
        self.objects.get(&id)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Direct children, in id order.
    pub fn children(&self, id: ObjectId) -> Vec<&Object> {
        self.objects
            .range(subtree(id))
            .map(|(_, o)| o)
            .filter(|o| o.id.parent() == Some(id))
            .collect()
    }

    pub fn find(&self, parent: Option<ObjectId>, name: &str) -> Option<&Object> {
        let id = self.names.get(&(slot(parent), name.to_string()))?;
        self.objects.get(id)
    }

    /// The object a slash-separated path of names names ("shop/orders/by_user").
    pub fn resolve(&self, path: &str) -> Result<ObjectId, TreeError> {
        let mut at: Option<ObjectId> = None;
        for name in path.split('/') {
            let next = self
                .find(at, name)
                .ok_or_else(|| TreeError::NoSuchPath(path.to_string()))?;
            at = Some(next.id);
        }
        at.ok_or_else(|| TreeError::NoSuchPath(path.to_string()))
    }

    /// The slash-separated path of names of an object; ids stand in for missing ancestors.
    pub fn path(&self, id: ObjectId) -> String {
        let mut chain = id.ancestors();
        chain.reverse();
        chain.push(id);
        chain
            .iter()
            .map(|a| {
                self.get(*a)
                    .map(|o| o.name.clone())
                    .unwrap_or_else(|| a.to_string())
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Creates a database (`parent` None) or a child of `parent`. The id is the next free
    /// number among the siblings.
    pub fn create(
        &mut self,
        parent: Option<ObjectId>,
        kind: Kind,
        name: &str,
    ) -> Result<ObjectId, TreeError> {
        if !valid_name(name) {
            return Err(TreeError::InvalidName(name.to_string()));
        }
        let parent_label = match parent {
            None => "the cluster".to_string(),
            Some(p) => {
                let po = self.get(p).ok_or(TreeError::NotFound(p))?;
                if !po.kind.allows_child(kind) {
                    return Err(TreeError::WrongParent {
                        parent: po.kind,
                        child: kind,
                    });
                }
                format!("{:?} `{}`", po.kind, po.name)
            }
        };
        if parent.is_none() && kind != Kind::Database {
            return Err(TreeError::WrongParent {
                parent: Kind::Database,
                child: kind,
            });
        }
        if self.find(parent, name).is_some() {
            return Err(TreeError::AlreadyExists {
                parent: parent_label,
                kind,
                name: name.to_string(),
            });
        }
        let slot = parent.map(|p| p.0).unwrap_or(0);
        let next = self.high_water.get(&slot).copied().unwrap_or(0) + 1;
        let id = match parent {
            None => ObjectId::database(next),
            Some(p) => p.child(next),
        }
        .ok_or(TreeError::Full(parent_label))?;
        self.high_water.insert(slot, next);
        self.names.insert((slot, name.to_string()), id);
        self.objects.insert(
            id,
            Object {
                id,
                kind,
                name: name.to_string(),
                own_group: false,
            },
        );
        Ok(id)
    }

    /// Places a global index in its own affinity group (or back with its table).
    pub fn set_own_group(&mut self, id: ObjectId, own: bool) -> Result<(), TreeError> {
        let o = self.objects.get_mut(&id).ok_or(TreeError::NotFound(id))?;
        o.own_group = own && o.kind == Kind::Index;
        Ok(())
    }

    /// Removes the object and everything below it; returns what was removed.
    pub fn drop_object(&mut self, id: ObjectId) -> Result<Vec<Object>, TreeError> {
        if !self.objects.contains_key(&id) {
            return Err(TreeError::NotFound(id));
        }
        let doomed: Vec<ObjectId> = self.objects.range(subtree(id)).map(|(o, _)| *o).collect();
        let removed: Vec<Object> = doomed
            .into_iter()
            .filter_map(|o| self.objects.remove(&o))
            .collect();
        for o in &removed {
            self.names.remove(&(slot(o.id.parent()), o.name.clone()));
        }
        Ok(removed)
    }

    /// The root of the object's affinity group: the partition for a partition's objects, the
    /// table for the table and its indexes (unless a global index opted out: then itself).
    /// Databases are their own group.
    pub fn affinity_root(&self, id: ObjectId) -> Result<ObjectId, TreeError> {
        let o = self.get(id).ok_or(TreeError::NotFound(id))?;
        Ok(match o.kind {
            Kind::Database | Kind::Table | Kind::Partition => id,
            Kind::Index if o.own_group => id,
            Kind::Index => id.parent().expect("an index has a table"),
            Kind::SubPartition | Kind::LocalIndex => id.parent().expect("under a partition"),
        })
    }

    /// Every object whose affinity root is `root`, root first.
    pub fn affinity_group(&self, root: ObjectId) -> Vec<ObjectId> {
        let mut group: Vec<ObjectId> = self
            .objects
            .range(subtree(root))
            .map(|(o, _)| *o)
            .filter(|o| self.affinity_root(*o).ok() == Some(root))
            .collect();
        group.sort_by_key(|o| (*o != root, *o));
        group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_after_drops_rebuilds_and_serde() {
        let mut t = ObjectTree::default();
        let db = t.create(None, Kind::Database, "db").unwrap();
        let a = t.create(Some(db), Kind::Table, "a").unwrap();
        let ai = t.create(Some(a), Kind::Index, "i").unwrap();
        let b = t.create(Some(db), Kind::Table, "b").unwrap();
        assert_eq!(t.resolve("db/a/i"), Ok(ai));
        assert!(matches!(
            t.create(Some(db), Kind::Table, "a"),
            Err(TreeError::AlreadyExists { .. })
        ));
        // Same name under another parent is another object.
        let bi = t.create(Some(b), Kind::Index, "i").unwrap();
        assert_eq!(t.resolve("db/b/i"), Ok(bi));
        assert_eq!(t.drop_object(a).unwrap().len(), 2);
        assert!(t.resolve("db/a/i").is_err());
        assert!(t.find(Some(db), "a").is_none());
        let again = t.create(Some(db), Kind::Table, "a").unwrap();
        assert_ne!(again, a, "a dropped id is never handed out again");
        assert_eq!(t.children(db).len(), 2);
        let rebuilt = ObjectTree::from_parts(t.objects().cloned(), [(db.0, 3)]);
        assert_eq!(rebuilt.resolve("db/b/i"), Ok(bi));
        let json = serde_json::to_string(&t).unwrap();
        let back: ObjectTree = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.resolve("db/a"), Ok(again));
    }

    #[test]
    fn a_table_with_indexes_and_partitions() {
        let mut t = ObjectTree::default();
        let db = t.create(None, Kind::Database, "shop").unwrap();
        let orders = t.create(Some(db), Kind::Table, "orders").unwrap();
        let by_user = t.create(Some(orders), Kind::Index, "by_user").unwrap();
        let global = t.create(Some(orders), Kind::Index, "by_sku").unwrap();
        let p2024 = t.create(Some(orders), Kind::Partition, "p2024").unwrap();
        let local = t
            .create(Some(p2024), Kind::LocalIndex, "p2024_by_day")
            .unwrap();
        assert_eq!(orders.parent(), Some(db));
        assert_eq!(p2024.to_string(), "1.1.3");
        assert_eq!(t.resolve("shop/orders/p2024").unwrap(), p2024);
        assert_eq!(t.path(local), "shop/orders/p2024/p2024_by_day");
        assert_eq!(
            t.resolve("shop/nope").unwrap_err(),
            TreeError::NoSuchPath("shop/nope".into())
        );
        let rebuilt = ObjectTree::from_parts(t.objects().cloned(), []);
        assert_eq!(rebuilt.high_water(orders.0), 3, "derived from the objects");
        t.set_own_group(global, true).unwrap();
        assert_eq!(t.affinity_group(orders), vec![orders, by_user]);
        assert_eq!(t.affinity_group(global), vec![global]);
        assert_eq!(t.affinity_group(p2024), vec![p2024, local]);
        assert_eq!(t.affinity_root(local).unwrap(), p2024);

        // Names are unique among siblings only.
        assert_eq!(
            t.create(Some(orders), Kind::Index, "by_user").unwrap_err(),
            TreeError::AlreadyExists {
                parent: "Table `orders`".into(),
                kind: Kind::Index,
                name: "by_user".into()
            }
        );
        let other = t.create(Some(db), Kind::Table, "users").unwrap();
        t.create(Some(other), Kind::Index, "by_user").unwrap();
        assert!(matches!(
            t.create(Some(ObjectId::database(9).unwrap()), Kind::Table, "x"),
            Err(TreeError::NotFound(_))
        ));
        assert!(matches!(
            t.create(Some(db), Kind::Index, "x"),
            Err(TreeError::WrongParent { .. })
        ));
        assert!(matches!(
            t.create(None, Kind::Table, "x"),
            Err(TreeError::WrongParent { .. })
        ));
        assert!(matches!(
            t.create(Some(db), Kind::Table, "a/b"),
            Err(TreeError::InvalidName(_))
        ));

        // Dropping a table drops its indexes and partitions, nothing else.
        let before = t.len();
        let dropped = t.drop_object(orders).unwrap();
        assert_eq!(dropped.len(), 5);
        assert_eq!(t.len(), before - 5);
        assert!(t.get(other).is_some());
        // The name is free again, the id (and so the key range) is never reused.
        let again = t.create(Some(db), Kind::Table, "orders").unwrap();
        assert_eq!(again.number(), 3);
        let last = t.create(Some(db), Kind::Table, "last").unwrap();
        t.drop_object(last).unwrap();
        assert_eq!(t.create(Some(db), Kind::Table, "next").unwrap().number(), 5);
    }
}
