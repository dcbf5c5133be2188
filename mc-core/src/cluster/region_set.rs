//! The regions of an RG: a sorted vector, not a `BTreeSet`.
//!
//! An RG holds a handful to a few thousand regions, changed one at a time by splits, merges
//! and moves; the view holds a set per RG. A `BTreeSet` of four ids is a 112-byte node; a
//! vector of them is 32 bytes. Reads are the same (in id order), a change shifts at most the
//! RG's ids, and it (de)serializes exactly as the set it replaces (a sequence of ids).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::RegionId;

#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RegionSet(Vec<RegionId>);

impl RegionSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In id order.
    pub fn iter(&self) -> std::slice::Iter<'_, RegionId> {
        self.0.iter()
    }

    pub fn contains(&self, id: &RegionId) -> bool {
        self.0.binary_search(id).is_ok()
    }

    /// Adds `id`; false when it was there.
    pub fn insert(&mut self, id: RegionId) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }

    /// Removes `id`; false when it was not there.
    pub fn remove(&mut self, id: &RegionId) -> bool {
        match self.0.binary_search(id) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    pub fn first(&self) -> Option<&RegionId> {
        self.0.first()
    }

    pub fn last(&self) -> Option<&RegionId> {
        self.0.last()
    }

    pub fn retain(&mut self, f: impl FnMut(&RegionId) -> bool) {
        self.0.retain(f)
    }

    /// Ids in `self` and not in `other`, in id order.
    pub fn difference<'a>(&'a self, other: &'a RegionSet) -> impl Iterator<Item = &'a RegionId> {
        self.0.iter().filter(|id| !other.contains(id))
    }

    pub fn clear(&mut self) {
        self.0.clear()
    }

    pub fn as_slice(&self) -> &[RegionId] {
        &self.0
    }
}

impl FromIterator<RegionId> for RegionSet {
    fn from_iter<I: IntoIterator<Item = RegionId>>(iter: I) -> Self {
        let mut v: Vec<RegionId> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        v.shrink_to_fit();
        RegionSet(v)
    }
}

impl<'a> FromIterator<&'a RegionId> for RegionSet {
    fn from_iter<I: IntoIterator<Item = &'a RegionId>>(iter: I) -> Self {
        iter.into_iter().copied().collect()
    }
}

impl Extend<RegionId> for RegionSet {
    fn extend<I: IntoIterator<Item = RegionId>>(&mut self, iter: I) {
        self.0.extend(iter);
        self.0.sort_unstable();
        self.0.dedup();
    }
}

impl<const N: usize> From<[RegionId; N]> for RegionSet {
    fn from(ids: [RegionId; N]) -> Self {
        ids.into_iter().collect()
    }
}

impl From<std::collections::BTreeSet<RegionId>> for RegionSet {
    fn from(ids: std::collections::BTreeSet<RegionId>) -> Self {
        RegionSet(ids.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a RegionSet {
    type Item = &'a RegionId;
    type IntoIter = std::slice::Iter<'a, RegionId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for RegionSet {
    type Item = RegionId;
    type IntoIter = std::vec::IntoIter<RegionId>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl std::fmt::Debug for RegionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl Serialize for RegionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for RegionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Sorted and deduplicated whatever the input (a record written by a BTreeSet is both).
        Vec::<RegionId>::deserialize(d).map(|v| v.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_set_is_sorted_and_serializes_as_a_btree_set() {
        let mut s: RegionSet = [5, 1, 3, 3].into();
        assert_eq!(s.as_slice(), &[1, 3, 5]);
        assert!(s.insert(4) && !s.insert(4) && s.remove(&1) && !s.remove(&1));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!(s.contains(&4) && !s.contains(&2));
        let set: std::collections::BTreeSet<u64> = [3, 4, 5].into();
        let bytes = postcard::to_allocvec(&set).unwrap();
        assert_eq!(postcard::to_allocvec(&s).unwrap(), bytes);
        assert_eq!(postcard::from_bytes::<RegionSet>(&bytes).unwrap(), s);
        assert_eq!(serde_json::to_string(&s).unwrap(), "[3,4,5]");
        assert_eq!(format!("{s:?}"), format!("{set:?}"));
    }
}
