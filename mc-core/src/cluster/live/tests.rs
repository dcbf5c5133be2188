use super::*;
use crate::cluster::RgInfo;
use proto::v1::{KeyRange, RegionEpoch, RegionStats, Replica, ReplicaRole};

fn reg(id: u64, addr: &str) -> RegisterStoreRequest {
    RegisterStoreRequest {
        store_id: id,
        address: addr.into(),
        labels: [("zone".to_string(), "z1".to_string())].into(),
        capacity_bytes: 1,
        version: "t".into(),
    }
}

fn live() -> LiveCluster {
    LiveCluster::new(LivenessConfig {
        disconnected_after_ms: 100,
        down_after_ms: 1_000,
    })
}

#[test]
fn registration_assigns_ids_and_keeps_them_for_an_address() {
    let c = live();
    assert_eq!(c.register(&reg(0, "127.0.0.1:7001"), 0).unwrap(), 1);
    assert_eq!(c.register(&reg(0, "127.0.0.1:7002"), 0).unwrap(), 2);
    assert_eq!(
        c.register(&reg(0, "127.0.0.1:7001"), 5).unwrap(),
        1,
        "a restart without its id gets it back"
    );
    assert_eq!(c.register(&reg(9, "127.0.0.1:7009"), 5).unwrap(), 9);
    assert_eq!(c.register(&reg(0, "127.0.0.1:7010"), 5).unwrap(), 10);
    let err = c.register(&reg(3, "127.0.0.1:7002"), 5).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address 127.0.0.1:7002 is registered by store 2; needs one store per address"
    );
    assert_eq!(
        c.register(&reg(0, "nowhere"), 5).unwrap_err().to_string(),
        "invalid argument `address`: `nowhere` is not HOST:PORT (printable, at most 256 bytes)"
    );
    assert_eq!(
        c.view()
            .store(1)
            .unwrap()
            .labels
            .get("zone")
            .map(String::as_str),
        Some("z1")
    );
}

#[test]
fn silent_stores_go_disconnected_then_down_and_come_back_up() {
    let c = live();
    c.register(&reg(1, "127.0.0.1:7001"), 0).unwrap();
    c.register(&reg(2, "127.0.0.1:7002"), 0).unwrap();
    c.set_state(2, StoreState::Draining).unwrap();
    assert!(c.tick(99).is_empty());
    assert_eq!(c.tick(100), vec![(1, StoreState::Disconnected)]);
    assert_eq!(
        c.tick(1_000),
        vec![(1, StoreState::Down), (2, StoreState::Down)],
        "a silent draining store is reported too"
    );
    assert_eq!(
        c.view().store(2).unwrap().state,
        StoreState::Draining,
        "an SRE's state is kept"
    );
    c.store_heartbeat(
        &StoreHeartbeatRequest {
            store_id: 1,
            stats: None,
            sent_unix_ms: 0,
            ..Default::default()
        },
        1_100,
    )
    .unwrap();
    assert_eq!(c.view().store(1).unwrap().state, StoreState::Up);
    let unknown = c.store_heartbeat(
        &StoreHeartbeatRequest {
            store_id: 7,
            stats: None,
            sent_unix_ms: 0,
            ..Default::default()
        },
        1_100,
    );
    assert_eq!(unknown.unwrap_err().to_string(), "store 7 not found");
}

/// The shape the jobs made of RG 5: members 1-3, regions 10 [10, 11) and 11 [11, 12).
fn made(c: &LiveCluster, members: &[u64], regions: &[u64]) {
    c.restore_rg(crate::cluster::rgs::RgRecord {
        schema: crate::cluster::rgs::SCHEMA_VERSION,
        rg: RgInfo {
            id: 5,
            members: members.iter().map(|s| (*s, Role::Voter)).collect(),
            regions: regions.iter().copied().collect(),
            ..Default::default()
        },
        regions: regions
            .iter()
            .map(|r| RegionInfo {
                id: *r,
                rg: 5,
                object: 1,
                start: vec![*r as u8].into(),
                end: vec![*r as u8 + 1].into(),
                version: 2,
                size_bytes: 0,
                keys: 0,
            })
            .collect(),
    });
}

