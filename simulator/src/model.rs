//! The simulated cluster: stores with their failure domains, capacity and bandwidth, and the
//! true shape of every RG and region. Steps change it when they finish; the MC sees it through
//! heartbeats (possibly late). Placement of the initial data follows the policy: the MC's keeps
//! an affinity group (a table with its indexes, a partition) in one RG; the PD-like baseline
//! gives every object its own RG.

use std::collections::{BTreeMap, BTreeSet};

use mc_core::cluster::{ClusterView, RegionInfo, RegionLoad, RgInfo, Role, StoreInfo, StoreState};
use mc_core::jobs::AtomicStep;

use crate::rng::{Rng, zipf_weights};
use crate::scenario::{Scenario, StoreGroup};

#[derive(Clone, Debug)]
pub struct SimStore {
    pub id: u64,
    pub zone: String,
    /// Bytes per second a snapshot moves at.
    pub bandwidth: u64,
    pub cpu: f64,
    pub alive: bool,
    /// When it stopped heartbeating.
    pub died_at: Option<u64>,
}

/// One table of the data set, for traffic and transactions.
#[derive(Clone, Debug)]
pub struct SimTable {
    pub table: u64,
    pub indexes: Vec<u64>,
    pub partitions: Vec<u64>,
    pub read_bps: u64,
    pub write_bps: u64,
}

pub struct Model {
    pub view: ClusterView,
    pub stores: BTreeMap<u64, SimStore>,
    pub tables: Vec<SimTable>,
    /// Object → affinity root (table for a table and its indexes, the partition itself).
    pub affinity: BTreeMap<u64, u64>,
    pub labels: BTreeMap<u64, BTreeMap<String, String>>,
    /// Traffic multipliers by table index (load_change events).
    pub load_factor: Vec<f64>,
    pub replicas: u32,
}

pub const MIB: u64 = 1 << 20;

fn add_store(model: &mut Model, group: &StoreGroup, index_in_group: u32, host_seq: &mut u64) {
    let id = model.stores.keys().max().copied().unwrap_or(0) + 1;
    let zone = group.zones[index_in_group as usize % group.zones.len().max(1)].clone();
    if index_in_group.is_multiple_of(group.stores_per_host.max(1)) {
        *host_seq += 1;
    }
    let mut labels = group.labels.clone();
    labels.insert("zone".into(), zone.clone());
    labels.insert("host".into(), format!("h{host_seq}"));
    model.view.put_store(StoreInfo {
        id,
        address: format!("sim-{id}"),
        state: StoreState::Up,
        labels,
        capacity_bytes: group.capacity_gib << 30,
    });
    model.stores.insert(
        id,
        SimStore {
            id,
            zone,
            bandwidth: group.bandwidth_mib * MIB,
            cpu: group.cpu,
            alive: true,
            died_at: None,
        },
    );
}

