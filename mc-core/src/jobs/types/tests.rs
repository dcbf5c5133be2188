//! Table-driven: for every job type, the planned steps; for every step, what a failure there
//! rolls back; and the bad inputs that must be refused before anything is persisted.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::{ClusterView, RegionInfo, RgInfo, Role, StoreInfo, StoreState};
use crate::jobs::plan::{AtomicStep, NewRegion, RollForwardOnly};
use crate::jobs::spec::JobSpec;

/// Stores 1-5 up, 6 down; RG 1 on {1,2,3} with regions 10 [a,m) and 11 [m,z) of object 100;
/// RG 2 on {1,2,3} with region 20 [za,zz); RG 3 on {1,2}; RG 4 on {1,2,3,4} with 4 a learner;
/// RG 5 on {1,2,3} with no regions.
pub(crate) fn view() -> ClusterView {
    let mut v = ClusterView::default();
    for id in 1..=6 {
        let state = if id == 6 {
            StoreState::Down
        } else {
            StoreState::Up
        };
        v.put_store(StoreInfo {
            capacity_bytes: 0,
            id,
            address: format!("s{id}:7000"),
            state,
            labels: BTreeMap::new(),
        });
    }
    let rg = |id, members: &[(u64, Role)], regions: &[u64]| RgInfo {
        term: 0,
        conf_ver: 0,
        applied_index: 0,
        heard: true,
        id,
        members: members.iter().copied().collect(),
        leader: Some(members[0].0),
        regions: regions.iter().copied().collect::<BTreeSet<_>>().into(),
        offline: false,
    };
    let v3 = [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)];
    v.put_rg(rg(1, &v3, &[10, 11]));
    v.put_rg(rg(2, &v3, &[20]));
    v.put_rg(rg(3, &[(1, Role::Voter), (2, Role::Voter)], &[]));
    v.put_rg(rg(
        4,
        &[
            (1, Role::Voter),
            (2, Role::Voter),
            (3, Role::Voter),
            (4, Role::Learner),
        ],
        &[],
    ));
    v.put_rg(rg(5, &v3, &[]));
    let region = |id, rg, object, start: &str, end: &str| RegionInfo {
        keys: 0,
        id,
        rg,
        object,
        start: start.as_bytes().into(),
        end: end.as_bytes().into(),
        version: 3,
        size_bytes: 64 << 20,
    };
    v.put_region(region(10, 1, 100, "a", "m"));
    v.put_region(region(11, 1, 100, "m", "z"));
    v.put_region(region(20, 2, 200, "za", "zz"));
    v
}

/// "Create@4" style names: step kind and where it goes.
pub(crate) fn name(step: &AtomicStep) -> String {
    let kind = step
        .kind()
        .as_str_name()
        .trim_start_matches("STEP_KIND_")
        .to_lowercase();
    match step.target() {
        crate::jobs::Target::Store(s) => format!("{kind}@{s}"),
        crate::jobs::Target::Leader(rg) => format!("{kind}@leader{rg}"),
        crate::jobs::Target::Children => kind,
    }
}

pub(crate) fn names(steps: &[AtomicStep]) -> Vec<String> {
    steps.iter().map(name).collect()
}

pub(crate) struct Case {
    pub spec: JobSpec,
    pub steps: &'static [&'static str],
    /// For a failure at step i: the rollback, or None past the point of no return.
    pub rollbacks: &'static [Option<&'static [&'static str]>],
}

