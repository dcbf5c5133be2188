use proto::v1::StepKind;

use super::*;

/// Every step as job records already in catalogs hold it: the table must read each back to
/// the same step and write it the same way (a changed field name would strand running jobs).
const PERSISTED: &[(&str, StepKind)] = &[
    (
        r#"{"step":"create","rg":1,"store":4,"members":[4,5,6],"regions":[{"id":9,"object":3,"start":[1],"end":[2]}],"campaign":true}"#,
        StepKind::Create,
    ),
    (
        r#"{"step":"create","rg":1,"store":4,"members":[],"regions":[]}"#,
        StepKind::Create,
    ),
    (
        r#"{"step":"add_learner","rg":1,"store":4}"#,
        StepKind::AddLearner,
    ),
    (r#"{"step":"promote","rg":1,"store":4}"#, StepKind::Promote),
    (r#"{"step":"demote","rg":1,"store":4}"#, StepKind::Demote),
    (
        r#"{"step":"offline","rg":1,"store":4,"whole_rg":true}"#,
        StepKind::Offline,
    ),
    (r#"{"step":"online","rg":1,"store":4}"#, StepKind::Online),
    (r#"{"step":"remove","rg":1,"store":4}"#, StepKind::Remove),
    (r#"{"step":"destroy","rg":1,"store":4}"#, StepKind::Destroy),
    (
        r#"{"step":"destroy","rg":1,"store":4,"merged_into":2,"only_if_empty":true}"#,
        StepKind::Destroy,
    ),
    (
        r#"{"step":"transfer_leader","rg":1,"to":5}"#,
        StepKind::TransferLeader,
    ),
    (
        r#"{"step":"create_region","rg":1,"region":{"id":9,"object":3,"start":[],"end":[]}}"#,
        StepKind::CreateRegion,
    ),
    (
        r#"{"step":"split_region","rg":1,"region":9,"at":[5],"new_region":10,"version":2}"#,
        StepKind::SplitRegion,
    ),
    (
        r#"{"step":"merge_region","rg":1,"left":9,"right":10,"left_version":3,"right_version":3}"#,
        StepKind::MergeRegion,
    ),
    (
        r#"{"step":"delete_region","rg":1,"region":9,"version":3}"#,
        StepKind::DeleteRegion,
    ),
    (
        r#"{"step":"split_rg","rg":1,"new_rg":2,"regions":[9,10]}"#,
        StepKind::SplitRg,
    ),
    (
        r#"{"step":"merge_rg","source":2,"target":1}"#,
        StepKind::MergeRg,
    ),
    (r#"{"step":"wait_children"}"#, StepKind::WaitChildren),
    (
        r#"{"step":"create_regions","rg":1,"regions":[{"id":9,"object":3,"start":[],"end":[1]}]}"#,
        StepKind::CreateRegion,
    ),
];

#[test]
fn steps_persisted_before_read_back_and_write_the_same() {
    for (json, kind) in PERSISTED {
        let step: AtomicStep = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(step.kind(), *kind, "{json}");
        assert_eq!(serde_json::to_string(&step).unwrap(), *json);
    }
}

#[test]
fn every_step_kind_on_the_wire_has_a_table_entry() {
    let mut kinds: Vec<StepKind> = PERSISTED.iter().map(|(_, k)| *k).collect();
    kinds.sort_by_key(|k| *k as i32);
    kinds.dedup();
    let all: Vec<StepKind> = (1..).map_while(|i| StepKind::try_from(i).ok()).collect();
    assert_eq!(kinds, all);
}

struct NoCluster(Option<SourceLog>);

impl CommandContext for NoCluster {
    fn peer(&self, store: StoreId, role: pb::ReplicaRole) -> Result<pb::ReplicaPeer, String> {
        Ok(pb::ReplicaPeer {
            store_id: store,
            address: format!("s{store}"),
            role: role as i32,
        })
    }
    fn rg_members(&self, _: RgId) -> Vec<StoreId> {
        vec![1, 2]
    }
    fn source_log(&self) -> Option<&SourceLog> {
        self.0.as_ref()
    }
}

#[test]
fn a_merge_is_not_sent_without_its_sources_log_end() {
    let merge = MergeRg {
        source: 2,
        target: 1,
    };
    assert_eq!(merge.reads_log_of(), Some(2));
    assert!(merge.command(&NoCluster(None)).is_err());
    // Another RG's log end is not this source's.
    let other = SourceLog {
        rg: 3,
        last_index: 9,
        members: vec![1],
    };
    assert!(merge.command(&NoCluster(Some(other))).is_err());
    let log = SourceLog {
        rg: 2,
        last_index: 9,
        members: vec![1, 2, 3],
    };
    let Ok(Command::MergeRg(m)) = merge.command(&NoCluster(Some(log))) else {
        panic!("not a merge");
    };
    assert_eq!(
        (m.source_rg_id, m.source_applied_index, m.expected_members),
        (2, 9, vec![1, 2, 3])
    );
}

#[test]
fn a_joining_replica_is_told_the_rgs_members_and_a_bootstrap_its_own() {
    let join = Create {
        rg: 1,
        store: 4,
        members: vec![],
        regions: vec![],
        campaign: false,
    };
    let Ok(Command::Create(c)) = join.command(&NoCluster(None)) else {
        panic!("not a create");
    };
    assert!(!c.bootstrap);
    assert_eq!(
        c.members.iter().map(|p| p.store_id).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(join.limit_class(), LimitClass::Data(4));
    let seed = Create {
        members: vec![4, 5, 6],
        ..join
    };
    let Ok(Command::Create(c)) = seed.command(&NoCluster(None)) else {
        panic!("not a create");
    };
    assert!(c.bootstrap);
    assert_eq!(c.members.len(), 3);
    assert_eq!(seed.limit_class(), LimitClass::Metadata(4));
}

#[test]
fn store_steps_are_checked_on_the_store_and_leader_steps_at_the_leader() {
    let offline = Offline {
        rg: 1,
        store: 4,
        whole_rg: false,
    };
    let replica = pb::ReplicaStatus {
        rg_id: 1,
        offline: true,
        is_leader: true,
        ..Default::default()
    };
    // Alone it must also have handed leadership away.
    assert_eq!(
        offline.check(Seen::Store(Some(&replica)), &|_| vec![]),
        Check::Now(false)
    );
    let whole = Offline {
        whole_rg: true,
        ..offline.clone()
    };
    assert_eq!(
        whole.check(Seen::Store(Some(&replica)), &|_| vec![]),
        Check::Now(true)
    );
    assert!(matches!(
        offline.check(Seen::Leader(&replica), &|_| vec![]),
        Check::Unknown(_)
    ));
    let leader = pb::ReplicaStatus {
        rg_id: 1,
        regions: vec![pb::Region {
            id: 9,
            ..Default::default()
        }],
        ..Default::default()
    };
    let merge = MergeRg {
        source: 2,
        target: 1,
    };
    assert_eq!(
        merge.check(Seen::Leader(&leader), &|_| vec![9]),
        Check::Regions(true)
    );
    assert_eq!(
        merge.check(Seen::Leader(&leader), &|_| vec![9, 10]),
        Check::Regions(false)
    );
    assert!(matches!(
        merge.check(Seen::Leader(&leader), &|_| vec![]),
        Check::Unknown(_)
    ));
}