impl Model {
    pub fn build(s: &Scenario, policy: &str, rng: &mut Rng) -> Self {
        let mut m = Model {
            view: ClusterView::default(),
            stores: BTreeMap::new(),
            tables: Vec::new(),
            affinity: BTreeMap::new(),
            labels: BTreeMap::new(),
            load_factor: Vec::new(),
            replicas: s.data.replicas,
        };
        let mut host_seq = 0;
        for g in &s.cluster.stores {
            for i in 0..g.count {
                add_store(&mut m, g, i, &mut host_seq);
            }
        }
        let eligible: Vec<u64> = if s.data.start == "skewed" {
            m.stores
                .keys()
                .copied()
                .take(s.data.skew_stores as usize)
                .collect()
        } else {
            m.stores.keys().copied().collect()
        };
        // Objects: database 1, tables under it, indexes and partitions under each table.
        let db = topology::ObjectId::database(1).expect("database 1");
        let mut next_table = 0u64;
        let mut next_rg = 0u64;
        let mut next_region = 0u64;
        let mut placement_turn = 0usize;
        for group in &s.data.tables {
            for _ in 0..group.count {
                next_table += 1;
                let table = db.child(next_table).expect("table id");
                let indexes: Vec<u64> = (1..=group.indexes as u64)
                    .map(|i| table.child(i).expect("index id").0)
                    .collect();
                let partitions: Vec<u64> = (1..=group.partitions as u64)
                    .map(|p| {
                        table
                            .child(group.indexes as u64 + p)
                            .expect("partition id")
                            .0
                    })
                    .collect();
                let mut groups: Vec<Vec<u64>> = Vec::new();
                let mut main = vec![table.0];
                main.extend(&indexes);
                for o in &main {
                    m.affinity.insert(*o, table.0);
                }
                for p in &partitions {
                    m.affinity.insert(*p, *p);
                }
                if policy == "pd" {
                    groups.extend(main.iter().map(|o| vec![*o]));
                    groups.extend(partitions.iter().map(|p| vec![*p]));
                } else {
                    groups.push(main.clone());
                    groups.extend(partitions.iter().map(|p| vec![*p]));
                }
                if !group.labels.is_empty() {
                    for o in main.iter().chain(&partitions) {
                        m.labels.insert(*o, group.labels.clone());
                    }
                }
                for objects in groups {
                    next_rg += 1;
                    let members = m.place(&eligible, &group.labels, placement_turn);
                    placement_turn += 1;
                    let mut regions = BTreeSet::new();
                    for o in &objects {
                        let ranges =
                            mc_core::objects::plan::region_ranges(*o, group.regions_per_object);
                        for (start, end) in ranges {
                            next_region += 1;
                            let span = group.region_mib_max - group.region_mib_min;
                            let size = (group.region_mib_min + rng.below(span + 1)) * MIB;
                            m.view.put_region(RegionInfo {
                                keys: 0,
                                id: next_region,
                                rg: next_rg,
                                object: *o,
                                start: start.into(),
                                end: end.into(),
                                version: 1,
                                size_bytes: size,
                            });
                            regions.insert(next_region);
                        }
                    }
                    m.view.put_rg(RgInfo {
                        term: 0,
                        conf_ver: 0,
                        applied_index: 0,
                        id: next_rg,
                        members: members.iter().map(|s| (*s, Role::Voter)).collect(),
                        // Leaders spread like the replicas: a balanced start is balanced.
                        leader: members.get(placement_turn % members.len().max(1)).copied(),
                        regions: regions.into(),
                        offline: false,
                        // The simulator's view is what its heartbeats said.
                        heard: true,
                    });
                }
                m.tables.push(SimTable {
                    table: table.0,
                    indexes,
                    partitions,
                    read_bps: group.read_bps,
                    write_bps: group.write_bps,
                });
                m.load_factor.push(1.0);
            }
        }
        let weights = zipf_weights(m.tables.len(), s.workload.skew);
        for (i, w) in weights.iter().enumerate() {
            m.load_factor[i] = w * m.tables.len() as f64;
        }
        m.refresh_loads();
        m
    }

    /// `replicas` stores for a new RG among `eligible`: distinct hosts, zones spread, round
    /// robin from `turn` so the start is balanced (or packed onto the eligible few).
    fn place(&self, eligible: &[u64], labels: &BTreeMap<String, String>, turn: usize) -> Vec<u64> {
        let usable: Vec<u64> = eligible
            .iter()
            .copied()
            .filter(|s| {
                let info = &self.view.stores[s];
                labels.iter().all(|(k, v)| info.labels.get(k) == Some(v))
            })
            .collect();
        let n = usable.len().max(1);
        let mut chosen: Vec<u64> = Vec::new();
        let mut zones = BTreeSet::new();
        let mut hosts = BTreeSet::new();
        for pass in 0..2 {
            for k in 0..n {
                if chosen.len() == self.replicas as usize {
                    break;
                }
                let Some(s) = usable.get((turn * self.replicas as usize + k) % n) else {
                    continue;
                };
                let info = &self.view.stores[s];
                let zone = info.labels.get("zone").cloned().unwrap_or_default();
                let host = info.labels.get("host").cloned().unwrap_or_default();
                if chosen.contains(s) || hosts.contains(&host) {
                    continue;
                }
                if pass == 0 && zones.contains(&zone) {
                    continue;
                }
                zones.insert(zone);
                hosts.insert(host);
                chosen.push(*s);
            }
        }
        chosen
    }

    /// Region traffic from the tables' rates: the table and its indexes share the table's
    /// traffic evenly, each object's regions evenly.
    pub fn refresh_loads(&mut self) {
        let mut by_object: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for r in self.view.regions.values() {
            by_object.entry(r.object).or_default().push(r.id);
        }
        self.view.clear_loads();
        for (i, t) in self.tables.iter().enumerate() {
            let objects: Vec<u64> = std::iter::once(t.table)
                .chain(t.indexes.iter().copied())
                .chain(t.partitions.iter().copied())
                .collect();
            let f = self.load_factor[i] / objects.len() as f64;
            for o in objects {
                let regions = by_object.get(&o).cloned().unwrap_or_default();
                if regions.is_empty() {
                    continue;
                }
                let share = f / regions.len() as f64;
                for r in regions {
                    let load = RegionLoad {
                        read_bytes_per_sec: (t.read_bps as f64 * share) as u64,
                        write_bytes_per_sec: (t.write_bps as f64 * share) as u64,
                    };
                    if load.total() > 0 {
                        self.view.set_load(r, load);
                    }
                }
            }
        }
    }

