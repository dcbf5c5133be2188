//! The receiving side of RaftService: routes each message to the local replica of its RG.

use std::path::PathBuf;

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use proto::v1::raft_service_server::RaftService;
use proto::v1::{
    RaftBatchRequest, RaftBatchResponse, RaftRequest, RaftResponse, SnapshotChunk,
    SnapshotResponse, StoreBeatRequest, StoreBeatResponse, snapshot_chunk,
};
use serde::Serialize;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use openraft::async_runtime::WatchReceiver;

use crate::codec;
use crate::error::StoreError;
use crate::rg::snapshot::{SnapshotFileMeta, SnapshotHandle};
use crate::rg::types::{Raft, Snapshot, TypeConfig, Vote};
use crate::security::{Identity, Peer};

/// What the Raft service needs from its store.
pub trait RgRouter: Send + Sync + 'static {
    fn store_id(&self) -> u64;
    fn raft(&self, rg: u64) -> Option<Raft>;
    /// Members the MC named for `rg` when it created this replica (see `admit`).
    fn named_peers(&self, _rg: u64) -> Vec<u64> {
        vec![]
    }
    /// A fresh directory to receive a snapshot of `rg` into.
    fn snapshot_recv_dir(&self, rg: u64) -> PathBuf;
    fn snapshot_started(&self) {}
    fn snapshot_finished(&self) {}
    /// A Raft message for `rg` arrived: a sleeping replica wakes (see `hibernate`).
    fn touch(&self, _rg: u64) {}
    /// A peer store's beat (see `hibernate`); `None` where nothing hibernates.
    fn store_beat(&self, _beat: &StoreBeatRequest) -> Option<StoreBeatResponse> {
        None
    }
}

pub struct RaftServer<R: RgRouter> {
    router: Arc<R>,
}

impl<R: RgRouter> RaftServer<R> {
    pub fn new(router: Arc<R>) -> Self {
        Self { router }
    }

    fn target(&self, req: &RaftRequest, sender: Option<u64>) -> Result<Raft, StoreError> {
        if let Some(sender) = sender
            && req.from_store_id != sender
        {
            return Err(StoreError::InvalidArgument {
                field: "from_store_id",
                reason: format!("the caller is store {sender}, not {}", req.from_store_id),
            });
        }
        if req.to_store_id != 0 && req.to_store_id != self.router.store_id() {
            return Err(StoreError::InvalidArgument {
                field: "to_store_id",
                reason: format!(
                    "this is store {}, not {}",
                    self.router.store_id(),
                    req.to_store_id
                ),
            });
        }
        self.router
            .raft(req.rg_id)
            .ok_or(StoreError::RgNotFound(req.rg_id))
    }
}

/// Only a member of the group (voter or learner, in either half of a joint configuration)
/// may move its replicas: a store of the cluster that is not one could otherwise call
/// elections or append entries to any RG. A replica's own view of the members can be stale (a
/// replica removed and added back, one that was down through membership changes), so the
/// stores the MC named as the RG's members when it created this replica (`named`, persisted)
/// are admitted too. A replica that knows no members and was named none (an empty learner of
/// an older MC) admits any store of the cluster. `claimed` is the store the message says it
/// comes from (the leader of an append, the candidate of a vote): it must be the sender, so a
/// member cannot speak as another.
fn admit(
    raft: &Raft,
    rg: u64,
    sender: Option<u64>,
    claimed: Option<u64>,
    named: impl FnOnce() -> Vec<u64>,
) -> Result<(), StoreError> {
    let Some(sender) = sender else {
        return Ok(());
    };
    if let Some(claimed) = claimed
        && claimed != sender
    {
        return Err(StoreError::InvalidArgument {
            field: "payload",
            reason: format!("store {sender} sent a message of store {claimed}"),
        });
    }
    let watch = raft.metrics();
    let metrics = watch.borrow_watched();
    let membership = metrics.membership_config.membership();
    let mut nodes = membership.nodes().map(|(id, _)| *id).peekable();
    let knows_none = nodes.peek().is_none();
    if nodes.any(|id| id == sender) {
        return Ok(());
    }
    let named = named();
    if named.contains(&sender) || (knows_none && named.is_empty()) {
        Ok(())
    } else {
        Err(StoreError::NotAMember { rg, store: sender })
    }
}