pub(crate) fn cases() -> Vec<Case> {
    use JobSpec::*;
    vec![
        Case {
            spec: MigrateReplica {
                rg: 1,
                from: 1,
                to: 4,
            },
            steps: &[
                "create@4",
                "add_learner@leader1",
                "promote@leader1",
                "offline@1",
                "remove@leader1",
                "destroy@1",
            ],
            rollbacks: &[
                Some(&["destroy@4"]),
                Some(&["remove@leader1", "destroy@4"]),
                Some(&["remove@leader1", "destroy@4"]),
                Some(&["online@1", "remove@leader1", "destroy@4"]),
                Some(&["online@1", "remove@leader1", "destroy@4"]),
                None,
            ],
        },
        Case {
            spec: AddReplica {
                rg: 1,
                store: 4,
                voter: true,
            },
            steps: &["create@4", "add_learner@leader1", "promote@leader1"],
            rollbacks: &[
                Some(&["destroy@4"]),
                Some(&["remove@leader1", "destroy@4"]),
                Some(&["remove@leader1", "destroy@4"]),
            ],
        },
        Case {
            spec: RemoveReplica { rg: 1, store: 2 },
            steps: &["offline@2", "remove@leader1", "destroy@2"],
            rollbacks: &[Some(&["online@2"]), Some(&["online@2"]), None],
        },
        Case {
            spec: PromoteReplica { rg: 4, store: 4 },
            steps: &["promote@leader4"],
            rollbacks: &[Some(&["demote@leader4"])],
        },
        Case {
            spec: DemoteReplica { rg: 1, store: 3 },
            steps: &["demote@leader1"],
            rollbacks: &[Some(&["promote@leader1"])],
        },
        Case {
            spec: OnlineReplica { rg: 1, store: 2 },
            steps: &["online@2"],
            rollbacks: &[Some(&["offline@2"])],
        },
        Case {
            spec: OfflineReplica { rg: 1, store: 2 },
            steps: &["offline@2"],
            rollbacks: &[Some(&["online@2"])],
        },
        Case {
            spec: TransferLeader { rg: 1, to: 3 },
            steps: &["transfer_leader@leader1"],
            rollbacks: &[Some(&[])],
        },
        Case {
            spec: DestroyReplica { rg: 1, store: 5 },
            steps: &["offline@5", "destroy@5"],
            rollbacks: &[Some(&["online@5"]), Some(&["online@5"])],
        },
        Case {
            spec: CreateRg {
                regions: vec![],
                rg: 9,
                stores: vec![1, 2, 3],
                leader: Some(2),
            },
            // The designated leader last: its campaign needs the other members' replicas.
            steps: &["create@1", "create@3", "create@2"],
            rollbacks: &[
                Some(&["offline@1", "destroy@1"]),
                Some(&["offline@3", "destroy@3", "offline@1", "destroy@1"]),
                Some(&[
                    "offline@2",
                    "destroy@2",
                    "offline@3",
                    "destroy@3",
                    "offline@1",
                    "destroy@1",
                ]),
            ],
        },
        Case {
            spec: SplitRg {
                rg: 1,
                new_rg: 9,
                regions: vec![11],
            },
            steps: &["split_rg@leader1"],
            rollbacks: &[Some(&[])],
        },
        Case {
            spec: MergeRg {
                source: 2,
                target: 1,
            },
            steps: &[
                "offline@1",
                "offline@2",
                "offline@3",
                "merge_rg@leader1",
                "destroy@1",
                "destroy@2",
                "destroy@3",
            ],
            rollbacks: &[
                Some(&["online@1"]),
                Some(&["online@2", "online@1"]),
                Some(&["online@3", "online@2", "online@1"]),
                Some(&["online@3", "online@2", "online@1"]),
                None,
                None,
                None,
            ],
        },
        Case {
            spec: OfflineRg { rg: 1 },
            steps: &["offline@1", "offline@2", "offline@3"],
            rollbacks: &[
                Some(&["online@1"]),
                Some(&["online@2", "online@1"]),
                Some(&["online@3", "online@2", "online@1"]),
            ],
        },
        Case {
            spec: OnlineRg { rg: 1 },
            steps: &["online@1", "online@2", "online@3"],
            rollbacks: &[
                Some(&["offline@1"]),
                Some(&["offline@2", "offline@1"]),
                Some(&["offline@3", "offline@2", "offline@1"]),
            ],
        },
        Case {
            spec: DeleteRg { rg: 5 },
            steps: &[
                "offline@1",
                "offline@2",
                "offline@3",
                "destroy@1",
                "destroy@2",
                "destroy@3",
            ],
            rollbacks: &[
                Some(&["online@1"]),
                Some(&["online@2", "online@1"]),
                Some(&["online@3", "online@2", "online@1"]),
                Some(&["online@3", "online@2", "online@1"]),
                None,
                None,
            ],
        },
        Case {
            spec: CreateRegion {
                rg: 1,
                region: 12,
                object: 100,
                start: b"zz".to_vec(),
                end: b"zzz".to_vec(),
            },
            steps: &["create_region@leader1"],
            rollbacks: &[Some(&["delete_region@leader1"])],
        },
        Case {
            spec: CreateRegions {
                rg: 1,
                regions: vec![
                    NewRegion {
                        id: 12,
                        object: 100,
                        start: b"zz".to_vec(),
                        end: b"zzy".to_vec(),
                    },
                    NewRegion {
                        id: 13,
                        object: 100,
                        start: b"zzy".to_vec(),
                        end: b"zzz".to_vec(),
                    },
                ],
            },
            steps: &["create_region@leader1"],
            rollbacks: &[Some(&["delete_region@leader1", "delete_region@leader1"])],
        },
        Case {
            spec: SplitRegion {
                region: 10,
                at: b"f".to_vec(),
                new_region: 12,
            },
            steps: &["split_region@leader1"],
            rollbacks: &[Some(&["merge_region@leader1"])],
        },
        Case {
            spec: MergeRegion {
                left: 10,
                right: 11,
            },
            steps: &["merge_region@leader1"],
            rollbacks: &[Some(&[])],
        },
        Case {
            spec: DeleteRegion { region: 20 },
            steps: &["delete_region@leader2"],
            rollbacks: &[Some(&[])],
        },
        Case {
            spec: DrainStore {
                store: 3,
                max_parallel: 2,
            },
            steps: &["wait_children"],
            rollbacks: &[Some(&[])],
        },
    ]
}