    /// Regions written to grow by `growth` of what was written over `secs`; each region
    /// that has reached the size stores report split keys at gets one, the middle of its
    /// range (a store's is the middle of its data, from RocksDB's size estimates).
    pub fn grow(&mut self, growth: f64, secs: u64) {
        let grown: Vec<(u64, u64)> = self
            .view
            .loads
            .iter()
            .map(|(r, l)| {
                (
                    *r,
                    (l.write_bytes_per_sec as f64 * secs as f64 * growth) as u64,
                )
            })
            .filter(|(_, b)| *b > 0)
            .collect();
        for (region, bytes) in grown {
            let Some(info) = self.view.update_region(region, |r| {
                // Keys in proportion, at the region's mean key size.
                let mean = r.size_bytes.checked_div(r.keys).unwrap_or(1024).max(1);
                r.size_bytes += bytes;
                r.keys += bytes / mean;
                (r.size_bytes, r.start.clone(), r.end.clone())
            }) else {
                continue;
            };
            let (size, start, end) = info;
            if size >= SPLIT_KEY_MIN_BYTES
                && !self.view.split_keys.contains_key(&region)
                && let Some(mid) = mid_key(&start, &end)
            {
                self.view.set_split_key(region, mid);
            }
        }
    }

    pub fn alive(&self, store: u64) -> bool {
        self.stores.get(&store).is_some_and(|s| s.alive)
    }

    /// A new leader for every RG whose leader is dead or gone, when a majority of its voters
    /// lives (an election); none otherwise.
    pub fn elect(&mut self) {
        let alive: BTreeSet<u64> = self
            .stores
            .values()
            .filter(|s| s.alive)
            .map(|s| s.id)
            .collect();
        let elected: Vec<(u64, Option<u64>)> = self
            .view
            .rgs
            .values()
            .filter_map(|rg| {
                let voters: Vec<u64> = rg.voters().collect();
                let live: Vec<u64> = voters
                    .iter()
                    .copied()
                    .filter(|v| alive.contains(v))
                    .collect();
                let ok = rg
                    .leader
                    .is_some_and(|l| alive.contains(&l) && voters.contains(&l));
                let leader = (live.len() > voters.len() / 2).then(|| live[0]);
                (!ok && rg.leader != leader).then_some((rg.id, leader))
            })
            .collect();
        for (rg, leader) in elected {
            self.view.update_rg(rg, |info| info.leader = leader);
        }
    }

    /// Applies what a succeeded step did, as the step table says.
    pub fn apply(&mut self, step: &AtomicStep) {
        if let Some(spec) = step.spec() {
            spec.simulate(&mut self.view);
        }
    }
}

/// Regions from this size on get split keys, as stores report them.
const SPLIT_KEY_MIN_BYTES: u64 = 8 << 20;

/// A key strictly between `start` and `end` (empty `end`: no upper bound), near the middle
/// of the range read as big-endian fractions; None when there is none.
pub fn mid_key(start: &[u8], end: &[u8]) -> Option<Vec<u8>> {
    let n = start.len().max(end.len()) + 1;
    let a: Vec<u32> = (0..n)
        .map(|i| u32::from(*start.get(i).unwrap_or(&0)))
        .collect();
    let b: Vec<u32> = if end.is_empty() {
        vec![0xff; n]
    } else {
        (0..n)
            .map(|i| u32::from(*end.get(i).unwrap_or(&0)))
            .collect()
    };
    // (a + b) / 2, digit by digit in base 256: the sum first, then halve from the top.
    let mut sum = vec![0u32; n];
    let mut carry = 0;
    for i in (0..n).rev() {
        let d = a[i] + b[i] + carry;
        sum[i] = d % 256;
        carry = d / 256;
    }
    let mut mid = Vec::with_capacity(n);
    let mut rem = carry;
    for d in sum {
        let v = rem * 256 + d;
        mid.push((v / 2) as u8);
        rem = v % 2;
    }
    while mid.last() == Some(&0) {
        mid.pop();
    }
    let below_end = end.is_empty() || mid.as_slice() < end;
    (mid.as_slice() > start && below_end).then_some(mid)
}

#[cfg(test)]
mod mid_tests {
    use super::mid_key;

    #[test]
    fn the_middle_key_lies_strictly_inside_the_range() {
        assert_eq!(mid_key(b"a", b"c"), Some(b"b".to_vec()));
        let m = mid_key(b"a", b"b").unwrap();
        assert!(m.as_slice() > b"a".as_slice() && m.as_slice() < b"b".as_slice());
        let m = mid_key(b"t1", b"").unwrap();
        assert!(m.as_slice() > b"t1".as_slice());
        // Halving again and again keeps finding keys.
        let (mut lo, hi) = (b"x".to_vec(), b"y".to_vec());
        for _ in 0..40 {
            let m = mid_key(&lo, &hi).unwrap();
            assert!(m > lo && m < hi);
            lo = m;
        }
        assert_eq!(mid_key(b"a", b"a"), None);
        assert_eq!(mid_key(b"a", b"a\0"), None);
    }
}
