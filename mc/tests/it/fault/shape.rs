//! The table's shape as the MC's routes show it, and for each job type the job to run against
//! it (shared by the fault matrix and the chaos run).

use proto::v1::*;

use super::harness::Cluster;

/// The table both runs write to.
pub const TABLE: &str = "app/t";

/// What the cluster looks like now: the table's RGs, their members and leaders.
pub struct Shape {
    /// (rg, members, leader) of each RG holding a region of the table.
    pub rgs: Vec<(u64, Vec<u64>, u64)>,
    /// The table's regions: (start, end, id, rg), in key order.
    pub regions: Vec<(Vec<u8>, Vec<u8>, u64, u64)>,
    pub stores: Vec<u64>,
    /// A key in the middle of the case's keys: where a split goes.
    pub split_key: Vec<u8>,
}

impl Shape {
    pub async fn read(cluster: &Cluster, split_key: Vec<u8>) -> Self {
        let mut meta = cluster.meta().await;
        let routes = meta
            .get_routes(GetRoutesRequest {
                target: Some(get_routes_request::Target::Object(ObjectRef {
                    target: Some(object_ref::Target::Path(TABLE.into())),
                })),
            })
            .await
            .unwrap()
            .into_inner()
            .routes;
        let mut rgs: Vec<(u64, Vec<u64>, u64)> = Vec::new();
        let mut regions = Vec::new();
        for r in &routes {
            let region = r.region.as_ref().unwrap();
            let range = region.range.clone().unwrap();
            regions.push((range.start, range.end, region.id, r.rg_id));
            if !rgs.iter().any(|(id, _, _)| *id == r.rg_id) {
                let mut members: Vec<u64> = r.replicas.iter().map(|x| x.store_id).collect();
                members.sort();
                rgs.push((r.rg_id, members, r.leader_store_id));
            }
        }
        regions.sort();
        Self {
            rgs,
            regions,
            stores: cluster.store_ids(),
            split_key,
        }
    }

    pub fn rg(&self) -> (u64, Vec<u64>, u64) {
        self.rgs[0].clone()
    }

    pub fn outside(&self, members: &[u64]) -> u64 {
        *self.stores.iter().find(|s| !members.contains(s)).unwrap()
    }

    pub fn follower(&self, members: &[u64], leader: u64) -> u64 {
        *members.iter().find(|s| **s != leader).unwrap()
    }
}

/// A job of one type against the current shape, and the stores its faults aim at: (source,
/// target), where a job has them (otherwise the RG's leader and a follower).
pub type Build = fn(&Shape) -> Option<(job_spec::Spec, u64, u64)>;

pub fn migrate(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let (rg, members, leader) = s.rg();
    let (from, to) = (s.follower(&members, leader), s.outside(&members));
    Some((
        job_spec::Spec::MigrateReplica(MigrateReplicaSpec {
            rg_id: rg,
            from_store_id: from,
            to_store_id: to,
        }),
        from,
        to,
    ))
}

pub fn transfer(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let (rg, members, leader) = s.rg();
    let to = s.follower(&members, leader);
    Some((
        job_spec::Spec::TransferLeader(TransferLeaderSpec {
            rg_id: rg,
            to_store_id: to,
        }),
        leader,
        to,
    ))
}

pub fn add_then_remove(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let (rg, members, leader) = s.rg();
    let to = s.outside(&members);
    Some((
        job_spec::Spec::AddReplica(AddReplicaSpec {
            rg_id: rg,
            store_id: to,
            role: ReplicaRole::Voter as i32,
        }),
        leader,
        to,
    ))
}

pub fn split_region(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let k = &s.split_key;
    let (_, _, region, rg) = s
        .regions
        .iter()
        .find(|(a, b, _, _)| a < k && (b.is_empty() || k < b))?
        .clone();
    let (_, members, leader) = s.rgs.iter().find(|(id, _, _)| *id == rg)?.clone();
    Some((
        job_spec::Spec::SplitRegion(SplitRegionSpec {
            region_id: region,
            split_key: k.clone(),
            new_region_id: 0,
        }),
        leader,
        s.follower(&members, leader),
    ))
}

/// Two adjacent regions of the table in one RG, merged.
pub fn merge_region(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let pair = s
        .regions
        .windows(2)
        .find(|w| w[0].1 == w[1].0 && w[0].3 == w[1].3)?;
    let (_, members, leader) = s.rgs.iter().find(|(id, _, _)| *id == pair[0].3)?.clone();
    Some((
        job_spec::Spec::MergeRegion(MergeRegionSpec {
            left_region_id: pair[0].2,
            right_region_id: pair[1].2,
        }),
        leader,
        s.follower(&members, leader),
    ))
}

pub fn remove(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let (rg, members, leader) = s.rg();
    let store = s.follower(&members, leader);
    Some((
        job_spec::Spec::RemoveReplica(RemoveReplicaSpec {
            rg_id: rg,
            store_id: store,
        }),
        leader,
        store,
    ))
}

/// The table's last region into an RG of its own (when its RG holds more than one).
pub fn split_rg(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let (rg, members, leader) = s.rg();
    let mine: Vec<u64> = s
        .regions
        .iter()
        .filter(|r| r.3 == rg)
        .map(|r| r.2)
        .collect();
    if mine.len() < 2 {
        return None;
    }
    Some((
        job_spec::Spec::SplitRg(SplitRgSpec {
            rg_id: rg,
            region_ids: vec![*mine.last()?],
            new_rg_id: 0,
        }),
        leader,
        s.follower(&members, leader),
    ))
}

/// Two RGs of the table on the same stores, merged.
pub fn merge_rg(s: &Shape) -> Option<(job_spec::Spec, u64, u64)> {
    let (target, members, leader) = s.rgs.first()?.clone();
    let (source, _, _) = s
        .rgs
        .iter()
        .skip(1)
        .find(|(_, m, _)| *m == members)?
        .clone();
    Some((
        job_spec::Spec::MergeRg(MergeRgSpec {
            source_rg_id: source,
            target_rg_id: target,
        }),
        leader,
        s.follower(&members, leader),
    ))
}

/// The job types of the matrix and the chaos run, by name.
pub const TYPES: &[(&str, Build)] = &[
    ("MigrateReplica", migrate),
    ("TransferLeader", transfer),
    ("AddReplica", add_then_remove),
    ("RemoveReplica", remove),
    ("SplitRegion", split_region),
    ("MergeRegion", merge_region),
    ("SplitRg", split_rg),
    ("MergeRg", merge_rg),
];
