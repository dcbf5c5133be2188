//! The route index: regions by start key, so a key's region is found in O(log n) instead of
//! a pass over every region, and a revisioned log of which regions' routes changed, so a SQL
//! engine's route cache is pushed what changed (a leader, a split, a merge, a move, a drop)
//! from the revision it last saw (`WatchRoutes`) instead of polling.
//!
//! It is kept in step with the view by RG: whoever changes an RG in the view (a heartbeat, a
//! step outcome, a job's effect, a restore) syncs that RG here, which compares each of its
//! regions' route with the one last published and logs only those that differ. The log
//! holds region ids, not routes: a watcher reads each changed region's current route from the
//! view, so a region that changed ten times since its revision is sent once, as it is now.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Bound;

use tokio::sync::watch;

use crate::cluster::dense::DenseMap;
use crate::cluster::view::{ClusterView, RegionInfo};
use crate::ids::{RegionId, RgId};

/// Changes kept for watchers that fall behind; one further behind gets every route again.
const LOG_CAPACITY: usize = 200_000;

/// What changed since a revision.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteChanges {
    /// The revision the changes bring the watcher to.
    pub revision: u64,
    /// The watcher's revision is older than the log: it must take every route again.
    pub reset: bool,
    /// Regions whose route changed (or, with `reset`, every region), in id order.
    pub changed: Vec<RegionId>,
    /// Regions that are gone.
    pub removed: Vec<RegionId>,
}

/// What was last published of a region: its RG and its route's fingerprint (the default:
/// nothing published). 16 bytes a region; the start key lives in `by_start` only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Published {
    rg: RgId,
    fingerprint: u64,
}

pub struct RouteIndex {
    by_start: BTreeMap<super::Key, RegionId>,
    published: DenseMap<Published>,
    count: usize,
    revision: u64,
    /// (revision, region): the region's route changed (or it went) at that revision.
    log: VecDeque<(u64, RegionId)>,
    notify: watch::Sender<u64>,
}

impl Default for RouteIndex {
    fn default() -> Self {
        Self {
            by_start: BTreeMap::new(),
            published: DenseMap::default(),
            count: 0,
            revision: 0,
            log: VecDeque::new(),
            notify: watch::channel(0).0,
        }
    }
}

/// Everything a route says that a client acts on: where the region is, its range and epoch,
/// its RG's members and leader. Never 0 (0 marks nothing published).
fn fingerprint(view: &ClusterView, r: &RegionInfo) -> u64 {
    let mut h = DefaultHasher::new();
    (r.rg, &r.start, &r.end, r.version, r.object).hash(&mut h);
    if let Some(g) = view.rg(r.rg) {
        (g.leader, g.term, g.conf_ver, g.offline).hash(&mut h);
        for (s, role) in &g.members {
            (s, *role as u8).hash(&mut h);
        }
    }
    h.finish().max(1)
}

impl RouteIndex {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Numbers revisions from `revision` on, before the first route is published: each MC
    /// term starts above the last (the term in the high bits), so revisions of different
    /// terms never mean the same thing and one from an older term is older than the log.
    pub fn start_at(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
        self.log.clear();
        self.notify.send_replace(self.revision);
    }