/// The store a Raft call came from, by its certificate (`None`: the store runs --insecure).
fn sender<T>(request: &Request<T>) -> Option<u64> {
    match request.extensions().get::<Peer>() {
        Some(Peer::Authenticated(Identity::Store(id))) => Some(*id),
        // The guard lets nothing else through with TLS on; refuse to guess if it ever did.
        Some(Peer::Unchecked) => None,
        _ => Some(0),
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> RaftResponse {
    let result = result.map_err(|e| e.to_string());
    match codec::to_wire(&result) {
        Ok(payload) => RaftResponse {
            error: None,
            payload,
        },
        Err(e) => RaftResponse {
            error: Some(e.to_proto()),
            payload: vec![],
        },
    }
}

fn failed(error: StoreError) -> RaftResponse {
    RaftResponse {
        error: Some(error.to_proto()),
        payload: vec![],
    }
}

/// Which RPC a message of a batch is.
enum Kind {
    Append,
    Vote,
    PreVote,
    Transfer,
}

impl<R: RgRouter> RaftServer<R> {
    async fn handle(&self, req: RaftRequest, kind: Kind, sender: Option<u64>) -> RaftResponse {
        let raft = match self.target(&req, sender) {
            Ok(raft) => raft,
            Err(e) => return failed(e),
        };
        let rg = req.rg_id;
        let response = self.dispatch(raft, req, kind, sender).await;
        // Woken after the message is in: a follower's election timer restarts from the
        // leader's message it just took, not from before it fell asleep. A message refused
        // before Raft saw it (from a store that is no member) wakes nothing.
        if response.error.is_none() {
            self.router.touch(rg);
        }
        response
    }

    async fn dispatch(
        &self,
        raft: Raft,
        req: RaftRequest,
        kind: Kind,
        sender: Option<u64>,
    ) -> RaftResponse {
        let rg = req.rg_id;
        match kind {
            Kind::Append => {
                match codec::from_wire::<AppendEntriesRequest<TypeConfig>>(&req.payload) {
                    Ok(rpc) => match admit(
                        &raft,
                        rg,
                        sender,
                        Some(rpc.vote.leader_id().voted_for),
                        || self.router.named_peers(rg),
                    ) {
                        // A follower slow to take entries in (a loaded disk): tests only.
                        Ok(())
                            if !rpc.entries.is_empty()
                                && crate::failpoint::reach("store.raft.append", "").await =>
                        {
                            failed(StoreError::Unavailable(
                                "failpoint store.raft.append".into(),
                            ))
                        }
                        Ok(()) => reply(raft.append_entries(rpc).await),
                        Err(e) => failed(e),
                    },
                    Err(e) => failed(e),
                }
            }
            Kind::Transfer if let Err(e) = admit(&raft, rg, sender, None, Vec::new) => failed(e),
            Kind::Vote | Kind::PreVote => {
                match codec::from_wire::<VoteRequest<TypeConfig>>(&req.payload) {
                    // Votes come only from members, for themselves.
                    Ok(rpc) => match admit(
                        &raft,
                        rg,
                        sender,
                        Some(rpc.vote.leader_id().voted_for),
                        Vec::new,
                    ) {
                        Ok(()) if matches!(kind, Kind::Vote) => reply(raft.vote(rpc).await),
                        Ok(()) => reply(raft.pre_vote(rpc).await),
                        Err(e) => failed(e),
                    },
                    Err(e) => failed(e),
                }
            }
            Kind::Transfer => {
                match codec::from_wire::<TransferLeaderRequest<TypeConfig>>(&req.payload) {
                    Ok(rpc) => reply(raft.handle_transfer_leader(rpc).await),
                    Err(e) => failed(e),
                }
            }
        }
    }

    async fn receive_snapshot(
        &self,
        mut stream: Streaming<SnapshotChunk>,
        sender: Option<u64>,
    ) -> Result<SnapshotResponse, StoreError> {
        let first = stream
            .next()
            .await
            .ok_or_else(|| StoreError::InvalidArgument {
                field: "chunk",
                reason: "empty snapshot stream".into(),
            })?
            .map_err(|s| StoreError::Unavailable(s.message().to_string()))?;
        let Some(snapshot_chunk::Chunk::Header(header)) = first.chunk else {
            return Err(StoreError::InvalidArgument {
                field: "chunk",
                reason: "the first chunk must be a header".into(),
            });
        };
        let raft = self
            .router
            .raft(header.rg_id)
            .ok_or(StoreError::RgNotFound(header.rg_id))?;
        let vote: Vote = codec::from_wire(&header.vote)?;
        admit(
            &raft,
            header.rg_id,
            sender,
            Some(vote.leader_id().voted_for),
            || self.router.named_peers(header.rg_id),
        )?;
        let file_meta: SnapshotFileMeta = codec::from_record(&header.meta)?;
        let dir = self.router.snapshot_recv_dir(header.rg_id);
        tokio::fs::create_dir_all(&dir).await?;
        let handle = SnapshotHandle { dir: dir.clone() };
        let mut received = 0u64;
        let result = async {
            tokio::fs::write(handle.meta_path(), &header.meta).await?;
            if header.total_bytes > 0 {
                // One blocking thread writes the file; chunks arrive through a short queue.
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
                let path = handle.data_path();
                let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::io::Write;
                    let mut file = std::fs::File::create(path)?;
                    while let Some(chunk) = rx.blocking_recv() {
                        file.write_all(&chunk)?;
                    }
                    file.sync_all()
                });
                while let Some(chunk) = stream.next().await {
                    let chunk =
                        chunk.map_err(|s| StoreError::Unavailable(s.message().to_string()))?;
                    match chunk.chunk {
                        Some(snapshot_chunk::Chunk::Data(data)) => {
                            received += data.chunk.len() as u64;
                            if received > header.total_bytes {
                                return Err(StoreError::InvalidArgument {
                                    field: "chunk",
                                    reason: format!(
                                        "more than the {} bytes the header announced",
                                        header.total_bytes
                                    ),
                                });
                            }
                            if tx.send(data.chunk).await.is_err() {
                                break;
                            }
                        }
                        _ => {
                            return Err(StoreError::InvalidArgument {
                                field: "chunk",
                                reason: "a second header".into(),
                            });
                        }
                    }
                }
                drop(tx);
                writer
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))??;
                if received != header.total_bytes {
                    return Err(StoreError::Unavailable(format!(
                        "snapshot stream ended after {received} of {} bytes",
                        header.total_bytes
                    )));
                }
            }
            let snapshot = Snapshot {
                meta: file_meta.meta.clone(),
                snapshot: handle.clone(),
            };
            raft.install_full_snapshot(vote, snapshot)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        let response = reply::<_, StoreError>(result);
        Ok(SnapshotResponse {
            error: response.error,
            payload: response.payload,
            bytes_received: received,
        })
    }
}

