//! The sending side of RaftService: one lazily connected gRPC channel per peer store, shared
//! by every RG that replicates to it; each message carries its RG id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use openraft::BasicNode;
use openraft::entry::RaftEntry;
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

use crate::security::Security;

use crate::codec;
use crate::rg::snapshot::SnapshotHandle;
use crate::rg::types::{Snapshot, TypeConfig, Vote};

/// Size of one snapshot chunk on the wire.
const SNAPSHOT_CHUNK: usize = 256 << 10;

/// Which connection a message takes. Heartbeats and votes get their own, so they are not
/// queued behind megabytes of entries or a snapshot on the data connection (a follower that
/// hears no heartbeat while a large batch streams calls an election, and under a steady load
/// of large writes the RG kept changing leaders).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Control,
    Data,
}

/// Channels to peer stores, by address and lane.
pub struct RaftTransport {
    store_id: std::sync::atomic::AtomicU64,
    /// The store's cluster id, sent with every message (0 until it has one).
    cluster_id: std::sync::atomic::AtomicU64,
    security: Security,
    channels: Mutex<HashMap<(String, Lane), Channel>>,
    /// Snapshot bytes per second this store sends to one peer; 0 is unlimited. Keeps a
    /// catching-up replica from starving the foreground traffic of the link.
    snapshot_rate: u64,
    /// Snapshots being sent now, for the store heartbeat.
    sending: std::sync::atomic::AtomicU32,
}

