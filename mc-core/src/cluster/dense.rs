//! Per-RG totals kept beside the view, looked up once per RG in a full scheduling pass. RG
//! ids are allocated from 1 upwards, so a vector indexed by id answers without hashing and,
//! in a pass in id order, from memory read in order; ids beyond the vector's reach (tests,
//! hand-made ids) go to a hash map.

use std::collections::HashMap;

/// Ids below this are kept in the vector.
const DENSE_LIMIT: u64 = 1 << 24;

/// Slots per page: pages are allocated as ids reach them, so the map holds no spare capacity
/// beyond one page (a vector grown by doubling could hold as much again).
const PAGE: usize = 1024;

#[derive(Clone, Debug)]
pub struct DenseMap<V> {
    pages: Vec<Option<Box<[V]>>>,
    sparse: HashMap<u64, V>,
}

impl<V> Default for DenseMap<V> {
    fn default() -> Self {
        Self {
            pages: Vec::new(),
            sparse: HashMap::new(),
        }
    }
}

impl<V: Default + Clone + PartialEq> DenseMap<V> {
    /// The value for `id`, or the default when none was set.
    pub fn get(&self, id: u64) -> Option<&V> {
        let v = if id < DENSE_LIMIT {
            let i = id as usize;
            self.pages.get(i / PAGE)?.as_ref().map(|p| &p[i % PAGE])
        } else {
            self.sparse.get(&id)
        }?;
        (*v != V::default()).then_some(v)
    }

    /// The value for `id`, made default-valued first if absent.
    pub fn entry(&mut self, id: u64) -> &mut V {
        if id < DENSE_LIMIT {
            let i = id as usize;
            if self.pages.len() <= i / PAGE {
                self.pages.resize_with(i / PAGE + 1, || None);
            }
            let page = self.pages[i / PAGE]
                .get_or_insert_with(|| (0..PAGE).map(|_| V::default()).collect());
            &mut page[i % PAGE]
        } else {
            self.sparse.entry(id).or_default()
        }
    }

    /// Forgets `id` if its value went back to the default.
    pub fn tidy(&mut self, id: u64) {
        if id >= DENSE_LIMIT && self.sparse.get(&id).is_some_and(|v| *v == V::default()) {
            self.sparse.remove(&id);
        }
    }

    /// Every id with a value other than the default.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        let empty = V::default();
        self.pages
            .iter()
            .enumerate()
            .filter_map(|(n, p)| p.as_ref().map(|p| (n, p)))
            .flat_map(|(n, p)| {
                p.iter()
                    .enumerate()
                    .map(move |(i, v)| ((n * PAGE + i) as u64, v))
            })
            .chain(self.sparse.iter().map(|(k, v)| (*k, v)))
            .filter(move |(_, v)| **v != empty)
    }
}

impl<V: Default + Clone + PartialEq> PartialEq for DenseMap<V> {
    fn eq(&self, other: &Self) -> bool {
        let a: std::collections::BTreeMap<u64, &V> = self.iter().collect();
        let b: std::collections::BTreeMap<u64, &V> = other.iter().collect();
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_ids_read_back_and_defaults_are_absent() {
        let mut m: DenseMap<u64> = DenseMap::default();
        *m.entry(3) += 5;
        *m.entry(1 << 40) += 7;
        assert_eq!(m.get(3), Some(&5));
        assert_eq!(m.get(1 << 40), Some(&7));
        assert_eq!(m.get(2), None);
        assert_eq!(m.get(99), None);
        *m.entry(1 << 40) -= 7;
        m.tidy(1 << 40);
        assert_eq!(m.get(1 << 40), None);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![(3, &5)]);
    }
}

/// A multiply-rotate hash (FxHash's) for u64 keys in hot maps of one pass: ids are not
/// attacker-chosen there, and SipHash's cost showed in full scheduling passes.
#[derive(Clone, Copy, Default)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    /// Mixed down (murmur3's finalizer): ids with zero low bits (`rg << 28`) must not all
    /// land in one bucket.
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A hash map keyed by ids, for one pass's scratch work.
pub type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;