#[tonic::async_trait]
impl<R: RgRouter> RaftService for RaftServer<R> {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new({
            let from = sender(&request);
            self.handle(request.into_inner(), Kind::Append, from).await
        }))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new({
            let from = sender(&request);
            self.handle(request.into_inner(), Kind::Vote, from).await
        }))
    }

    async fn pre_vote(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new({
            let from = sender(&request);
            self.handle(request.into_inner(), Kind::PreVote, from).await
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new({
            let from = sender(&request);
            self.handle(request.into_inner(), Kind::Transfer, from)
                .await
        }))
    }

    async fn batch(
        &self,
        request: Request<RaftBatchRequest>,
    ) -> Result<Response<RaftBatchResponse>, Status> {
        let from = sender(&request);
        let requests = request.into_inner().requests;
        let replies = futures::future::join_all(
            requests
                .into_iter()
                .map(|r| self.handle(r, Kind::Append, from)),
        )
        .await;
        Ok(Response::new(RaftBatchResponse { responses: replies }))
    }

    async fn store_beat(
        &self,
        request: Request<StoreBeatRequest>,
    ) -> Result<Response<StoreBeatResponse>, Status> {
        let from = sender(&request);
        let beat = request.into_inner();
        let refused = |e: StoreError| StoreBeatResponse {
            error: Some(e.to_proto()),
            incarnation: 0,
        };
        if crate::failpoint::reach("store.beat.received", "").await {
            return Ok(Response::new(refused(StoreError::Unavailable(
                "failpoint store.beat.received".into(),
            ))));
        }
        // A store speaks only for itself, and only to this store.
        if let Some(sender) = from
            && beat.from_store_id != sender
        {
            return Ok(Response::new(refused(StoreError::InvalidArgument {
                field: "from_store_id",
                reason: format!("the caller is store {sender}, not {}", beat.from_store_id),
            })));
        }
        if beat.to_store_id != self.router.store_id() {
            return Ok(Response::new(refused(StoreError::InvalidArgument {
                field: "to_store_id",
                reason: format!(
                    "this is store {}, not {}",
                    self.router.store_id(),
                    beat.to_store_id
                ),
            })));
        }
        Ok(Response::new(self.router.store_beat(&beat).unwrap_or(
            StoreBeatResponse {
                error: None,
                incarnation: 0,
            },
        )))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.router.snapshot_started();
        let from = sender(&request);
        let result = self.receive_snapshot(request.into_inner(), from).await;
        self.router.snapshot_finished();
        match result {
            Ok(response) => Ok(Response::new(response)),
            Err(e) => Ok(Response::new(SnapshotResponse {
                error: Some(e.to_proto()),
                payload: vec![],
                bytes_received: 0,
            })),
        }
    }
}