    /// Woken with the new revision whenever a route changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// The region whose range holds `key`, if the view has one.
    pub fn region_at<'v>(&self, view: &'v ClusterView, key: &[u8]) -> Option<&'v RegionInfo> {
        let (_, id) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        view.region(*id).filter(|r| r.contains(key))
    }

    /// Regions starting in `[start, end)` (end empty: unbounded), in key order.
    pub fn regions_in<'v>(
        &self,
        view: &'v ClusterView,
        start: &[u8],
        end: &[u8],
    ) -> Vec<&'v RegionInfo> {
        self.starting_in(view, start, end).collect()
    }

    fn starting_in<'a, 'v: 'a>(
        &'a self,
        view: &'v ClusterView,
        start: &'a [u8],
        end: &'a [u8],
    ) -> impl Iterator<Item = &'v RegionInfo> + 'a {
        let upper = if end.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        self.by_start
            .range::<[u8], _>((Bound::Included(start), upper))
            .filter_map(|(_, id)| view.region(*id))
    }

    /// A region whose range meets `[start, end)` (end empty: unbounded): the one holding
    /// `start`, else the first starting inside.
    pub fn overlapping<'v>(
        &self,
        view: &'v ClusterView,
        start: &[u8],
        end: &[u8],
    ) -> Option<&'v RegionInfo> {
        self.region_at(view, start)
            .or_else(|| self.starting_in(view, start, end).next())
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Brings the index in line with the view for the RGs `rgs` (those a change touched), and
    /// for the regions the view's journal names (removed, moved, given another start): their
    /// routes are compared with what was published, and those that differ are logged at a
    /// new revision.
    pub fn sync(&mut self, view: &mut ClusterView, rgs: impl IntoIterator<Item = RgId>) {
        let before = self.revision;
        for (id, start) in view.take_route_journal() {
            let now = view.region(id);
            if self.by_start.get(start.as_slice()) == Some(&id)
                && now.is_none_or(|r| r.start != start)
            {
                self.by_start.remove(start.as_slice());
            }
            match now {
                Some(r) if view.rg(r.rg).is_some_and(|g| g.regions.contains(&id)) => {
                    let r = r.clone();
                    self.put(view, &r);
                }
                Some(_) => {}
                None => self.remove(id),
            }
        }
        for rg in rgs {
            self.sync_rg(view, rg);
        }
        if self.revision != before {
            self.notify.send_replace(self.revision);
        }
    }

    /// Every RG of the view, and every published region the view no longer has (a new
    /// term's restore).
    pub fn sync_all(&mut self, view: &mut ClusterView) {
        let gone: Vec<RegionId> = self
            .published
            .iter()
            .map(|(id, _)| id)
            .filter(|id| view.region(*id).is_none())
            .collect();
        if !gone.is_empty() {
            self.by_start
                .retain(|start, id| view.region(*id).is_some_and(|r| r.start == *start));
            for id in gone {
                self.remove(id);
            }
        }
        let rgs: Vec<RgId> = view.rgs.keys().copied().collect();
        self.sync(view, rgs);
    }

    fn sync_rg(&mut self, view: &ClusterView, rg: RgId) {
        let Some(g) = view.rg(rg) else { return };
        for id in g.regions.iter() {
            if let Some(r) = view.region(*id).filter(|r| r.rg == rg) {
                self.put(view, r);
            }
        }
    }

    fn bump(&mut self, region: RegionId) {
        self.revision += 1;
        self.log.push_back((self.revision, region));
        while self.log.len() > LOG_CAPACITY {
            self.log.pop_front();
        }
    }

    fn put(&mut self, view: &ClusterView, r: &RegionInfo) {
        let now = Published {
            rg: r.rg,
            fingerprint: fingerprint(view, r),
        };
        let slot = self.published.entry(r.id);
        if *slot == now {
            return;
        }
        if *slot == Published::default() {
            self.count += 1;
        }
        *slot = now;
        if self.by_start.get(&r.start) != Some(&r.id) {
            self.by_start.insert(r.start.clone(), r.id);
        }
        self.bump(r.id);
    }

    /// Unpublishes a region the view no longer has (its start key was dropped by the caller).
    fn remove(&mut self, region: RegionId) {
        if self.published.get(region).is_none() {
            return;
        }
        *self.published.entry(region) = Published::default();
        self.published.tidy(region);
        self.count -= 1;
        self.bump(region);
    }

    /// What changed after `revision`: each region once, as it is now. A revision older than
    /// the log (or 0, a first call) resets: every current region is `changed`.
    pub fn changes_since(&self, revision: u64) -> RouteChanges {
        let oldest = self
            .log
            .front()
            .map(|(r, _)| *r)
            .unwrap_or(self.revision + 1);
        if revision == 0 || revision + 1 < oldest || revision > self.revision {
            let mut changed: Vec<RegionId> = self.published.iter().map(|(id, _)| id).collect();
            changed.sort_unstable();
            return RouteChanges {
                revision: self.revision,
                reset: true,
                changed,
                removed: vec![],
            };
        }
        let start = self.log.partition_point(|(r, _)| *r <= revision);
        let touched: BTreeSet<RegionId> = self.log.range(start..).map(|(_, id)| *id).collect();
        let (changed, removed) = touched
            .into_iter()
            .partition(|id| self.published.get(*id).is_some());
        RouteChanges {
            revision: self.revision,
            reset: false,
            changed,
            removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::{RgInfo, Role};

    fn view_with(regions: &[(RegionId, RgId, &[u8], &[u8])]) -> ClusterView {
        let mut v = ClusterView::default();
        v.keep_route_journal();
        for (id, rg, start, end) in regions {
            if !v.rgs.contains_key(rg) {
                v.put_rg(RgInfo {
                    id: *rg,
                    members: [(1, Role::Voter)].into(),
                    leader: Some(1),
                    ..Default::default()
                });
            }
            v.update_rg(*rg, |x| x.regions.insert(*id));
            v.put_region(RegionInfo {
                id: *id,
                rg: *rg,
                start: start.to_vec().into(),
                end: end.to_vec().into(),
                version: 1,
                ..Default::default()
            });
        }
        v
    }

    #[test]
    fn a_key_finds_its_region_and_gaps_find_none() {
        let mut v = view_with(&[(1, 1, b"a", b"c"), (2, 1, b"c", b"f"), (3, 2, b"m", b"")]);
        let mut ix = RouteIndex::default();
        ix.sync_all(&mut v);
        assert_eq!(ix.region_at(&v, b"a").map(|r| r.id), Some(1));
        assert_eq!(ix.region_at(&v, b"bzz").map(|r| r.id), Some(1));
        assert_eq!(ix.region_at(&v, b"c").map(|r| r.id), Some(2));
        assert_eq!(ix.region_at(&v, b"g").map(|r| r.id), None, "a gap");
        assert_eq!(ix.region_at(&v, b"\x00").map(|r| r.id), None);
        assert_eq!(ix.region_at(&v, b"zzzz").map(|r| r.id), Some(3));
        let ids: Vec<_> = ix.regions_in(&v, b"b", b"n").iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![2, 3]);
        // Overlaps: one holding the start, one starting inside, none in a gap.
        let hit = |s: &[u8], e: &[u8]| ix.overlapping(&v, s, e).map(|r| r.id);
        assert_eq!(hit(b"b", b"bb"), Some(1));
        assert_eq!(hit(b"g", b"n"), Some(3));
        assert_eq!(hit(b"f", b"m"), None, "[f, m) is free");
        assert_eq!(hit(b"g", b""), Some(3), "unbounded end");
    }

    #[test]
    fn a_revision_of_an_older_term_gets_every_route_again() {
        let mut v = view_with(&[(1, 1, b"a", b"c"), (2, 1, b"c", b"f")]);
        let mut old = RouteIndex::default();
        old.start_at(1 << 32);
        old.sync_all(&mut v);
        let watcher_at = old.revision();
        // The next term's index, restored from the same shapes.
        let mut new = RouteIndex::default();
        new.start_at(2 << 32);
        new.sync_all(&mut v);
        let c = new.changes_since(watcher_at);
        assert!(c.reset, "{c:?}");
        assert_eq!(c.changed, vec![1, 2]);
        assert!(!new.changes_since(new.revision()).reset);
    }

    #[test]
    fn changes_are_logged_once_per_region_and_gone_ones_reported() {
        let mut v = view_with(&[(1, 1, b"a", b"c"), (2, 1, b"c", b"f")]);
        let mut ix = RouteIndex::default();
        ix.sync_all(&mut v);
        let rev = ix.revision();
        // Nothing changed: nothing logged.
        ix.sync(&mut v, [1]);
        assert_eq!(ix.revision(), rev);
        // A leader change touches every region of the RG; a split adds one; a drop removes.
        v.update_rg(1, |x| {
            x.leader = Some(2);
        });
        ix.sync(&mut v, [1]);
        v.update_region(2, |x| {
            x.end = b"d".to_vec().into();
        });
        v.update_region(2, |x| {
            x.version = 2;
        });
        v.put_region(RegionInfo {
            id: 4,
            rg: 1,
            start: b"d".to_vec().into(),
            end: b"f".to_vec().into(),
            version: 2,
            ..Default::default()
        });
        v.update_rg(1, |x| {
            x.regions.insert(4);
        });
        v.remove_region(1);
        v.update_rg(1, |x| {
            x.regions.remove(&1);
        });
        ix.sync(&mut v, [1]);
        let c = ix.changes_since(rev);
        assert!(!c.reset);
        assert_eq!(c.changed, vec![2, 4]);
        assert_eq!(c.removed, vec![1]);
        assert_eq!(c.revision, ix.revision());
        assert_eq!(ix.region_at(&v, b"a"), None);
        assert_eq!(ix.region_at(&v, b"e").map(|r| r.id), Some(4));
        // Up to date: nothing; too old or 0: everything again.
        assert_eq!(
            ix.changes_since(ix.revision()).changed,
            Vec::<RegionId>::new()
        );
        let all = ix.changes_since(0);
        assert!(all.reset);
        assert_eq!(all.changed, vec![2, 4]);
    }

    #[test]
    fn a_region_moved_to_another_rg_is_published_there() {
        let mut v = view_with(&[(1, 1, b"a", b"c"), (2, 1, b"c", b"f")]);
        let mut ix = RouteIndex::default();
        ix.sync_all(&mut v);
        let rev = ix.revision();
        // SplitRg: region 2 moves to RG 9.
        v.update_rg(1, |x| {
            x.regions.remove(&2);
        });
        v.put_rg(RgInfo {
            id: 9,
            members: [(1, Role::Voter)].into(),
            leader: Some(1),
            regions: [2].into(),
            ..Default::default()
        });
        v.update_region(2, |x| {
            x.rg = 9;
        });
        ix.sync(&mut v, [1]);
        let c = ix.changes_since(rev);
        assert_eq!((c.changed, c.removed), (vec![2], vec![]));
        assert_eq!(ix.region_at(&v, b"d").map(|r| r.rg), Some(9));
    }
}