#[test]
fn every_job_type_has_a_case() {
    let covered: BTreeSet<_> = cases().iter().map(|c| c.spec.job_type()).collect();
    for def in proto::job_types::JOB_TYPES {
        assert!(
            covered.contains(&def.job_type),
            "no plan case for {}",
            def.name
        );
        assert_eq!(
            cases()
                .iter()
                .find(|c| c.spec.job_type() == def.job_type)
                .unwrap()
                .spec
                .type_name(),
            def.name
        );
    }
}

#[test]
fn plans_and_rollbacks_at_every_step() {
    let view = view();
    for case in cases() {
        let plan = case
            .spec
            .plan(&view)
            .unwrap_or_else(|e| panic!("{:?}: {e}", case.spec));
        let steps: Vec<AtomicStep> = plan.steps.iter().map(|s| s.step.clone()).collect();
        assert_eq!(names(&steps), case.steps, "{:?}", case.spec);
        assert_eq!(
            case.rollbacks.len(),
            steps.len(),
            "{:?}: one rollback row per step",
            case.spec
        );
        for (i, expected) in case.rollbacks.iter().enumerate() {
            match (plan.rollback_from(i), expected) {
                (Ok(undo), Some(expected)) => assert_eq!(
                    names(&undo),
                    *expected,
                    "{:?} failing at step {i}",
                    case.spec
                ),
                (Err(RollForwardOnly { .. }), None) => {}
                (got, _) => panic!(
                    "{:?} failing at step {i}: {got:?}, expected {expected:?}",
                    case.spec
                ),
            }
        }
        assert!(case.spec.definition_version() >= 1);
    }
}

#[test]
fn specs_survive_the_catalog_encoding() {
    for case in cases() {
        let json = serde_json::to_string(&case.spec).unwrap();
        assert_eq!(serde_json::from_str::<JobSpec>(&json).unwrap(), case.spec);
        assert!(json.starts_with("{\"kind\":\""), "stable tag first: {json}");
    }
}

