//! A store that lies in its heartbeats: what the live cluster takes from it and what it does
//! not. The RG the jobs made has members 1, 2, 3 and regions 10 [a, m) and 11 [m, ∞).

use crate::step;
use proto::v1::{
    KeyRange, RegionStats, RegisterStoreRequest, Replica, ReplicaRole, RgHeartbeat,
    StoreHeartbeatRequest, StoreStats,
};

use super::*;
use crate::cluster::RgInfo;
use crate::cluster::evidence::EvidenceConfig;
use crate::cluster::rgs::{RgRecord, SCHEMA_VERSION};

const RG: u64 = 5;

fn cluster() -> LiveCluster {
    let c = LiveCluster::new(LivenessConfig {
        disconnected_after_ms: 10_000,
        down_after_ms: 100_000,
    })
    .with_evidence(EvidenceConfig {
        grace_ms: 1_000,
        suspect_after: 5,
        window_ms: 60_000,
        forgive_ms: 600_000,
        max_store_capacity_bytes: 1 << 50,
    });
    for id in 1..=4 {
        c.register(
            &RegisterStoreRequest {
                store_id: id,
                address: format!("127.0.0.1:70{id:02}"),
                capacity_bytes: 1 << 30,
                ..Default::default()
            },
            0,
        )
        .unwrap();
    }
    let region = |id, start: &[u8], end: &[u8]| RegionInfo {
        id,
        rg: RG,
        object: 7,
        start: start.to_vec().into(),
        end: end.to_vec().into(),
        version: 1,
        size_bytes: 0,
        keys: 0,
    };
    c.restore_rg(RgRecord {
        schema: SCHEMA_VERSION,
        rg: RgInfo {
            id: RG,
            members: [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)]
                .into_iter()
                .collect(),
            leader: Some(1),
            regions: [10, 11].into_iter().collect(),
            term: 4,
            conf_ver: 3,
            ..Default::default()
        },
        regions: vec![region(10, b"a", b"m"), region(11, b"m", b"")],
    });
    c
}

fn replica(store: u64) -> Replica {
    Replica {
        store_id: store,
        role: ReplicaRole::Voter as i32,
        offline: false,
    }
}

fn stats(id: u64, start: &[u8], end: &[u8]) -> RegionStats {
    RegionStats {
        region_id: id,
        object_id: 7,
        range: Some(KeyRange {
            start: start.to_vec(),
            end: end.to_vec(),
        }),
        size_bytes: 1_000,
        keys: 10,
        ..Default::default()
    }
}

/// The honest report of store `leader` at `term`.
fn honest(leader: u64, term: u64) -> RgHeartbeat {
    RgHeartbeat {
        rg_id: RG,
        leader_store_id: leader,
        term,
        conf_ver: 3,
        applied_index: 100,
        members: (1..=3).map(replica).collect(),
        regions: vec![stats(10, b"a", b"m"), stats(11, b"m", b"")],
        ..Default::default()
    }
}

fn route(c: &LiveCluster, key: &[u8]) -> Option<(u64, u64)> {
    c.routes(|view, routes| routes.region_at(view, key).map(|r| (r.id, r.rg)))
}

#[test]
fn an_invented_rg_over_a_real_tables_keys_is_not_taken() {
    let c = cluster();
    let invented = RgHeartbeat {
        rg_id: 9_000_000,
        leader_store_id: 3,
        term: 1,
        members: vec![replica(3)],
        regions: vec![stats(77, b"a", b"z")],
        ..Default::default()
    };
    assert!(!c.rg_heartbeat(3, &invented, 10).unwrap());
    assert!(c.read(|v| v.rg(9_000_000).is_none() && v.region(77).is_none()));
    assert_eq!(
        route(&c, b"b"),
        Some((10, RG)),
        "routes still name the real RG"
    );
    assert!(
        c.shapes_to_persist(&[9_000_000]).is_empty(),
        "nothing to persist"
    );
    // Still saying it past the grace: counted against store 3 and alerted.
    c.rg_heartbeat(3, &invented, 2_000).unwrap();
    assert_eq!(c.evidence_record(3).unwrap().lies, 1);
    assert!(c.take_evidence_events().iter().any(|e| matches!(
        e,
        crate::cluster::evidence::EvidenceEvent::Lied {
            store: 3,
            kind: "unknown_rg",
            ..
        }
    )));
}

