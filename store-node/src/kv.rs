//! KvService: the data path. Each request names a region and its epoch; the store checks the
//! region is hosted here, online, of that epoch, and holds the key, before touching data.
//! Writes go through the RG's Raft log. Reads are linearizable by ReadIndex: the leader
//! confirms its leadership with a quorum and waits until it has applied up to the commit index
//! before reading RocksDB (no clock assumptions, at the cost of one heartbeat round per read).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use openraft::async_runtime::WatchReceiver;
use openraft::raft::ReadPolicy;
use proto::v1::kv_service_server::KvService;
use proto::v1::{
    BatchWriteRequest, BatchWriteResponse, DeleteRequest, DeleteResponse, GetRequest, GetResponse,
    KvPair, MutationOp, PutRequest, PutResponse, RegionContext, ScanRequest, ScanResponse,
};
use rocksdb::{Direction, IteratorMode};
use tonic::{Request, Response, Status};

use crate::engine::CF_DATA;
use crate::error::{Result, StoreError};
use crate::rg::region_index::RegionEntry;
use crate::rg::types::{Op, Rejection, RgCommand, TypeConfig};
use crate::store::{Replica, Store};

/// Most pairs one Scan returns, and most bytes of keys and values (the rest is the next page).
pub const MAX_SCAN_LIMIT: usize = 10_000;
pub const MAX_SCAN_BYTES: usize = 16 << 20;

const DEFAULT_SCAN_LIMIT: usize = 1000;

/// The most user data one Put, Delete or BatchWrite carries: it becomes one Raft entry, which
/// must fit one Raft message (`server::MAX_MESSAGE`, 256 MiB) with room to spare, which every
/// replica holds in memory while it appends and applies it, and which delays the RG's other
/// traffic while it replicates (TiKV's raft-entry-max-size is 8 MiB for the same reasons).
pub const MAX_WRITE_BYTES: u64 = 16 << 20;

pub struct KvServer {
    store: Arc<Store>,
}

impl KvServer {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Region, replica and epoch checks shared by every request.
    fn route(&self, context: Option<&RegionContext>) -> Result<(RegionEntry, Arc<Replica>)> {
        let context = context.ok_or(StoreError::InvalidArgument {
            field: "context",
            reason: "missing".into(),
        })?;
        if context.region_id == 0 {
            return Err(StoreError::InvalidArgument {
                field: "context.region_id",
                reason: "must be set".into(),
            });
        }
        let entry = self
            .store
            .regions()
            .get(context.region_id)
            .ok_or(StoreError::RegionNotFound(context.region_id))?;
        let replica = self
            .store
            .replica(entry.rg_id)
            .ok_or(StoreError::RegionNotFound(context.region_id))?;
        if replica.is_offline() {
            return Err(StoreError::ReplicaOffline {
                rg_id: entry.rg_id,
                store_id: self.store.id(),
            });
        }
        self.store.touch(&replica);
        let version = context.epoch.as_ref().map(|e| e.version).unwrap_or(0);
        if version != entry.region.version {
            return Err(StoreError::EpochMismatch {
                region_id: entry.region.id,
                request: (
                    version,
                    context.epoch.as_ref().map(|e| e.conf_ver).unwrap_or(0),
                ),
                current: (entry.region.version, 0),
                current_regions: self.current_regions(entry.rg_id),
            });
        }
        Ok((entry, replica))
    }

    /// The regions of `rg` this store holds, for an EpochMismatch (at most 64: an RG holds
    /// about that many before the split checker moves some away).
    fn current_regions(&self, rg: u64) -> Vec<proto::v1::Region> {
        self.store
            .regions()
            .of_rg(rg)
            .iter()
            .take(64)
            .map(|e| crate::steps::region_proto(rg, &e.region))
            .collect()
    }