#[test]
fn rg_heartbeats_fill_in_the_view_and_stale_ones_are_ignored() {
    let c = live();
    for id in 1..=3 {
        c.register(&reg(id, &format!("127.0.0.1:700{id}")), 0)
            .unwrap();
    }
    made(&c, &[1, 2, 3], &[10]);
    let hb = |term, leader, regions: &[u64]| RgHeartbeat {
        rg_id: 5,
        leader_store_id: leader,
        term,
        conf_ver: 2,
        members: (1..=3)
            .map(|s| Replica {
                store_id: s,
                role: ReplicaRole::Voter as i32,
                offline: false,
            })
            .collect(),
        regions: regions
            .iter()
            .map(|r| RegionStats {
                region_id: *r,
                object_id: 1,
                range: Some(KeyRange {
                    start: vec![*r as u8],
                    end: vec![*r as u8 + 1],
                }),
                epoch: Some(RegionEpoch {
                    version: 2,
                    conf_ver: 2,
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    assert!(c.rg_heartbeat(1, &hb(3, 1, &[10]), 5).unwrap());
    assert!(c.rg_heartbeat(2, &hb(4, 2, &[10]), 6).unwrap());
    assert!(
        !c.rg_heartbeat(1, &hb(3, 1, &[10]), 7).unwrap(),
        "a deposed leader's heartbeat is stale"
    );
    let view = c.view();
    let rg = view.rg(5).unwrap();
    assert_eq!((rg.leader, rg.members.len(), rg.heard), (Some(2), 3, true));
    assert_eq!(rg.regions.iter().copied().collect::<Vec<_>>(), vec![10]);
    assert_eq!(view.region(10).unwrap().version, 2);
    // A store cannot report an RG it does not lead, nor one it is no member of: a maximal
    // term from it would freeze the view of the RG.
    c.register(&reg(4, "127.0.0.1:7004"), 8).unwrap();
    let mut forged = hb(u64::MAX, 4, &[10]);
    forged.members.push(Replica {
        store_id: 4,
        role: ReplicaRole::Voter as i32,
        offline: false,
    });
    assert!(
        !c.rg_heartbeat(4, &forged, 9).unwrap(),
        "no member: ignored"
    );
    assert!(
        !c.rg_heartbeat(1, &hb(u64::MAX, 2, &[10]), 9).unwrap(),
        "not the leader: ignored"
    );
    assert_eq!(c.view().rg(5).unwrap().leader, Some(2), "nothing changed");
    assert!(
        c.rg_heartbeat(2, &hb(5, 2, &[10]), 10).unwrap(),
        "the real leader is still heard"
    );
    // A region's object is the MC's: a report naming another keeps the known one (a
    // leader flipping it would move regions between affinity groups at will).
    let mut renamed = hb(5, 2, &[10]);
    renamed.regions[0].object_id = 99;
    assert!(c.rg_heartbeat(2, &renamed, 10).unwrap());
    assert_eq!(c.view().region(10).unwrap().object, 1);
    // A draining store that goes silent is reported once, and stays Draining.
    c.set_state(3, StoreState::Draining).unwrap();
    let late = 10 + c.config.down_after_ms;
    let reported = c.tick(late);
    assert!(reported.contains(&(3, StoreState::Down)), "{reported:?}");
    assert!(!c.tick(late + 1).contains(&(3, StoreState::Down)), "once");
    assert_eq!(c.view().store(3).unwrap().state, StoreState::Draining);
    assert!(c.is_silent(3));
    assert!(c.rg_heartbeat(3, &hb(5, 3, &[10]), late + 2).unwrap());
    c.tick(late + 3);
    assert!(!c.is_silent(3), "heard from again");
    let err = c.set_state(1, StoreState::Tombstone).unwrap_err();
    assert_eq!(
        err.to_string(),
        "store/1 is holding 1 replicas; needs no replicas (drain it first)"
    );
}

#[test]
fn region_traffic_becomes_rates_and_idle_regions_cost_nothing() {
    let c = live();
    c.register(&reg(1, "127.0.0.1:7001"), 0).unwrap();
    made(&c, &[1], &[10, 11]);
    let hb = |read: u64, write: u64| RgHeartbeat {
        rg_id: 5,
        leader_store_id: 1,
        term: 1,
        members: vec![Replica {
            store_id: 1,
            role: ReplicaRole::Voter as i32,
            offline: false,
        }],
        regions: [(10, read, write), (11, 0, 0)]
            .iter()
            .map(|(r, read, write)| RegionStats {
                region_id: *r,
                object_id: 1,
                range: Some(KeyRange {
                    start: vec![*r as u8],
                    end: vec![*r as u8 + 1],
                }),
                read_bytes: *read,
                write_bytes: *write,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    c.rg_heartbeat(1, &hb(0, 0), 1_000).unwrap();
    assert!(c.view().loads.is_empty());
    // 2 s later: 4 MB read and 1 MB written since the last heartbeat.
    c.rg_heartbeat(1, &hb(4_000_000, 1_000_000), 3_000).unwrap();
    let view = c.view();
    assert_eq!(view.loads.len(), 1, "only the busy region has a load entry");
    assert_eq!(view.loads[&10].read_bytes_per_sec, 2_000_000);
    assert_eq!(view.loads[&10].write_bytes_per_sec, 500_000);
    assert_eq!(view.store_loads()[&1].total(), 2_500_000);
    c.rg_heartbeat(1, &hb(0, 0), 4_000).unwrap();
    assert!(c.view().loads.is_empty(), "idle again");
}
