//! An RG's members: store → role, in store order, held inside the RG for up to six of them
//! (every RG has three or five voters, plus a learner while one moves). A pass over a million
//! RGs then reads each RG's members where the RG is, instead of following a pointer to a map
//! node per RG, and an RG costs one allocation fewer. More than six spill to a vector.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::StoreId;

/// A member's part in its RG's votes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Voter,
    Learner,
}

const INLINE: usize = 6;

#[derive(Clone, Default)]
pub struct Members {
    len: u8,
    ids: [StoreId; INLINE],
    roles: [Role; INLINE],
    /// All of them, once there are more than `INLINE` (then `len` is 0).
    spill: Vec<(StoreId, Role)>,
}

impl Members {
    pub fn len(&self) -> usize {
        if self.spill.is_empty() {
            self.len as usize
        } else {
            self.spill.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn position(&self, id: StoreId) -> Result<usize, usize> {
        if self.spill.is_empty() {
            self.ids[..self.len as usize].binary_search(&id)
        } else {
            self.spill.binary_search_by_key(&id, |(s, _)| *s)
        }
    }

    pub fn contains_key(&self, id: &StoreId) -> bool {
        self.position(*id).is_ok()
    }

    pub fn get(&self, id: &StoreId) -> Option<&Role> {
        let i = self.position(*id).ok()?;
        Some(if self.spill.is_empty() {
            &self.roles[i]
        } else {
            &self.spill[i].1
        })
    }

    pub fn get_mut(&mut self, id: &StoreId) -> Option<&mut Role> {
        let i = self.position(*id).ok()?;
        Some(if self.spill.is_empty() {
            &mut self.roles[i]
        } else {
            &mut self.spill[i].1
        })
    }

    /// Adds or replaces a member; returns its previous role.
    pub fn insert(&mut self, id: StoreId, role: Role) -> Option<Role> {
        match self.position(id) {
            Ok(_) => Some(std::mem::replace(self.get_mut(&id).expect("present"), role)),
            Err(i) if !self.spill.is_empty() => {
                self.spill.insert(i, (id, role));
                None
            }
            Err(i) if (self.len as usize) < INLINE => {
                let n = self.len as usize;
                self.ids.copy_within(i..n, i + 1);
                self.roles.copy_within(i..n, i + 1);
                self.ids[i] = id;
                self.roles[i] = role;
                self.len += 1;
                None
            }
            Err(i) => {
                let mut all: Vec<(StoreId, Role)> = self.iter().map(|(s, r)| (*s, *r)).collect();
                all.insert(i, (id, role));
                *self = Self {
                    spill: all,
                    ..Self::default()
                };
                None
            }
        }
    }

    pub fn remove(&mut self, id: &StoreId) -> Option<Role> {
        let i = self.position(*id).ok()?;
        if !self.spill.is_empty() {
            let (_, role) = self.spill.remove(i);
            if self.spill.len() <= INLINE {
                let all = std::mem::take(&mut self.spill);
                *self = all.into_iter().collect();
            }
            return Some(role);
        }
        let n = self.len as usize;
        let role = self.roles[i];
        self.ids.copy_within(i + 1..n, i);
        self.roles.copy_within(i + 1..n, i);
        self.len -= 1;
        Some(role)
    }

    /// (store, role) pairs in store order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&StoreId, &Role)> + '_> {
        if self.spill.is_empty() {
            let n = self.len as usize;
            Box::new(self.ids[..n].iter().zip(self.roles[..n].iter()))
        } else {
            Box::new(self.spill.iter().map(|(s, r)| (s, r)))
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &StoreId> + '_ {
        self.iter().map(|(s, _)| s)
    }

    pub fn values(&self) -> impl Iterator<Item = &Role> + '_ {
        self.iter().map(|(_, r)| r)
    }

    /// The members' stores, without boxing: the hot loops of the checkers use it.
    pub fn stores(&self) -> &[StoreId] {
        if self.spill.is_empty() {
            &self.ids[..self.len as usize]
        } else {
            &[]
        }
    }

    /// Whether the stores are all inline (see `stores`).
    pub fn inline(&self) -> bool {
        self.spill.is_empty()
    }
}

/// Equal when they hold the same members (slots past the length are not compared).
impl PartialEq for Members {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Members {}

impl FromIterator<(StoreId, Role)> for Members {
    fn from_iter<I: IntoIterator<Item = (StoreId, Role)>>(iter: I) -> Self {
        let mut m = Members::default();
        for (s, r) in iter {
            m.insert(s, r);
        }
        m
    }
}

impl<const N: usize> From<[(StoreId, Role); N]> for Members {
    fn from(items: [(StoreId, Role); N]) -> Self {
        items.into_iter().collect()
    }
}

impl Extend<(StoreId, Role)> for Members {
    fn extend<I: IntoIterator<Item = (StoreId, Role)>>(&mut self, iter: I) {
        for (s, r) in iter {
            self.insert(s, r);
        }
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = (&'a StoreId, &'a Role);
    type IntoIter = Box<dyn Iterator<Item = (&'a StoreId, &'a Role)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// As a map {store: role}: the catalog's RG records were written that way.
impl Serialize for Members {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<StoreId, Role>::deserialize(d)?;
        Ok(map.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_behave_as_a_sorted_map_inline_and_spilled() {
        let mut m = Members::default();
        let mut model = std::collections::BTreeMap::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = x % 12;
            let role = if x.is_multiple_of(3) {
                Role::Learner
            } else {
                Role::Voter
            };
            if x % 5 < 3 {
                assert_eq!(m.insert(id, role), model.insert(id, role));
            } else {
                assert_eq!(m.remove(&id), model.remove(&id));
            }
            assert_eq!(m.len(), model.len());
            let pairs: Vec<(u64, Role)> = m.iter().map(|(s, r)| (*s, *r)).collect();
            let want: Vec<(u64, Role)> = model.iter().map(|(s, r)| (*s, *r)).collect();
            assert_eq!(pairs, want);
            assert_eq!(m.get(&id), model.get(&id));
        }
        // The catalog's JSON form is the map's.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, serde_json::to_string(&model).unwrap());
        assert_eq!(serde_json::from_str::<Members>(&json).unwrap(), m);
    }
}
