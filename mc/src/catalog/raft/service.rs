//! The receiving side of the MC group's Raft traffic: RaftService messages for `rg_id` 0 go
//! to this MC's catalog Raft.

use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use proto::v1::raft_service_server::RaftService;
use proto::v1::{
    ErrorCode, RaftBatchRequest, RaftBatchResponse, RaftRequest, RaftResponse, SnapshotChunk,
    SnapshotResponse, snapshot_chunk,
};
use serde::Serialize;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::Raft;
use super::types::{Snapshot, SnapshotMeta, TypeConfig, Vote, from_wire, to_wire};

pub struct McRaftService {
    id: u64,
    raft: Raft,
}

impl McRaftService {
    pub fn new(id: u64, raft: Raft) -> Self {
        Self { id, raft }
    }

    fn check(&self, rg_id: u64, to: u64) -> Result<(), Failure> {
        if rg_id != 0 {
            return Err((
                ErrorCode::InvalidArgument,
                format!("this is an MC; it hosts the MC group (rg_id 0), not RG {rg_id}"),
            ));
        }
        if to != 0 && to != self.id {
            return Err((
                ErrorCode::InvalidArgument,
                format!("this is MC {}, not {to}", self.id),
            ));
        }
        Ok(())
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> RaftResponse {
    let result = result.map_err(|e| e.to_string());
    match to_wire(&result) {
        Ok(payload) => RaftResponse {
            error: None,
            payload,
        },
        Err(e) => failed((ErrorCode::Internal, e.to_string())),
    }
}

/// Why a message was not delivered to the MC's Raft.
type Failure = (ErrorCode, String);

fn failed((code, message): Failure) -> RaftResponse {
    RaftResponse {
        error: Some(proto::v1::Error::new(code, message)),
        payload: vec![],
    }
}

fn undecodable(e: std::io::Error) -> RaftResponse {
    failed((ErrorCode::InvalidArgument, format!("payload: {e}")))
}

enum Kind {
    Append,
    Vote,
    PreVote,
    Transfer,
}

impl McRaftService {
    async fn handle(&self, req: RaftRequest, kind: Kind) -> RaftResponse {
        if let Err(e) = self.check(req.rg_id, req.to_store_id) {
            return failed(e);
        }
        let raft = &self.raft;
        match kind {
            Kind::Append => match from_wire::<AppendEntriesRequest<TypeConfig>>(&req.payload) {
                Ok(rpc) => reply(raft.append_entries(rpc).await),
                Err(e) => undecodable(e),
            },
            Kind::Vote => match from_wire::<VoteRequest<TypeConfig>>(&req.payload) {
                Ok(rpc) => reply(raft.vote(rpc).await),
                Err(e) => undecodable(e),
            },
            Kind::PreVote => match from_wire::<VoteRequest<TypeConfig>>(&req.payload) {
                Ok(rpc) => reply(raft.pre_vote(rpc).await),
                Err(e) => undecodable(e),
            },
            Kind::Transfer => match from_wire::<TransferLeaderRequest<TypeConfig>>(&req.payload) {
                Ok(rpc) => reply(raft.handle_transfer_leader(rpc).await),
                Err(e) => undecodable(e),
            },
        }
    }

    async fn receive_snapshot(
        &self,
        mut stream: Streaming<SnapshotChunk>,
    ) -> Result<RaftResponse, Failure> {
        let bad = |reason: &str| (ErrorCode::InvalidArgument, reason.to_string());
        let first = stream
            .next()
            .await
            .ok_or_else(|| bad("empty snapshot stream"))?
            .map_err(|s| (ErrorCode::Unavailable, s.message().to_string()))?;
        let Some(snapshot_chunk::Chunk::Header(header)) = first.chunk else {
            return Err(bad("the first chunk must be a header"));
        };
        self.check(header.rg_id, header.to_store_id)?;
        let vote: Vote = from_wire(&header.vote).map_err(|e| bad(&e.to_string()))?;
        let meta: SnapshotMeta = from_wire(&header.meta).map_err(|e| bad(&e.to_string()))?;
        // What the header claims is only reserved up to one message's worth; more grows as it comes.
        let mut data =
            Vec::with_capacity(header.total_bytes.min(super::network::MAX_MESSAGE as u64) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|s| (ErrorCode::Unavailable, s.message().to_string()))?;
            match chunk.chunk {
                Some(snapshot_chunk::Chunk::Data(d)) => data.extend_from_slice(&d.chunk),
                _ => return Err(bad("a second header")),
            }
        }
        if data.len() as u64 != header.total_bytes {
            return Err((
                ErrorCode::Unavailable,
                format!(
                    "snapshot stream ended after {} of {} bytes",
                    data.len(),
                    header.total_bytes
                ),
            ));
        }
        let snapshot = Snapshot {
            meta,
            snapshot: std::io::Cursor::new(data),
        };
        Ok(reply(self.raft.install_full_snapshot(vote, snapshot).await))
    }
}

#[tonic::async_trait]
impl RaftService for McRaftService {
    async fn append_entries(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new(
            self.handle(request.into_inner(), Kind::Append).await,
        ))
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new(
            self.handle(request.into_inner(), Kind::Vote).await,
        ))
    }

    async fn pre_vote(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new(
            self.handle(request.into_inner(), Kind::PreVote).await,
        ))
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftRequest>,
    ) -> Result<Response<RaftResponse>, Status> {
        Ok(Response::new(
            self.handle(request.into_inner(), Kind::Transfer).await,
        ))
    }

    async fn batch(
        &self,
        request: Request<RaftBatchRequest>,
    ) -> Result<Response<RaftBatchResponse>, Status> {
        let requests = request.into_inner().requests;
        let responses =
            futures::future::join_all(requests.into_iter().map(|r| self.handle(r, Kind::Append)))
                .await;
        Ok(Response::new(RaftBatchResponse { responses }))
    }

    /// Store beats are between stores: the MC's catalog group does not hibernate.
    async fn store_beat(
        &self,
        _request: Request<proto::v1::StoreBeatRequest>,
    ) -> Result<Response<proto::v1::StoreBeatResponse>, Status> {
        Err(Status::unimplemented(
            "StoreBeat is between store nodes; this is an MC",
        ))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        let response = match self.receive_snapshot(request.into_inner()).await {
            Ok(r) => r,
            Err(e) => failed(e),
        };
        Ok(Response::new(SnapshotResponse {
            error: response.error,
            payload: response.payload,
            bytes_received: 0,
        }))
    }
}
