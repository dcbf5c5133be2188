//! What checkers ask of each store, worked out once per run: its state and failure domain
//! (zone and host as small numbers, so a full pass over a million regions compares integers,
//! not label strings). A few hundred stores; looked up hundreds of thousands of times.

use std::collections::{BTreeSet, HashMap};

use topology::StoreLoc;

use crate::cluster::{ClusterView, StoreState};
use crate::ids::StoreId;
use crate::placement::loc;

#[derive(Clone, Debug)]
pub struct Fact {
    pub state: StoreState,
    pub zone: u32,
    pub host: u32,
    pub loc: StoreLoc,
}

impl Fact {
    /// Down or Tombstone: its replicas need repair.
    pub fn dead(&self) -> bool {
        matches!(self.state, StoreState::Down | StoreState::Tombstone)
    }

    /// Up or Draining: nothing to repair.
    pub fn serving(&self) -> bool {
        matches!(self.state, StoreState::Up | StoreState::Draining)
    }
}

/// Store ids up to this are looked up in a dense table.
const DENSE_IDS: u64 = 1 << 16;

pub struct StoreFacts {
    dense: Vec<Option<Fact>>,
    sparse: HashMap<StoreId, Fact>,
    /// Zones among Up stores: how far an RG's replicas can spread.
    pub zones_available: usize,
    /// One Up store per zone (the lowest id), for topology's zone check.
    pub zone_reps: Vec<StoreLoc>,
}

impl StoreFacts {
    pub fn of(view: &ClusterView) -> Self {
        let mut zones: HashMap<String, u32> = HashMap::new();
        let mut hosts: HashMap<String, u32> = HashMap::new();
        let mut facts = Self {
            dense: Vec::new(),
            sparse: HashMap::new(),
            zones_available: 0,
            zone_reps: Vec::new(),
        };
        let mut up_zones = BTreeSet::new();
        for s in view.stores.values() {
            let loc = loc(s);
            let n = zones.len() as u32;
            let zone = *zones.entry(loc.zone.clone()).or_insert(n);
            let n = hosts.len() as u32;
            let host = *hosts.entry(loc.host.clone()).or_insert(n);
            if s.state == StoreState::Up && up_zones.insert(zone) {
                facts.zone_reps.push(loc.clone());
            }
            let fact = Fact {
                state: s.state,
                zone,
                host,
                loc,
            };
            if s.id < DENSE_IDS {
                let i = s.id as usize;
                if facts.dense.len() <= i {
                    facts.dense.resize(i + 1, None);
                }
                facts.dense[i] = Some(fact);
            } else {
                facts.sparse.insert(s.id, fact);
            }
        }
        facts.zones_available = up_zones.len();
        facts
    }

    pub fn get(&self, id: StoreId) -> Option<&Fact> {
        if id < DENSE_IDS {
            self.dense.get(id as usize).and_then(Option::as_ref)
        } else {
            self.sparse.get(&id)
        }
    }

    /// A store the view does not know counts as dead.
    pub fn dead(&self, id: StoreId) -> bool {
        self.get(id).is_none_or(Fact::dead)
    }
}