    fn check_key(entry: &RegionEntry, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(StoreError::InvalidArgument {
                field: "key",
                reason: "must not be empty".into(),
            });
        }
        if !entry.region.contains(key) {
            return Err(StoreError::KeyNotInRegion {
                key: key.to_vec(),
                region_id: entry.region.id,
                start: entry.region.start.clone(),
                end: entry.region.end.clone(),
            });
        }
        Ok(())
    }

    fn not_leader(
        &self,
        rg: u64,
        leader_id: Option<u64>,
        leader_address: Option<String>,
        replica: &Replica,
    ) -> StoreError {
        let term = replica.raft.metrics().borrow_watched().current_term;
        StoreError::NotLeader {
            rg_id: rg,
            leader_id,
            leader_address,
            term,
        }
    }

    /// One write is one Raft entry. `field` names the request's data in an error.
    async fn write(
        &self,
        context: Option<&RegionContext>,
        ops: Vec<Op>,
        field: &'static str,
    ) -> Result<()> {
        let bytes: u64 = ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => (key.len() + value.len()) as u64,
                Op::Delete { key } => key.len() as u64,
            })
            .sum();
        if bytes > MAX_WRITE_BYTES {
            return Err(StoreError::InvalidArgument {
                field,
                reason: format!(
                    "{bytes} bytes in one write; a write is one Raft entry and carries at most \
                     {MAX_WRITE_BYTES} bytes (split it)"
                ),
            });
        }
        let (entry, replica) = self.route(context)?;
        for op in &ops {
            Self::check_key(&entry, op.key())?;
        }
        let cmd = RgCommand::Write {
            region_id: entry.region.id,
            version: entry.region.version,
            ops,
        };
        // A big write takes longer to reach a quorum: time for its bytes at a slow 4 MiB/s.
        let wait = self.store.client_wait() + std::time::Duration::from_millis(bytes >> 12);
        let me = self.store.id();
        let written = tokio::time::timeout(wait, async {
            let first = replica.raft.client_write(cmd.clone()).await;
            match &first {
                // A leader that slept (hibernation) has no quorum acknowledgement within its
                // lease, and openraft refuses writes until it has one: one ReadIndex round
                // renews it, then the write goes through (instead of NotLeader without a
                // leader, and a client's backoff).
                Err(e) if lease_expired_here(e, &replica, me) => {
                    if replica
                        .raft
                        .ensure_linearizable(ReadPolicy::ReadIndex)
                        .await
                        .is_ok()
                    {
                        replica.raft.client_write(cmd).await
                    } else {
                        first
                    }
                }
                _ => first,
            }
        })
        .await;
        let Ok(written) = written else {
            return Err(StoreError::Unavailable(format!(
                "the write was not committed within {} ms (a leader without a quorum, or an \
                 election); its outcome is unknown: retry it",
                wait.as_millis()
            )));
        };
        let response = match written {
            Ok(r) => r.response().clone(),
            Err(e) => {
                if let Some(f) = e.forward_to_leader() {
                    let addr = f.leader_node.as_ref().map(|n| n.addr.clone());
                    return Err(self.not_leader(entry.rg_id, f.leader_id, addr, &replica));
                }
                return Err(StoreError::Unavailable(e.to_string()));
            }
        };
        if let Some(rejection) = response.rejected {
            let mut e = rejection_error(rejection);
            if let StoreError::EpochMismatch {
                current_regions, ..
            } = &mut e
            {
                *current_regions = self.current_regions(entry.rg_id);
            }
            return Err(e);
        }
        entry.stats.write_bytes.fetch_add(bytes, Ordering::Relaxed);
        entry.stats.write_ops.fetch_add(1, Ordering::Relaxed);
        self.store.traffic.write(bytes);
        Ok(())
    }

    /// Confirms leadership (ReadIndex) and returns the route re-checked after waiting for the
    /// local apply, since a split may have changed the region meanwhile.
    async fn linearizable(&self, context: Option<&RegionContext>) -> Result<RegionEntry> {
        let (entry, replica) = self.route(context)?;
        // openraft's own wait for the local apply has no end: a leader deposed after it took
        // the read index, or whose apply is stuck, would hold the call (and its client) forever.
        let wait = self.store.client_wait();
        let confirmed = tokio::time::timeout(
            wait,
            replica.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "leadership of RG {} not confirmed and applied within {} ms: retry",
                entry.rg_id,
                wait.as_millis()
            ))
        })?;
        if let Err(e) = confirmed {
            if let Some(f) = e.forward_to_leader() {
                let addr = f.leader_node.as_ref().map(|n| n.addr.clone());
                return Err(self.not_leader(entry.rg_id, f.leader_id, addr, &replica));
            }
            return Err(StoreError::Unavailable(e.to_string()));
        }
        let (entry, _) = self.route(context)?;
        Ok(entry)
    }
}