#[test]
fn bad_input_is_refused_naming_the_problem() {
    use JobSpec::*;
    let view = view();
    let cases: Vec<(JobSpec, &str)> = vec![
        (
            MigrateReplica {
                rg: 1,
                from: 2,
                to: 2,
            },
            "invalid argument `to_store_id`: source and target are both store 2",
        ),
        (
            MigrateReplica {
                rg: 1,
                from: 1,
                to: 42,
            },
            "store 42 not found",
        ),
        (
            MigrateReplica {
                rg: 1,
                from: 1,
                to: 6,
            },
            "store 6 is down; a replica cannot be placed on it",
        ),
        (
            MigrateReplica {
                rg: 1,
                from: 4,
                to: 5,
            },
            "rg/1 is without a replica on store 4; needs a replica on store 4",
        ),
        (
            MigrateReplica {
                rg: 1,
                from: 1,
                to: 2,
            },
            "rg/1 is already with a replica on store 2; needs no replica on store 2",
        ),
        (
            MigrateReplica {
                rg: 77,
                from: 1,
                to: 4,
            },
            "rg 77 not found",
        ),
        (
            MigrateReplica {
                rg: 0,
                from: 1,
                to: 4,
            },
            "invalid argument `rg_id`: must be set",
        ),
        (
            RemoveReplica { rg: 3, store: 2 },
            "RG 3 has 2 voters; removing one would leave it below quorum",
        ),
        (
            DemoteReplica { rg: 3, store: 1 },
            "RG 3 has 2 voters; removing one would leave it below quorum",
        ),
        (
            AddReplica {
                rg: 1,
                store: 6,
                voter: true,
            },
            "store 6 is down; a replica cannot be placed on it",
        ),
        (
            PromoteReplica { rg: 1, store: 2 },
            "rg/1 replica on store 2 is voter; needs learner",
        ),
        (
            TransferLeader { rg: 4, to: 4 },
            "rg/4 replica on store 4 is learner; needs voter",
        ),
        (
            DestroyReplica { rg: 1, store: 2 },
            "rg/1 replica on store 2 is a member; needs removed from the RG first (RemoveReplica)",
        ),
        (
            CreateRg {
                regions: vec![],
                rg: 9,
                stores: vec![1, 1],
                leader: None,
            },
            "invalid argument `store_ids`: store 1 is listed twice",
        ),
        (
            CreateRg {
                regions: vec![],
                rg: 1,
                stores: vec![1],
                leader: None,
            },
            "rg/1 is existing; needs a new RG id",
        ),
        (
            CreateRg {
                regions: vec![],
                rg: 9,
                stores: vec![1, 2],
                leader: Some(3),
            },
            "invalid argument `leader_store_id`: store 3 is not one of the RG's stores",
        ),
        (
            SplitRg {
                rg: 1,
                new_rg: 9,
                regions: vec![10, 11],
            },
            "invalid argument `region_ids`: at least one region must stay in the parent RG",
        ),
        (
            SplitRg {
                rg: 1,
                new_rg: 9,
                regions: vec![20],
            },
            "invalid argument `region_ids`: region 20 is not in RG 1",
        ),
        (
            MergeRg {
                source: 3,
                target: 1,
            },
            "rg/3 is on stores [1, 2]; needs the target's stores [1, 2, 3]",
        ),
        (
            MergeRg {
                source: 1,
                target: 1,
            },
            "invalid argument `target_rg_id`: source and target are the same RG",
        ),
        (
            DeleteRg { rg: 1 },
            "rg/1 is holding 2 regions; needs no regions (delete or move them first)",
        ),
        (
            CreateRegions {
                rg: 1,
                regions: vec![
                    NewRegion {
                        id: 12,
                        object: 1,
                        start: b"zz".to_vec(),
                        end: b"zzz".to_vec(),
                    },
                    NewRegion {
                        id: 13,
                        object: 1,
                        start: b"c".to_vec(),
                        end: b"d".to_vec(),
                    },
                ],
            },
            "range of new region 13 is overlapping region 10 (RG 1); needs a free key range",
        ),
        (
            CreateRegions {
                rg: 1,
                regions: vec![
                    NewRegion {
                        id: 12,
                        object: 1,
                        start: b"zz".to_vec(),
                        end: b"zzz".to_vec(),
                    },
                    NewRegion {
                        id: 13,
                        object: 1,
                        start: b"zzy".to_vec(),
                        end: b"zzzz".to_vec(),
                    },
                ],
            },
            "invalid argument `regions.range`: regions 12 and 13 overlap",
        ),
        (
            CreateRegions {
                rg: 1,
                regions: vec![
                    NewRegion {
                        id: 12,
                        object: 1,
                        start: b"zz".to_vec(),
                        end: b"zzy".to_vec(),
                    },
                    NewRegion {
                        id: 12,
                        object: 1,
                        start: b"zzy".to_vec(),
                        end: b"zzz".to_vec(),
                    },
                ],
            },
            "invalid argument `regions.region_id`: region 12 must be a new, allocated region id, once",
        ),
        (
            CreateRegion {
                rg: 1,
                region: 12,
                object: 1,
                start: b"c".to_vec(),
                end: b"d".to_vec(),
            },
            "range of new region 12 is overlapping region 10 (RG 1); needs a free key range",
        ),
        (
            CreateRegion {
                rg: 1,
                region: 12,
                object: 1,
                start: b"d".to_vec(),
                end: b"c".to_vec(),
            },
            "invalid argument `range`: end must be after start",
        ),
        (
            SplitRegion {
                region: 10,
                at: b"a".to_vec(),
                new_region: 12,
            },
            "invalid argument `split_key`: must lie strictly inside region 10",
        ),
        (
            SplitRegion {
                region: 10,
                at: b"x".to_vec(),
                new_region: 12,
            },
            "invalid argument `split_key`: must lie strictly inside region 10",
        ),
        (
            MergeRegion {
                left: 11,
                right: 20,
            },
            "regions 11 and 20 is in RGs 1 and 2; needs one RG (merge the RGs first)",
        ),
        (
            MergeRegion {
                left: 11,
                right: 10,
            },
            "invalid argument `right_region_id`: region 10 must start where 11 ends, in the same object",
        ),
        (DeleteRegion { region: 99 }, "region 99 not found"),
        (
            DrainStore {
                store: 42,
                max_parallel: 0,
            },
            "store 42 not found",
        ),
    ];
    for (spec, expected) in cases {
        let err = spec
            .plan(&view)
            .expect_err(&format!("{spec:?} must be refused"));
        assert_eq!(err.to_string(), expected, "{spec:?}");
    }
}

