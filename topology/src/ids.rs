//! Hierarchical object ids: the bits of an id are its path from its database, so an id tells
//! its ancestors without a lookup.
//!
//! Layout (most significant first): database 16 bits, table 20 bits, L2 object (index or
//! partition) 16 bits, L3 object (sub-partition or partition-local index) 12 bits. A zero
//! field means "this level and below are not set": the table 3 of database 1 is `1.3.0.0`.

use serde::{Deserialize, Serialize};

const L3_BITS: u32 = 12;
const L2_BITS: u32 = 16;
const L1_BITS: u32 = 20;
const L0_BITS: u32 = 16;
const SHIFTS: [u32; 4] = [L1_BITS + L2_BITS + L3_BITS, L2_BITS + L3_BITS, L3_BITS, 0];
const WIDTHS: [u32; 4] = [L0_BITS, L1_BITS, L2_BITS, L3_BITS];

/// One object of the tree, by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId(pub u64);

impl ObjectId {
    /// The largest number a level can hold.
    pub fn max_at(level: usize) -> u64 {
        (1u64 << WIDTHS[level]) - 1
    }

    fn field(self, level: usize) -> u64 {
        (self.0 >> SHIFTS[level]) & Self::max_at(level)
    }

    pub fn database(n: u64) -> Option<Self> {
        (1..=Self::max_at(0))
            .contains(&n)
            .then(|| ObjectId(n << SHIFTS[0]))
    }

    /// Child number `n` (1-based) of this object, one level down; None past the last level or
    /// the level's width.
    pub fn child(self, n: u64) -> Option<Self> {
        let level = self.level() + 1;
        if level > 3 || !(1..=Self::max_at(level)).contains(&n) {
            return None;
        }
        Some(ObjectId(self.0 | (n << SHIFTS[level])))
    }

    /// 0 for a database, 1 for a table, 2 for an index or partition, 3 below.
    pub fn level(self) -> usize {
        (0..4).rev().find(|l| self.field(*l) != 0).unwrap_or(0)
    }

    /// The number of this object among its parent's children (its own field).
    pub fn number(self) -> u64 {
        self.field(self.level())
    }

    pub fn parent(self) -> Option<Self> {
        let level = self.level();
        (level > 0).then(|| ObjectId(self.0 & !(Self::max_at(level) << SHIFTS[level])))
    }

    /// Parent first, database last.
    pub fn ancestors(self) -> Vec<Self> {
        let mut out = Vec::new();
        let mut at = self;
        while let Some(p) = at.parent() {
            out.push(p);
            at = p;
        }
        out
    }

    /// The first id after this object's subtree: its descendants are the ids in
    /// `[self, subtree_end)`, as the lower fields are theirs. None for the last database.
    pub fn subtree_end(self) -> Option<u64> {
        self.0.checked_add(1u64 << SHIFTS[self.level()])
    }

    pub fn is_ancestor_of(self, other: ObjectId) -> bool {
        other.ancestors().contains(&self)
    }

    /// A well-formed id: a database field, and no set field below an unset one.
    pub fn is_valid(self) -> bool {
        if self.field(0) == 0 {
            return false;
        }
        let level = self.level();
        (1..level).all(|l| self.field(l) != 0)
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = (0..=self.level())
            .map(|l| self.field(l).to_string())
            .collect();
        write!(f, "{}", parts.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tell_their_ancestry() {
        let db = ObjectId::database(7).unwrap();
        let table = db.child(3).unwrap();
        let index = table.child(2).unwrap();
        let sub = index.child(9).unwrap();
        assert_eq!(
            (db.level(), table.level(), index.level(), sub.level()),
            (0, 1, 2, 3)
        );
        assert_eq!(sub.ancestors(), vec![index, table, db]);
        assert_eq!(index.parent(), Some(table));
        assert_eq!(db.parent(), None);
        assert_eq!(sub.to_string(), "7.3.2.9");
        assert_eq!(sub.number(), 9);
        assert!(db.is_ancestor_of(sub) && !sub.is_ancestor_of(db) && !table.is_ancestor_of(table));
        assert!(sub.child(1).is_none(), "no level below 3");
        assert!(db.child(0).is_none() && db.child(ObjectId::max_at(1) + 1).is_none());
        assert!(ObjectId::database(0).is_none());
        assert!(!ObjectId(0).is_valid() && !ObjectId(3).is_valid() && sub.is_valid());
    }

    #[test]
    fn every_path_round_trips_through_its_id() {
        // A seeded walk over many paths, including each level's largest number.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |max: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (x >> 33) % max
        };
        for _ in 0..10_000 {
            let path = [
                next(ObjectId::max_at(0)),
                next(ObjectId::max_at(1)),
                next(ObjectId::max_at(2)),
                next(ObjectId::max_at(3)),
            ];
            let mut id = ObjectId::database(path[0]).unwrap();
            for n in &path[1..] {
                id = id.child(*n).unwrap();
            }
            let back: Vec<u64> = id
                .ancestors()
                .iter()
                .rev()
                .chain(std::iter::once(&id))
                .map(|o| o.number())
                .collect();
            assert_eq!(back, path);
        }
        let last = ObjectId::database(ObjectId::max_at(0)).unwrap();
        assert_eq!(
            last.child(ObjectId::max_at(1)).unwrap().number(),
            ObjectId::max_at(1)
        );
    }
}