#[test]
fn members_and_regions_come_from_jobs_not_from_reports() {
    let c = cluster();
    // A follower claims to lead, alone, with a region nobody made and a range grab.
    let mut claim = honest(2, 5);
    claim.members = vec![replica(2)];
    claim.regions = vec![stats(10, b"a", b"z"), stats(u64::MAX, b"z", b"")];
    c.rg_heartbeat(2, &claim, 10).unwrap();
    let (members, regions) = c.read(|v| {
        let rg = v.rg(RG).unwrap();
        (
            rg.members.keys().copied().collect::<Vec<_>>(),
            rg.regions.iter().copied().collect::<Vec<_>>(),
        )
    });
    assert_eq!(members, vec![1, 2, 3], "members are the jobs'");
    assert_eq!(regions, vec![10, 11], "regions are the jobs'");
    assert!(c.read(|v| v.region(u64::MAX).is_none()));
    assert_eq!(
        c.read(|v| v.region(10).map(|r| r.end.to_vec())),
        Some(b"m".to_vec()),
        "the range is the jobs'"
    );
    assert_eq!(route(&c, b"p"), Some((11, RG)));
    // The leader and the sizes of the regions it holds are the store's to tell.
    c.rg_heartbeat(2, &honest(2, 6), 20).unwrap();
    assert_eq!(c.read(|v| v.rg(RG).unwrap().leader), Some(2));
    assert_eq!(c.read(|v| v.region(10).unwrap().size_bytes), 1_000);
}

#[test]
fn a_store_that_is_no_member_or_a_learner_is_not_heard() {
    let c = cluster();
    let mut outsider = honest(4, 5);
    outsider.members.push(replica(4));
    assert!(!c.rg_heartbeat(4, &outsider, 10).unwrap());
    assert_eq!(c.read(|v| v.rg(RG).unwrap().leader), Some(1));
}

#[test]
fn huge_terms_are_lies_and_a_liar_becomes_unhealthy() {
    let c = cluster();
    assert!(c.rg_heartbeat(1, &honest(1, 4), 10).unwrap());
    for t in 0..5 {
        let mut hb = honest(3, u64::MAX);
        hb.conf_ver = u64::MAX;
        assert!(!c.rg_heartbeat(3, &hb, 20 + t).unwrap());
    }
    let (leader, term) = c.read(|v| {
        let rg = v.rg(RG).unwrap();
        (rg.leader, rg.term)
    });
    assert_eq!((leader, term), (Some(1), 4), "the claim changed nothing");
    assert!(
        c.rg_heartbeat(1, &honest(1, 5), 30).unwrap(),
        "the real leader is still heard"
    );
    assert!(c.unhealthy(3).is_some(), "five lies in a minute");
    assert_eq!(c.read(|v| v.store(3).unwrap().state), StoreState::Down);
    // It keeps reporting, healthy by its own account: still not believed.
    c.store_heartbeat(
        &StoreHeartbeatRequest {
            store_id: 3,
            ..Default::default()
        },
        40,
    )
    .unwrap();
    assert_eq!(c.read(|v| v.store(3).unwrap().state), StoreState::Down);
}

#[test]
fn sizes_and_rates_past_any_disk_are_not_taken() {
    let c = cluster();
    let mut hb = honest(1, 4);
    hb.regions[0].size_bytes = u64::MAX;
    hb.regions[1].write_bytes = u64::MAX;
    c.rg_heartbeat(1, &hb, 10).unwrap();
    assert_eq!(c.read(|v| v.region(10).unwrap().size_bytes), 0);
    assert!(c.read(|v| v.rg_load(RG).total()) <= evidence::MAX_RATE);
    assert!(c.evidence_record(1).unwrap().lies >= 1);
}

#[test]
fn a_split_key_outside_its_region_is_dropped() {
    let c = cluster();
    let mut hb = honest(1, 4);
    hb.regions[0].split_key = b"x".to_vec();
    hb.regions[1].split_key = b"q".to_vec();
    c.rg_heartbeat(1, &hb, 10).unwrap();
    assert!(c.read(|v| v.split_keys.get(&10).is_none()));
    assert_eq!(
        c.read(|v| v.split_keys.get(&11).cloned()),
        Some(b"q".to_vec())
    );
}