#[test]
fn proto_specs_convert_with_allocated_ids_and_name_missing_fields() {
    use proto::v1::{JobSpec as P, job_spec::Spec};
    let mut next = 100;
    let mut alloc = |_| {
        next += 1;
        next
    };
    let split = P {
        spec: Some(Spec::SplitRg(proto::v1::SplitRgSpec {
            rg_id: 1,
            region_ids: vec![11],
            new_rg_id: 0,
        })),
    };
    assert_eq!(
        JobSpec::from_proto(&split, &mut alloc).unwrap(),
        JobSpec::SplitRg {
            rg: 1,
            new_rg: 101,
            regions: vec![11]
        }
    );
    let empty = P { spec: None };
    assert_eq!(
        JobSpec::from_proto(&empty, &mut alloc)
            .unwrap_err()
            .to_string(),
        "invalid argument `spec`: exactly one job type must be set"
    );
    let region = P {
        spec: Some(Spec::CreateRegion(proto::v1::CreateRegionSpec {
            rg_id: 1,
            object_id: 2,
            range: None,
            region_id: 0,
        })),
    };
    assert_eq!(
        JobSpec::from_proto(&region, &mut alloc)
            .unwrap_err()
            .to_string(),
        "invalid argument `spec.create_region.range`: missing"
    );
}