impl RaftTransport {
    pub fn new(
        store_id: u64,
        snapshot_rate: u64,
        security: Security,
        cluster_id: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            store_id: store_id.into(),
            cluster_id: cluster_id.into(),
            security,
            channels: Mutex::default(),
            snapshot_rate,
            sending: Default::default(),
        })
    }

    pub fn store_id(&self) -> u64 {
        self.store_id.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn cluster_id_set(&self, id: u64) {
        self.cluster_id
            .store(id, std::sync::atomic::Ordering::Release);
    }

    /// A request to a peer, tagged with this store's cluster id.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        crate::security::tag(&mut request, self.cluster_id());
        request
    }

    pub fn snapshots_sending(&self) -> u32 {
        self.sending.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn store_id_set(&self, id: u64) {
        self.store_id
            .store(id, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn client(&self, addr: &str, lane: Lane) -> Result<RaftServiceClient<Channel>, String> {
        let mut channels = self.channels.lock().expect("channel map lock");
        let key = (addr.to_string(), lane);
        if let Some(channel) = channels.get(&key) {
            return Ok(RaftServiceClient::new(channel.clone())
                .max_decoding_message_size(crate::server::MAX_MESSAGE)
                .max_encoding_message_size(crate::server::MAX_MESSAGE));
        }
        let endpoint = self
            .security
            .endpoint(addr)
            .map_err(|e| format!("bad peer address {addr}: {e}"))?
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            .connect_timeout(std::time::Duration::from_secs(1))
            // A hung peer (SIGSTOP, a stuck disk) is found by pings, also mid-snapshot.
            .http2_keep_alive_interval(std::time::Duration::from_secs(5))
            .keep_alive_timeout(std::time::Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        channels.insert(key, channel.clone());
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(crate::server::MAX_MESSAGE)
            .max_encoding_message_size(crate::server::MAX_MESSAGE))
    }
}

/// Creates the per-peer clients of one RG.
pub struct RgNetworkFactory {
    pub rg: u64,
    pub transport: Arc<RaftTransport>,
}

impl RaftNetworkFactory<TypeConfig> for RgNetworkFactory {
    type Network = RgNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        RgNetwork {
            rg: self.rg,
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

pub struct RgNetwork {
    rg: u64,
    target: u64,
    addr: String,
    transport: Arc<RaftTransport>,
}

/// Bytes of entries one AppendEntries carries at most (one larger entry still goes alone; the
/// KV API refuses writes above `kv::MAX_WRITE_BYTES`, so every entry fits a message).
const APPEND_BUDGET: u64 = 16 << 20;

/// How many of `entries`, from the first, fit in `budget` bytes (at least one).
fn within_budget(entries: &[crate::rg::types::Entry], budget: u64) -> usize {
    let mut total = 0u64;
    for (i, e) in entries.iter().enumerate() {
        total += crate::rg::types::approx_size(e);
        if total > budget && i > 0 {
            return i;
        }
    }
    entries.len()
}

fn unreachable(msg: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(msg))
}

fn network(msg: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(msg))
}

impl RgNetwork {
    fn request(&self, payload: Vec<u8>) -> RaftRequest {
        RaftRequest {
            rg_id: self.rg,
            from_store_id: self.transport.store_id(),
            to_store_id: self.target,
            payload,
        }
    }

    /// One unary Raft RPC. The reply payload is `Result<Resp, String>`, postcard-encoded.
    async fn call<Req, Resp, Fut>(
        &mut self,
        lane: Lane,
        req: &Req,
        option: &RPCOption,
        send: impl FnOnce(RaftServiceClient<Channel>, tonic::Request<RaftRequest>) -> Fut,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Fut: Future<Output = Result<tonic::Response<proto::v1::RaftResponse>, tonic::Status>>,
    {
        let client = self
            .transport
            .client(&self.addr, lane)
            .map_err(unreachable)?;
        let payload = codec::to_wire(req).map_err(network)?;
        let timeout =
            infra::raft_rpc::rpc_timeout(option.soft_ttl(), lane == Lane::Data, payload.len());
        let mut request = self.transport.request(self.request(payload));
        request.set_timeout(timeout);
        let reply = match send(client, request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(unreachable(status.message()));
            }
            Err(status) => return Err(network(format!("{}: {}", status.code(), status.message()))),
        };
        if let Some(error) = reply.error {
            // The peer does not host this RG (yet, or any more): back off like an unreachable
            // node instead of spinning.
            return Err(unreachable(error.message));
        }
        let result: Result<Resp, String> = codec::from_wire(&reply.payload).map_err(network)?;
        result.map_err(network)
    }

    async fn send_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let to_streaming = |e: String| StreamingError::Unreachable(Unreachable::from_string(e));
        let mut client = self
            .transport
            .client(&self.addr, Lane::Data)
            .map_err(to_streaming)?;
        let handle: SnapshotHandle = snapshot.snapshot;
        let meta = tokio::fs::read(handle.meta_path())
            .await
            .map_err(|e| to_streaming(e.to_string()))?;
        let data_path = handle.data_path();
        let total_bytes = match tokio::fs::metadata(&data_path).await {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        let header = SnapshotHeader {
            rg_id: self.rg,
            from_store_id: self.transport.store_id(),
            to_store_id: self.target,
            vote: codec::to_wire(&vote).map_err(|e| to_streaming(e.to_string()))?,
            meta,
            total_bytes,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
        let rate = self.transport.snapshot_rate;
        // One blocking thread reads the file; async file reads would hop to the blocking pool
        // once per chunk.
        let reader = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let started = std::time::Instant::now();
            let mut sent = 0u64;
            let header = SnapshotChunk {
                chunk: Some(snapshot_chunk::Chunk::Header(header)),
            };
            if tx.blocking_send(header).is_err() || total_bytes == 0 {
                return Ok(());
            }
            let mut file = std::fs::File::open(&data_path)?;
            loop {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = file.read(&mut buf[filled..])?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok::<(), std::io::Error>(());
                }
                buf.truncate(filled);
                sent += filled as u64;
                let chunk = SnapshotChunk {
                    chunk: Some(snapshot_chunk::Chunk::Data(SnapshotData { chunk: buf })),
                };
                if tx.blocking_send(chunk).is_err() {
                    return Ok(());
                }
                if rate > 0 {
                    let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        });
        let reply = client
            .install_snapshot(
                self.transport
                    .request(tokio_stream::wrappers::ReceiverStream::new(rx)),
            )
            .await
            .map_err(|s| to_streaming(format!("{}: {}", s.code(), s.message())))?
            .into_inner();
        reader
            .await
            .map_err(|e| to_streaming(e.to_string()))?
            .map_err(|e| to_streaming(e.to_string()))?;
        if let Some(error) = reply.error {
            return Err(to_streaming(error.message));
        }
        let result: Result<SnapshotResponse<TypeConfig>, String> =
            codec::from_wire(&reply.payload).map_err(|e| to_streaming(e.to_string()))?;
        result.map_err(|e| StreamingError::Network(NetworkError::from_string(e)))
    }
}

impl RaftNetworkV2<TypeConfig> for RgNetwork {
    type SnapshotData = SnapshotHandle;

    /// Sends at most `APPEND_BUDGET` bytes of entries per RPC (always at least one entry):
    /// openraft batches by count, and a few large entries in one batch exceeded the message
    /// limit, so the RPC failed the same way forever and the RG was wedged. A shortened batch
    /// answers PartialSuccess, and openraft sends the rest next.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let keep = within_budget(&rpc.entries, APPEND_BUDGET);
        let cut = keep < rpc.entries.len();
        if cut {
            rpc.entries.truncate(keep);
        }
        let last = rpc.entries.last().map(|e| e.log_id());
        let lane = if rpc.entries.is_empty() {
            Lane::Control
        } else {
            Lane::Data
        };
        let reply: AppendEntriesResponse<TypeConfig> = self
            .call(lane, &rpc, &option, |mut c, r| async move {
                c.append_entries(r).await
            })
            .await?;
        Ok(match reply {
            AppendEntriesResponse::Success if cut => AppendEntriesResponse::PartialSuccess(last),
            other => other,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Lane::Control, &rpc, &option, |mut c, r| async move {
            c.vote(r).await
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Lane::Control, &rpc, &option, |mut c, r| async move {
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
        /// Counts a send while it lasts, however it ends (the future may be dropped).
        struct Sending<'a>(&'a std::sync::atomic::AtomicU32);
        impl Drop for Sending<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.transport
            .sending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let transport = self.transport.clone();
        let _counted = Sending(&transport.sending);
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
        self.call(Lane::Control, &req, &option, |mut c, r| async move {
            c.transfer_leader(r).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rg::types::{Entry, LogId, Op, RgCommand};
    use openraft::EntryPayload;
    use openraft::alias::CommittedLeaderIdOf;

    fn put(index: u64, bytes: usize) -> Entry {
        RaftEntry::new(
            LogId::new(CommittedLeaderIdOf::<TypeConfig>::new(1), index),
            EntryPayload::Normal(RgCommand::Write {
                region_id: 1,
                version: 1,
                ops: vec![Op::Put {
                    key: b"k".to_vec(),
                    value: vec![0; bytes],
                }],
            }),
        )
    }

    #[test]
    fn a_batch_is_cut_at_the_byte_budget_but_always_sends_one_entry() {
        let mib = 1 << 20;
        let entries: Vec<Entry> = (1..=5).map(|i| put(i, 15 * mib)).collect();
        assert_eq!(
            within_budget(&entries, APPEND_BUDGET),
            1,
            "15 MiB each, 16 MiB budget"
        );
        let small: Vec<Entry> = (1..=32).map(|i| put(i, 1024)).collect();
        assert_eq!(within_budget(&small, APPEND_BUDGET), 32);
        let huge = vec![put(1, 40 * mib)];
        assert_eq!(within_budget(&huge, APPEND_BUDGET), 1, "alone, but sent");
        assert_eq!(within_budget(&[], APPEND_BUDGET), 0);
    }
}