fn rejection_error(rejection: Rejection) -> StoreError {
    match rejection {
        Rejection::RegionNotFound { region_id } => StoreError::RegionNotFound(region_id),
        Rejection::EpochMismatch {
            region_id,
            request_version,
            current_version,
        } => StoreError::EpochMismatch {
            region_id,
            request: (request_version, 0),
            current: (current_version, 0),
            current_regions: vec![],
        },
        Rejection::KeyNotInRegion {
            region_id,
            key,
            start,
            end,
        } => StoreError::KeyNotInRegion {
            key,
            region_id,
            start,
            end,
        },
        Rejection::Invalid { reason } => StoreError::Failed(reason),
    }
}

pub(crate) fn rejection_to_error(rejection: Rejection) -> StoreError {
    rejection_error(rejection)
}

#[tonic::async_trait]
impl KvService for KvServer {
    async fn get(
        &self,
        request: Request<GetRequest>,
    ) -> std::result::Result<Response<GetResponse>, Status> {
        let req = request.into_inner();
        let result = async {
            let entry = self.linearizable(req.context.as_ref()).await?;
            Self::check_key(&entry, &req.key)?;
            let value = self
                .store
                .engine
                .db()
                .get_cf(self.store.engine.cf(CF_DATA), &req.key)?;
            let read = value.as_ref().map(|v| v.len()).unwrap_or(0) as u64;
            entry.stats.read_ops.fetch_add(1, Ordering::Relaxed);
            entry.stats.read_bytes.fetch_add(read, Ordering::Relaxed);
            self.store.traffic.read(read);
            Ok::<_, StoreError>(value)
        }
        .await;
        Ok(Response::new(match result {
            Ok(Some(value)) => GetResponse {
                error: None,
                found: true,
                value,
            },
            Ok(None) => GetResponse {
                error: None,
                found: false,
                value: vec![],
            },
            Err(e) => GetResponse {
                error: Some(e.to_proto()),
                found: false,
                value: vec![],
            },
        }))
    }