#[test]
fn store_numbers_are_bounded_before_they_are_stored() {
    let c = cluster();
    let report = |capacity, used| StoreHeartbeatRequest {
        store_id: 2,
        stats: Some(StoreStats {
            capacity_bytes: capacity,
            used_bytes: used,
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = c.store_heartbeat(&report(u64::MAX, 0), 10).unwrap_err();
    assert!(err.to_string().contains("stats.capacity_bytes"), "{err}");
    let err = c
        .store_heartbeat(&report(1 << 30, u64::MAX), 10)
        .unwrap_err();
    assert!(err.to_string().contains("stats.used_bytes"), "{err}");
    assert_eq!(
        c.store(2).unwrap().capacity_bytes,
        1 << 30,
        "nothing stored"
    );
    assert!(c.stats(2).is_none());
    assert_eq!(c.evidence_record(2).unwrap().lies, 2);
    // A store filled past its configured quota is full, not lying.
    c.store_heartbeat(&report(1 << 30, 2 << 30), 10).unwrap();
    let stats = c.stats(2).unwrap();
    assert_eq!((stats.used_bytes, stats.available_bytes), (1 << 30, 0));
    assert_eq!(c.evidence_record(2).unwrap().lies, 2);
    c.store_heartbeat(&report(2 << 30, 1 << 30), 10).unwrap();
    assert_eq!(c.store(2).unwrap().capacity_bytes, 2 << 30);
}

#[test]
fn a_tombstoned_store_is_refused() {
    let c = cluster();
    c.register(
        &RegisterStoreRequest {
            store_id: 9,
            address: "127.0.0.1:7099".into(),
            ..Default::default()
        },
        0,
    )
    .unwrap();
    c.set_state(9, StoreState::Tombstone).unwrap();
    let err = c
        .store_heartbeat(
            &StoreHeartbeatRequest {
                store_id: 9,
                ..Default::default()
            },
            10,
        )
        .unwrap_err();
    assert!(err.to_string().contains("tombstone"), "{err}");
    let hb = RgHeartbeat {
        rg_id: RG,
        leader_store_id: 9,
        ..Default::default()
    };
    assert!(c.rg_heartbeat(9, &hb, 10).is_err());
}

#[test]
fn labels_and_addresses_are_printable_and_bounded() {
    let c = cluster();
    let with = |labels: &[(&str, &str)], address: &str| RegisterStoreRequest {
        store_id: 8,
        address: address.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let err = c
        .register(&with(&[("zone", "\x1b[31mred")], "127.0.0.1:7008"), 0)
        .unwrap_err();
    assert!(err.to_string().contains("labels.zone"), "{err}");
    let long = "z".repeat(300);
    let err = c
        .register(&with(&[("zone", &long)], "127.0.0.1:7008"), 0)
        .unwrap_err();
    assert!(err.to_string().contains("labels.zone"), "{err}");
    let err = c
        .register(&with(&[], "127.0.0.1:7008\u{7}"), 0)
        .unwrap_err();
    assert!(err.to_string().contains("address"), "{err}");
    assert!(c.store(8).is_none(), "nothing registered");
    c.register(&with(&[("zone", "z-1")], "127.0.0.1:7008"), 0)
        .unwrap();
}

#[test]
fn a_leadership_claim_the_members_contradict_is_a_lie_and_is_undone() {
    let c = cluster();
    let leader = |c: &LiveCluster| c.read(|v| (v.rg(RG).unwrap().leader, v.rg(RG).unwrap().term));
    assert!(c.rg_heartbeat(1, &honest(1, 4), 10).unwrap());
    // Store 3, a voter, claims a newer term: a real election looks the same, so it is taken.
    assert!(c.rg_heartbeat(3, &honest(3, 9), 20).unwrap());
    assert_eq!(leader(&c), (Some(3), 9));
    // The leader store 1 keeps reporting at term 4: one of the two is stale or lies.
    assert!(!c.rg_heartbeat(1, &honest(1, 4), 30).unwrap());
    let conflicts = c.take_leader_conflicts(8);
    assert_eq!(
        conflicts,
        vec![LeaderConflict {
            rg: RG,
            members: vec![1, 2, 3],
            claim: (Some(3), 9)
        }]
    );
    assert!(c.take_leader_conflicts(8).is_empty(), "taken once");
    // The members say store 1 leads at term 4: store 3 lied.
    c.settle_leader(&conflicts[0], 1, 4, 40);
    assert_eq!(leader(&c), (Some(1), 4));
    assert_eq!(c.evidence_record(3).unwrap().by_kind["leader_claim"], 1);
    assert_eq!(route_leader(&c), Some(1), "routes follow the members");
    assert!(
        !c.rg_heartbeat(3, &honest(3, 10), 50).unwrap(),
        "its claims to lead this RG are not taken for a while"
    );
    assert!(c.rg_heartbeat(1, &honest(1, 4), 60).unwrap());
    // A real election after the liar's spell: the members' answer agrees with the view.
    assert!(c.rg_heartbeat(2, &honest(2, 5), 2_000).unwrap());
    let stale_answer = LeaderConflict {
        rg: RG,
        members: vec![1, 2, 3],
        claim: (Some(1), 4),
    };
    c.settle_leader(&stale_answer, 1, 4, 2_005);
    assert_eq!(
        leader(&c),
        (Some(2), 5),
        "answers to an older claim change nothing"
    );
    let now = LeaderConflict {
        rg: RG,
        members: vec![1, 2, 3],
        claim: (Some(2), 5),
    };
    c.settle_leader(&now, 2, 5, 2_010);
    assert_eq!(leader(&c), (Some(2), 5));
    assert_eq!(c.evidence_record(3).unwrap().lies, 1, "no one else blamed");
    assert!(c.evidence_record(1).is_none());
}

fn route_leader(c: &LiveCluster) -> Option<u64> {
    c.routes(|view, routes| {
        let region = routes.region_at(view, b"b")?;
        view.rg(region.rg)?.leader
    })
}

#[test]
fn an_rg_split_out_is_heard_from_its_own_term() {
    use crate::cluster::ViewSource;
    use crate::cluster::effect::Effect;
    let c = cluster();
    assert!(c.rg_heartbeat(1, &honest(1, 4), 10).unwrap());
    c.job_succeeded(&Effect::RgSplit {
        rg: RG,
        new_rg: 6,
        regions: vec![11],
    });
    // The new RG's leader reports from the term its stores seeded it at.
    let first = RgHeartbeat {
        rg_id: 6,
        leader_store_id: 2,
        term: 1,
        conf_ver: 1,
        members: (1..=3).map(replica).collect(),
        regions: vec![stats(11, b"m", b"")],
        ..Default::default()
    };
    assert!(
        c.rg_heartbeat(2, &first, 20).unwrap(),
        "the new RG is heard"
    );
    assert_eq!(c.read(|v| v.rg(6).unwrap().leader), Some(2));
    assert_eq!(c.read(|v| v.region(11).unwrap().size_bytes), 1_000);
    assert_eq!(route_leader_of(&c, b"p"), Some(2));
    assert!(c.evidence_record(2).is_none(), "an honest report is no lie");
}

fn route_leader_of(c: &LiveCluster, key: &[u8]) -> Option<u64> {
    c.routes(|view, routes| {
        let region = routes.region_at(view, key)?;
        view.rg(region.rg)?.leader
    })
}

#[test]
fn a_job_that_moved_a_replica_moves_it_in_the_view_even_without_its_steps_outcomes() {
    use crate::cluster::ViewSource;
    use crate::cluster::effect::Effect;
    let c = cluster();
    // The steps' outcomes were learned by a probe: only the job's effect says what it did.
    c.job_succeeded(&Effect::ReplicaMoved {
        rg: RG,
        from: 3,
        to: 4,
    });
    let members = c.read(|v| {
        v.rg(RG)
            .unwrap()
            .members
            .keys()
            .copied()
            .collect::<Vec<_>>()
    });
    assert_eq!(members, vec![1, 2, 4]);
    assert_eq!(c.read(|v| v.replica_count(4)), 1, "the store index follows");
    // Store 4 leads it now; store 3's report is a stale replica's.
    let mut hb = honest(4, 5);
    hb.members = [1, 2, 4].into_iter().map(replica).collect();
    assert!(c.rg_heartbeat(4, &hb, 10).unwrap());
    assert!(!c.rg_heartbeat(3, &honest(3, 6), 11).unwrap());
}

#[test]
fn a_heartbeat_built_before_a_region_job_does_not_roll_the_view_back() {
    use crate::cluster::ViewSource;
    use crate::jobs::plan::AtomicStep;
    let c = cluster();
    // A SplitRegion job cut region 11 [m, ∞) at "q": region 12 is [q, ∞).
    let step = AtomicStep::SplitRegion(step::SplitRegion {
        rg: RG,
        region: 11,
        at: b"q".to_vec(),
        new_region: 12,
        version: 1,
    });
    let ok = proto::v1::StepOk {
        leader_store_id: 1,
        term: 4,
        conf_ver: 3,
        ..Default::default()
    };
    c.step_succeeded(RG, &step, &ok, true);
    assert_eq!(route(&c, b"r"), Some((12, RG)));
    // The leader's heartbeat built before the split arrives after it: same term, the old
    // regions. Routes keep the split.
    let mut old = honest(1, 4);
    old.regions = vec![stats(10, b"a", b"m"), stats(11, b"m", b"")];
    c.rg_heartbeat(1, &old, 10).unwrap();
    assert_eq!(route(&c, b"r"), Some((12, RG)), "the split is not undone");
    assert_eq!(
        c.read(|v| v.region(11).map(|r| r.end.to_vec())),
        Some(b"q".to_vec())
    );
}

#[test]
fn a_report_older_than_one_taken_by_applied_index_changes_nothing() {
    let c = cluster();
    let mut newer = honest(1, 4);
    newer.applied_index = 200;
    newer.regions[0].size_bytes = 5_000;
    newer.regions[0].keys = 50;
    assert!(c.rg_heartbeat(1, &newer, 10).unwrap());
    // The same leader's report from before, delivered late (a retried stream, a slow path):
    // same term and conf_ver, a lower applied index.
    let older = honest(1, 4);
    assert!(!c.rg_heartbeat(1, &older, 20).unwrap(), "not taken");
    assert_eq!(
        c.read(|v| v.region(10).map(|r| (r.size_bytes, r.keys))),
        Some((5_000, 50)),
        "the sizes stay those of the newer report"
    );
    assert_eq!(c.read(|v| v.rg(RG).map(|r| r.applied_index)), Some(200));
}

#[test]
fn a_voter_claiming_a_huge_applied_index_does_not_silence_the_leader() {
    let c = cluster();
    assert!(c.rg_heartbeat(1, &honest(1, 4), 10).unwrap());
    // Store 2 claims to lead at the same term, with an applied index no log reaches.
    let mut forged = honest(2, 4);
    forged.applied_index = u64::MAX;
    let _ = c.rg_heartbeat(2, &forged, 20);
    // The real leader goes on reporting: it is still heard (the claim disputed, not frozen).
    let mut next = honest(1, 4);
    next.applied_index = 150;
    next.regions[0].size_bytes = 7_000;
    c.rg_heartbeat(1, &next, 30).unwrap();
    let disputed = c.take_leader_conflicts(8).iter().any(|x| x.rg == RG);
    let taken = c.read(|v| v.region(10).map(|r| r.size_bytes)) == Some(7_000);
    assert!(
        taken || disputed,
        "the leader's report is taken or the claim goes to the members"
    );
}

#[test]
fn a_maintenance_window_ends_when_the_store_reports_from_a_new_process() {
    let c = cluster();
    let beat = |uptime_secs| StoreHeartbeatRequest {
        store_id: 2,
        stats: Some(StoreStats {
            uptime_secs,
            ..Default::default()
        }),
        ..Default::default()
    };
    // The process started at 0 and reported at 30 s.
    c.store_heartbeat(&beat(30), 30_000).unwrap();
    c.set_maintenance(2, Some(600_000)).unwrap();
    c.store_heartbeat(&beat(40), 40_500).unwrap();
    assert!(
        c.read(|v| v.maintenance.contains_key(&2)),
        "the same process"
    );
    // Restarted at 41 s: its uptime starts again.
    c.store_heartbeat(&beat(0), 41_200).unwrap();
    assert!(
        c.read(|v| !v.maintenance.contains_key(&2)),
        "the window ended"
    );
    assert_eq!(c.take_maintenance_ended(), vec![2]);
    // Away past down-after within a window: Disconnected, never Down.
    c.set_maintenance(3, Some(10_000_000)).unwrap();
    c.tick(2_000 + 200_000);
    assert_eq!(
        c.read(|v| v.store(3).unwrap().state),
        StoreState::Disconnected
    );
}

#[test]
fn a_region_version_a_lost_outcome_left_behind_is_caught_up_from_the_leader() {
    let c = cluster();
    let with_version = |v: u64, end: &[u8]| {
        let mut hb = honest(1, 4);
        hb.regions[1] = stats(11, b"m", end);
        hb.regions[1].epoch = Some(proto::v1::RegionEpoch {
            version: v,
            conf_ver: 3,
        });
        hb
    };
    // A version far ahead, or another range: not one a job of the MC's made.
    c.rg_heartbeat(1, &with_version(100, b""), 10).unwrap();
    assert_eq!(c.read(|v| v.region(11).unwrap().version), 1);
    c.rg_heartbeat(1, &with_version(2, b"q"), 20).unwrap();
    assert_eq!(c.read(|v| v.region(11).unwrap().version), 1);
    // The same range one version on (a SplitRg whose outcome was learned by a probe).
    c.rg_heartbeat(1, &with_version(2, b""), 30).unwrap();
    assert_eq!(c.read(|v| v.region(11).unwrap().version), 2);
}
