//! Raft traffic between MCs, over the same RaftService the stores speak (the messages carry
//! `rg_id` 0, the MC group, and MC ids where stores put store ids). One lazily connected
//! channel per peer MC.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use proto::v1::raft_service_client::RaftServiceClient;
use proto::v1::{RaftRequest, SnapshotChunk, SnapshotData, SnapshotHeader, snapshot_chunk};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::types::{Snapshot, TypeConfig, Vote, from_wire, to_wire};

/// Bytes of catalog snapshot per message.
const SNAPSHOT_CHUNK: usize = 1 << 20;
/// The largest Raft message between MCs (a catalog snapshot is sent in chunks).
pub const MAX_MESSAGE: usize = 64 << 20;

pub struct McTransport {
    id: u64,
    channels: Mutex<HashMap<String, Channel>>,
    security: infra::security::Security,
}

impl McTransport {
    pub fn new(id: u64, security: infra::security::Security) -> Arc<Self> {
        Arc::new(Self {
            id,
            channels: Mutex::default(),
            security,
        })
    }

    fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, String> {
        let mut channels = self.channels.lock().expect("channel map lock");
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self
                    .security
                    .endpoint(addr)
                    .map_err(|e| format!("bad MC address {addr}: {e}"))?
                    .tcp_nodelay(true)
                    .connect_timeout(Duration::from_millis(500))
                    .connect_lazy();
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }
}

impl RaftNetworkFactory<TypeConfig> for Arc<McTransport> {
    type Network = McNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        McNetwork {
            target,
            addr: node.addr.clone(),
            transport: self.clone(),
        }
    }
}

pub struct McNetwork {
    target: u64,
    addr: String,
    transport: Arc<McTransport>,
}

fn unreachable(msg: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(msg))
}

fn network(msg: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(msg))
}

impl McNetwork {
    fn request(&self, payload: Vec<u8>) -> RaftRequest {
        RaftRequest {
            rg_id: 0,
            from_store_id: self.transport.id,
            to_store_id: self.target,
            payload,
        }
    }

    /// One unary Raft RPC; the reply payload is `Result<Resp, String>`.
    async fn call<Req, Resp, Fut>(
        &mut self,
        carries_entries: bool,
        req: &Req,
        option: &RPCOption,
        send: impl FnOnce(RaftServiceClient<Channel>, tonic::Request<RaftRequest>) -> Fut,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Fut: Future<Output = Result<tonic::Response<proto::v1::RaftResponse>, tonic::Status>>,
    {
        let client = self.transport.client(&self.addr).map_err(unreachable)?;
        let payload = to_wire(req).map_err(network)?;
        let timeout =
            infra::raft_rpc::rpc_timeout(option.soft_ttl(), carries_entries, payload.len());
        let mut request = tonic::Request::new(self.request(payload));
        request.set_timeout(timeout);
        let reply = match send(client, request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(unreachable(status.message()));
            }
            Err(status) => return Err(network(format!("{}: {}", status.code(), status.message()))),
        };
        if let Some(error) = reply.error {
            return Err(unreachable(error.message));
        }
        let result: Result<Resp, String> = from_wire(&reply.payload).map_err(network)?;
        result.map_err(network)
    }

    async fn send_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let fail = |e: String| StreamingError::Unreachable(Unreachable::from_string(e));
        let mut client = self.transport.client(&self.addr).map_err(fail)?;
        let data = snapshot.snapshot.into_inner();
        let header = SnapshotHeader {
            rg_id: 0,
            from_store_id: self.transport.id,
            to_store_id: self.target,
            vote: to_wire(&vote).map_err(|e| fail(e.to_string()))?,
            meta: to_wire(&snapshot.meta).map_err(|e| fail(e.to_string()))?,
            total_bytes: data.len() as u64,
        };
        let mut chunks = vec![SnapshotChunk {
            chunk: Some(snapshot_chunk::Chunk::Header(header)),
        }];
        chunks.extend(data.chunks(SNAPSHOT_CHUNK).map(|c| SnapshotChunk {
            chunk: Some(snapshot_chunk::Chunk::Data(SnapshotData {
                chunk: c.to_vec(),
            })),
        }));
        let reply = client
            .install_snapshot(tokio_stream::iter(chunks))
            .await
            .map_err(|s| fail(s.message().to_string()))?
            .into_inner();
        if let Some(error) = reply.error {
            return Err(fail(error.message));
        }
        let result: Result<SnapshotResponse<TypeConfig>, String> =
            from_wire(&reply.payload).map_err(|e| fail(e.to_string()))?;
        result.map_err(fail)
    }
}

impl RaftNetworkV2<TypeConfig> for McNetwork {
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(
            !rpc.entries.is_empty(),
            &rpc,
            &option,
            |mut c, r| async move { c.append_entries(r).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(
            false,
            &rpc,
            &option,
            |mut c, r| async move { c.vote(r).await },
        )
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(false, &rpc, &option, |mut c, r| async move {
            c.pre_vote(r).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            result = self.send_snapshot(vote, snapshot) => result,
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(false, &req, &option, |mut c, r| async move {
            c.transfer_leader(r).await
        })
        .await
    }
}