    async fn put(
        &self,
        request: Request<PutRequest>,
    ) -> std::result::Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        let result = self
            .write(
                req.context.as_ref(),
                vec![Op::Put {
                    key: req.key,
                    value: req.value,
                }],
                "value",
            )
            .await;
        Ok(Response::new(PutResponse {
            error: result.err().map(|e| e.to_proto()),
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> std::result::Result<Response<DeleteResponse>, Status> {
        let req = request.into_inner();
        let result = self
            .write(
                req.context.as_ref(),
                vec![Op::Delete { key: req.key }],
                "key",
            )
            .await;
        Ok(Response::new(DeleteResponse {
            error: result.err().map(|e| e.to_proto()),
        }))
    }

    async fn scan(
        &self,
        request: Request<ScanRequest>,
    ) -> std::result::Result<Response<ScanResponse>, Status> {
        let req = request.into_inner();
        let result = async {
            let entry = self.linearizable(req.context.as_ref()).await?;
            let region = &entry.region;
            let start = if req.start.as_slice() > region.start.as_slice() {
                req.start.clone()
            } else {
                region.start.clone()
            };
            let end = match (req.end.is_empty(), region.end.is_empty()) {
                (true, _) => region.end.clone(),
                (false, true) => req.end.clone(),
                (false, false) => std::cmp::min(req.end.clone(), region.end.clone()),
            };
            let limit = match req.limit as usize {
                0 => DEFAULT_SCAN_LIMIT,
                n if n > MAX_SCAN_LIMIT => {
                    return Err(StoreError::InvalidArgument {
                        field: "limit",
                        reason: format!("{n} is more than the {MAX_SCAN_LIMIT} one scan returns"),
                    });
                }
                n => n,
            };
            let mut bytes = 0usize;
            let mut pairs = Vec::new();
            let mut more = false;
            let iter = self.store.engine.db().iterator_cf(
                self.store.engine.cf(CF_DATA),
                IteratorMode::From(&start, Direction::Forward),
            );
            for item in iter {
                let (k, v) = item?;
                if !end.is_empty() && k.as_ref() >= end.as_slice() {
                    break;
                }
                // A page ends at `limit` pairs or MAX_SCAN_BYTES, whichever comes first: one
                // call must not make the store read a whole region into memory.
                if pairs.len() == limit || bytes >= MAX_SCAN_BYTES {
                    more = true;
                    break;
                }
                bytes += k.len() + if req.keys_only { 0 } else { v.len() };
                pairs.push(KvPair {
                    key: k.to_vec(),
                    value: if req.keys_only { vec![] } else { v.to_vec() },
                });
            }
            entry.stats.read_ops.fetch_add(1, Ordering::Relaxed);
            entry
                .stats
                .read_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
            self.store.traffic.read(bytes as u64);
            Ok::<_, StoreError>((pairs, more))
        }
        .await;
        Ok(Response::new(match result {
            Ok((pairs, more)) => ScanResponse {
                error: None,
                pairs,
                more,
            },
            Err(e) => ScanResponse {
                error: Some(e.to_proto()),
                pairs: vec![],
                more: false,
            },
        }))
    }

    async fn batch_write(
        &self,
        request: Request<BatchWriteRequest>,
    ) -> std::result::Result<Response<BatchWriteResponse>, Status> {
        let req = request.into_inner();
        let result = async {
            if req.mutations.is_empty() {
                return Err(StoreError::InvalidArgument {
                    field: "mutations",
                    reason: "must not be empty".into(),
                });
            }
            let mut ops = Vec::with_capacity(req.mutations.len());
            for (i, m) in req.mutations.into_iter().enumerate() {
                ops.push(match m.op() {
                    MutationOp::Put => Op::Put {
                        key: m.key,
                        value: m.value,
                    },
                    MutationOp::Delete => Op::Delete { key: m.key },
                    MutationOp::Unspecified => {
                        return Err(StoreError::InvalidArgument {
                            field: "mutations.op",
                            reason: format!("mutation {i} has no op"),
                        });
                    }
                });
            }
            self.write(req.context.as_ref(), ops, "mutations").await
        }
        .await;
        Ok(Response::new(BatchWriteResponse {
            error: result.err().map(|e| e.to_proto()),
        }))
    }
}

/// Whether a write was refused by a replica that is its RG's leader only because its lease
/// lapsed (openraft answers ForwardToLeader naming no leader).
fn lease_expired_here(
    e: &openraft::error::RaftError<TypeConfig, openraft::error::ClientWriteError<TypeConfig>>,
    replica: &Replica,
    me: u64,
) -> bool {
    let Some(f) = e.forward_to_leader() else {
        return false;
    };
    let metrics = replica.raft.metrics();
    let m = metrics.borrow_watched();
    f.leader_id.is_none() && m.state.is_leader() && m.current_leader == Some(me)
}
