//! The step executor's contract: a repeated step returns the stored outcome and changes
//! nothing; a concurrent step on the same RG gets Busy; a step from an older MC term is
//! refused; bad input gets a typed error and changes nothing.

use crate::common;

use std::time::Duration;

use common::*;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::*;
use step_command::Step;

fn result(outcome: &StepOutcome) -> &step_outcome::Result {
    outcome.result.as_ref().expect("an outcome")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeats_replay_concurrent_steps_are_busy_and_stale_terms_are_refused() {
    let cluster = Cluster::start(3).await;
    cluster.bootstrap_rg(&[1, 2, 3]).await;
    let leader = cluster.wait_leader(RG).await;
    let addr = cluster.addr(leader);

    // A region split, sent twice: the second is a replay and splits nothing more.
    let split = Step::SplitRegion(SplitRegionStep {
        region_id: REGION,
        split_key: b"m".to_vec(),
        new_region_id: 2,
        expected_epoch: Some(RegionEpoch {
            version: 1,
            conf_ver: 0,
        }),
    });
    let first = execute(&addr, request(RG, 20, 1, 1, split.clone())).await;
    let second = execute(&addr, request(RG, 20, 1, 1, split.clone())).await;
    assert!(!first.replayed && second.replayed);
    assert_eq!(first.outcome, second.outcome);
    let regions = replica_status(&addr, RG).await.unwrap().regions;
    assert_eq!(
        regions.len(),
        2,
        "a replay must not split again: {regions:?}"
    );

    // The same step under a new job is not a replay: it runs and fails on the old epoch.
    let again = execute(&addr, request(RG, 21, 1, 1, split)).await;
    assert!(!again.replayed);
    assert!(
        matches!(
            result(again.outcome.as_ref().unwrap()),
            step_outcome::Result::EpochMismatch(_)
        ),
        "{again:?}"
    );

    // Busy: a learner that never answers keeps AddLearner running until its deadline.
    let slow = ExecuteStepRequest {
        envelope: Some(StepEnvelope {
            job_id: 30,
            step_seq: 1,
            attempt: 1,
            mc_term: 1,
            rg_id: RG,
            deadline_ms: 3_000,
        }),
        command: Some(StepCommand {
            step: Some(Step::AddLearner(AddLearnerStep {
                learner: Some(ReplicaPeer {
                    store_id: 9,
                    address: free_addr(),
                    role: ReplicaRole::Learner as i32,
                }),
            })),
        }),
    };
    let slow_addr = addr.clone();
    let running = tokio::spawn(async move { execute(&slow_addr, slow).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = execute(
        &addr,
        request(
            RG,
            31,
            1,
            1,
            Step::TransferLeader(TransferLeaderStep {
                to_store_id: leader,
            }),
        ),
    )
    .await;
    match result(busy.outcome.as_ref().unwrap()) {
        step_outcome::Result::Busy(b) => {
            assert_eq!((b.running_job_id, b.running_step_seq), (30, 1))
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let timed_out = running.await.unwrap();
    assert!(
        matches!(
            result(timed_out.outcome.as_ref().unwrap()),
            step_outcome::Result::Unavailable(_)
        ),
        "{timed_out:?}"
    );

    // Fencing: term 5 is seen, then a step of term 4 is refused and changes nothing.
    let transfer = |term| {
        request(
            RG,
            40 + term,
            1,
            term,
            Step::TransferLeader(TransferLeaderStep {
                to_store_id: leader,
            }),
        )
    };
    assert_ok(execute(&addr, transfer(5)).await.outcome.as_ref().unwrap());
    let stale = execute(&addr, transfer(4)).await;
    match result(stale.outcome.as_ref().unwrap()) {
        step_outcome::Result::StaleTerm(s) => {
            assert_eq!((s.request_term, s.highest_seen_term), (4, 5))
        }
        other => panic!("expected StaleTerm, got {other:?}"),
    }
    assert_eq!(status(&addr).await.unwrap().highest_mc_term, 5);
}

/// Region jobs share an RG: job 50 splits region 1, job 51 then splits the new region, and
/// job 50's step re-sent (a lost reply, an MC failover) must get job 50's own outcome back —
/// not run again against the shape job 51 left (with one record slot per RG it did, and the
/// repeat failed with EpochMismatch though the split had succeeded).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeat_gets_its_own_outcome_after_other_jobs_ran_on_the_rg() {
    let cluster = Cluster::start(1).await;
    cluster.bootstrap_rg(&[1]).await;
    let addr = cluster.addr(1);
    let split = |region, at: &[u8], new, version| {
        Step::SplitRegion(SplitRegionStep {
            region_id: region,
            split_key: at.to_vec(),
            new_region_id: new,
            expected_epoch: Some(RegionEpoch {
                version,
                conf_ver: 0,
            }),
        })
    };
    let first = execute(&addr, request(RG, 50, 1, 1, split(REGION, b"m", 2, 1))).await;
    assert_ok(first.outcome.as_ref().unwrap());
    let other = execute(&addr, request(RG, 51, 1, 1, split(2, b"t", 3, 2))).await;
    assert_ok(other.outcome.as_ref().unwrap());
    let mut again = request(RG, 50, 1, 1, split(REGION, b"m", 2, 1));
    again.envelope.as_mut().unwrap().attempt = 2;
    let again = execute(&addr, again).await;
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.outcome, first.outcome, "job 50's own outcome");
    assert_eq!(replica_status(&addr, RG).await.unwrap().regions.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_typed_error_and_changes_nothing() {
    let cluster = Cluster::start(1).await;
    cluster.bootstrap_rg(&[1]).await;
    let addr = cluster.addr(1);
    let before = replica_status(&addr, RG).await.unwrap();

    // A step without its oneof.
    let malformed = ExecuteStepRequest {
        envelope: Some(StepEnvelope {
            job_id: 1,
            step_seq: 9,
            attempt: 1,
            mc_term: 1,
            rg_id: RG,
            deadline_ms: 0,
        }),
        command: Some(StepCommand { step: None }),
    };
    match result(execute(&addr, malformed).await.outcome.as_ref().unwrap()) {
        step_outcome::Result::InvalidArgument(i) => assert_eq!(i.field, "command.step"),
        other => panic!("{other:?}"),
    }
    // No envelope at all.
    let bare = ExecuteStepRequest {
        envelope: None,
        command: None,
    };
    match result(execute(&addr, bare).await.outcome.as_ref().unwrap()) {
        step_outcome::Result::InvalidArgument(i) => assert_eq!(i.field, "envelope"),
        other => panic!("{other:?}"),
    }
    // A step for an RG this store does not host.
    let unknown = step(&addr, 77, 2, 1, Step::Promote(PromoteStep { store_id: 1 })).await;
    match result(&unknown) {
        step_outcome::Result::NotFound(n) => {
            assert_eq!((n.kind.as_str(), n.id.as_str()), ("rg", "77"))
        }
        other => panic!("{other:?}"),
    }
    // A bootstrap that names no members.
    let empty = step(
        &addr,
        78,
        3,
        1,
        Step::Create(CreateStep {
            bootstrap: true,
            members: vec![],
            campaign: false,
            regions: vec![],
        }),
    )
    .await;
    match result(&empty) {
        step_outcome::Result::InvalidArgument(i) => assert_eq!(i.field, "create.members"),
        other => panic!("{other:?}"),
    }
    assert!(
        replica_status(&addr, 78).await.is_none(),
        "a refused Create must not create the RG"
    );

    let mut kv = KvServiceClient::new(channel(&addr).await.unwrap());
    let code = |e: Option<Error>| e.map(|e| (e.code(), e.detail));
    // A key outside the region.
    let outside = kv
        .put(PutRequest {
            context: ctx(1),
            key: b"zz".to_vec(),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    match code(outside.error) {
        Some((ErrorCode::KeyNotInRegion, Some(error::Detail::KeyNotInRegion(k)))) => {
            assert_eq!((k.key.as_slice(), k.region_id), (b"zz".as_slice(), REGION))
        }
        other => panic!("{other:?}"),
    }
    // An unknown region.
    let unknown_region = Some(RegionContext {
        region_id: 999,
        epoch: Some(RegionEpoch {
            version: 1,
            conf_ver: 0,
        }),
    });
    let missing = kv
        .get(GetRequest {
            context: unknown_region,
            key: b"b".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    match code(missing.error) {
        Some((ErrorCode::NotFound, Some(error::Detail::NotFound(n)))) => {
            assert_eq!((n.kind.as_str(), n.id.as_str()), ("region", "999"))
        }
        other => panic!("{other:?}"),
    }
    // A stale epoch.
    let stale = kv
        .put(PutRequest {
            context: ctx(7),
            key: b"b".to_vec(),
            value: b"v".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    match code(stale.error) {
        Some((ErrorCode::EpochMismatch, Some(error::Detail::EpochMismatch(e)))) => {
            assert_eq!(e.current_epoch.map(|c| c.version), Some(1));
            // The current shape comes with the refusal: the client re-routes from it.
            assert_eq!(
                e.current_regions
                    .iter()
                    .map(|r| (r.id, r.epoch.map(|e| e.version)))
                    .collect::<Vec<_>>(),
                [(REGION, Some(1))]
            );
        }
        other => panic!("{other:?}"),
    }
    // A scan asking for more than one page may hold.
    let scan = kv
        .scan(ScanRequest {
            context: ctx(1),
            limit: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    match code(scan.error) {
        Some((ErrorCode::InvalidArgument, Some(error::Detail::InvalidArgument(i)))) => {
            assert_eq!(i.field, "limit")
        }
        other => panic!("{other:?}"),
    }
    // A mutation without an op, in a batch with a good one: nothing is written.
    let batch = BatchWriteRequest {
        context: ctx(1),
        mutations: vec![
            Mutation {
                op: MutationOp::Put as i32,
                key: b"b".to_vec(),
                value: b"v".to_vec(),
            },
            Mutation {
                op: MutationOp::Unspecified as i32,
                key: b"c".to_vec(),
                value: vec![],
            },
        ],
    };
    match code(kv.batch_write(batch).await.unwrap().into_inner().error) {
        Some((ErrorCode::InvalidArgument, Some(error::Detail::InvalidArgument(i)))) => {
            assert_eq!(i.field, "mutations.op")
        }
        other => panic!("{other:?}"),
    }
    let got = kv
        .get(GetRequest {
            context: ctx(1),
            key: b"b".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        got.error.is_none() && !got.found,
        "a refused batch must write nothing"
    );

    let after = replica_status(&addr, RG).await.unwrap();
    assert_eq!(before.regions, after.regions);
    assert_eq!(before.members, after.members);
}
