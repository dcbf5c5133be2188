//! Affinity groups as the view sees them: which groups have regions in more than one RG.
//!
//! The affinity keeper reunites such groups. Finding them by walking every object on each full
//! pass cost 33 ms at a million objects, and looking up every changed RG's objects cost more
//! than the rest of an incremental round; so the view keeps the spread groups as it changes. An
//! object's set of RGs changes only when one of its regions lands in a new RG or the last one
//! leaves an RG (creation, RG split and merge, region moves), and only then is its group looked
//! at again: a heartbeat's new size costs nothing here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use super::dense::FastMap;
use crate::ids::{ObjectId, RgId};

/// An object's regions counted by RG; nearly every object is in one RG, held without an
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectRgs {
    One([(RgId, u32); 1]),
    Many(Vec<(RgId, u32)>),
}

impl ObjectRgs {
    pub fn as_slice(&self) -> &[(RgId, u32)] {
        match self {
            ObjectRgs::One(one) => one,
            ObjectRgs::Many(many) => many,
        }
    }

    pub(super) fn into_vec(self) -> Vec<(RgId, u32)> {
        match self {
            ObjectRgs::One(one) => one.to_vec(),
            ObjectRgs::Many(many) => many,
        }
    }

    pub(super) fn from_vec(v: Vec<(RgId, u32)>) -> Self {
        match v.as_slice() {
            [one] => ObjectRgs::One([*one]),
            _ => ObjectRgs::Many(v),
        }
    }
}

/// Object → root of its affinity group, from the catalog's object tree. Objects not listed
/// are their own group.
#[derive(Debug, Default)]
pub struct Affinity {
    roots: BTreeMap<ObjectId, ObjectId>,
    /// Root → the other objects of its group, worked out on first use.
    members: OnceLock<BTreeMap<ObjectId, Vec<ObjectId>>>,
}

impl PartialEq for Affinity {
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
    }
}

impl Affinity {
    pub fn new(roots: BTreeMap<ObjectId, ObjectId>) -> Self {
        Self {
            roots,
            members: OnceLock::new(),
        }
    }

    pub fn roots(&self) -> &BTreeMap<ObjectId, ObjectId> {
        &self.roots
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub fn root_of(&self, object: ObjectId) -> ObjectId {
        self.roots.get(&object).copied().unwrap_or(object)
    }

    /// The objects of the group rooted at `root`, the root first when it is its own root.
    pub fn members(&self, root: ObjectId) -> impl Iterator<Item = ObjectId> + '_ {
        let inverse = self.members.get_or_init(|| {
            let mut m: BTreeMap<ObjectId, Vec<ObjectId>> = BTreeMap::new();
            for (o, r) in &self.roots {
                if o != r {
                    m.entry(*r).or_default().push(*o);
                }
            }
            m
        });
        let own = self.roots.get(&root).is_none_or(|r| *r == root);
        own.then_some(root)
            .into_iter()
            .chain(inverse.get(&root).into_iter().flatten().copied())
    }

    /// Objects whose root differs between `self` and `other` (a merge of the two sorted maps).
    pub fn moved(&self, other: &Affinity) -> Vec<ObjectId> {
        let (mut a, mut b) = (self.roots.iter().peekable(), other.roots.iter().peekable());
        let mut out = Vec::new();
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => return out,
                (Some((o, r)), None) | (None, Some((o, r))) => {
                    if o != r {
                        out.push(**o);
                    }
                    if a.peek().is_some() {
                        a.next();
                    } else {
                        b.next();
                    }
                }
                (Some((oa, ra)), Some((ob, rb))) => {
                    if oa < ob {
                        if oa != ra {
                            out.push(**oa);
                        }
                        a.next();
                    } else if ob < oa {
                        if ob != rb {
                            out.push(**ob);
                        }
                        b.next();
                    } else {
                        if ra != rb {
                            out.push(**oa);
                        }
                        a.next();
                        b.next();
                    }
                }
            }
        }
    }
}

/// The groups with regions in more than one RG, with those RGs, and the other way round.
#[derive(Clone, Debug, Default)]
pub struct Spread {
    groups: BTreeMap<ObjectId, Vec<RgId>>,
    by_rg: BTreeSet<(RgId, ObjectId)>,
}

impl Spread {
    /// Records the RGs `group` has regions in (sorted, each once).
    pub(super) fn set(&mut self, group: ObjectId, rgs: Vec<RgId>) {
        if let Some(old) = self.groups.remove(&group) {
            for rg in old {
                self.by_rg.remove(&(rg, group));
            }
        }
        if rgs.len() > 1 {
            for rg in &rgs {
                self.by_rg.insert((*rg, group));
            }
            self.groups.insert(group, rgs);
        }
    }

    pub(super) fn clear(&mut self) {
        self.groups.clear();
        self.by_rg.clear();
    }

    /// Every spread group, in id order.
    pub fn groups(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.groups.keys().copied()
    }

    /// The spread groups with regions in `rg`.
    pub fn in_rg(&self, rg: RgId) -> impl Iterator<Item = ObjectId> + '_ {
        self.by_rg
            .range((rg, 0)..=(rg, ObjectId::MAX))
            .map(|(_, g)| *g)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// The RGs of the group rooted at `root`, sorted, each once.
pub fn group_rgs(
    affinity: &Affinity,
    objects: &BTreeMap<ObjectId, ObjectRgs>,
    root: ObjectId,
) -> Vec<RgId> {
    let mut rgs: Vec<RgId> = affinity
        .members(root)
        .filter_map(|o| objects.get(&o))
        .flat_map(|r| r.as_slice().iter().map(|(rg, _)| *rg))
        .collect();
    rgs.sort_unstable();
    rgs.dedup();
    rgs
}

/// The groups with regions in more than one RG, found with one walk over every object (the
/// objects and the affinity map side by side, both in id order: no lookup per object).
pub fn walk_spread(
    affinity: &Affinity,
    objects: &BTreeMap<ObjectId, ObjectRgs>,
) -> BTreeSet<ObjectId> {
    let mut groups = BTreeSet::new();
    if !spread_by_runs(affinity, objects, &mut groups) {
        groups.clear();
        spread_by_map(affinity, objects, &mut groups);
    }
    groups
}

fn with_groups<'a>(
    affinity: &'a Affinity,
    objects: &'a BTreeMap<ObjectId, ObjectRgs>,
) -> impl Iterator<Item = (ObjectId, &'a [(RgId, u32)])> + 'a {
    let mut roots = affinity.roots.iter().peekable();
    objects.iter().map(move |(object, rgs)| {
        while roots.next_if(|(o, _)| *o < object).is_some() {}
        let group = match roots.peek() {
            Some((o, root)) if *o == object => **root,
            _ => *object,
        };
        (group, rgs.as_slice())
    })
}

/// When every group's objects are one run of ids (a table's subtree is one id range, and a
/// group is a table with its indexes), a run ends where the group changes. False when a group
/// comes back after another (groups out of id order): the caller then counts with a map.
fn spread_by_runs(
    affinity: &Affinity,
    objects: &BTreeMap<ObjectId, ObjectRgs>,
    groups: &mut BTreeSet<ObjectId>,
) -> bool {
    // (group, its RG while every object so far is whole in that one RG, or None: spread)
    let mut run: Option<(ObjectId, Option<RgId>)> = None;
    for (group, rgs) in with_groups(affinity, objects) {
        let one = match rgs {
            [(rg, _)] => Some(*rg),
            _ => None,
        };
        match &mut run {
            Some((g, rg)) if *g == group => {
                if *rg != one {
                    *rg = None;
                }
            }
            Some((g, _)) if *g > group => return false,
            _ => {
                if let Some((g, None)) = run {
                    groups.insert(g);
                }
                run = Some((group, one));
            }
        }
    }
    if let Some((g, None)) = run {
        groups.insert(g);
    }
    true
}

/// For any order of groups: the RG of each group seen whole so far kept in a map.
fn spread_by_map(
    affinity: &Affinity,
    objects: &BTreeMap<ObjectId, ObjectRgs>,
    groups: &mut BTreeSet<ObjectId>,
) {
    let mut single: FastMap<ObjectId, RgId> = FastMap::default();
    for (group, rgs) in with_groups(affinity, objects) {
        match (rgs, single.entry(group)) {
            ([(rg, _)], std::collections::hash_map::Entry::Vacant(e)) => {
                e.insert(*rg);
            }
            ([(rg, _)], std::collections::hash_map::Entry::Occupied(e)) if e.get() == rg => {}
            _ => {
                groups.insert(group);
            }
        }
    }
}

/// What the view holds: the map it counts groups by, and the groups it found spread.
#[derive(Clone, Debug, Default)]
pub struct AffinityIndex {
    pub(super) map: Arc<Affinity>,
    pub(super) spread: Spread,
}

impl AffinityIndex {
    /// Looks at `object`'s group again: its set of RGs changed.
    pub(super) fn object_moved(
        &mut self,
        objects: &BTreeMap<ObjectId, ObjectRgs>,
        object: ObjectId,
    ) {
        let root = self.map.root_of(object);
        self.recount(objects, root);
    }

    fn recount(&mut self, objects: &BTreeMap<ObjectId, ObjectRgs>, root: ObjectId) {
        let rgs = group_rgs(&self.map, objects, root);
        self.spread.set(root, rgs);
    }

    /// Counts groups by `map` from now on: only the groups of objects whose root changed are
    /// looked at again, unless that is most of them (the first map a view gets).
    pub(super) fn set_map(&mut self, objects: &BTreeMap<ObjectId, ObjectRgs>, map: Arc<Affinity>) {
        if Arc::ptr_eq(&self.map, &map) {
            return;
        }
        let moved: Vec<ObjectId> = self
            .map
            .moved(&map)
            .into_iter()
            .filter(|o| objects.contains_key(o))
            .collect();
        let old = std::mem::replace(&mut self.map, map);
        if moved.len() > 4_096 {
            self.spread.clear();
            for root in walk_spread(&self.map, objects) {
                self.recount(objects, root);
            }
            return;
        }
        let roots: BTreeSet<ObjectId> = moved
            .iter()
            .flat_map(|o| [old.root_of(*o), self.map.root_of(*o)])
            .collect();
        for root in roots {
            self.recount(objects, root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moved_lists_objects_whose_root_differs() {
        let a = Affinity::new([(2, 1), (3, 1), (5, 5), (7, 6)].into());
        let b = Affinity::new([(2, 1), (3, 3), (4, 1), (7, 6), (9, 8)].into());
        // 3: own root in b; 4: new in b; 5: its own root both ways; 9: new in b.
        assert_eq!(a.moved(&b), vec![3, 4, 9]);
        assert_eq!(b.moved(&a), vec![3, 4, 9]);
        assert_eq!(a.members(1).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(b.members(3).collect::<Vec<_>>(), vec![3]);
        assert_eq!(a.members(6).collect::<Vec<_>>(), vec![6, 7]);
    }
}
