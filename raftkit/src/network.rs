//! The sending side of `RaftService`, for any group: one lazily connected gRPC channel per
//! peer and lane, shared by every group that replicates to that peer; each message carries its
//! group id (a store's RG; 0 for the MC's catalog group).

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::alias::{LogIdOf, SnapshotOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftTypeConfig};
use proto::v1::raft_service_client::RaftServiceClient;
use proto::v1::{RaftRequest, SnapshotChunk, SnapshotData, SnapshotHeader, snapshot_chunk};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::wire::{from_wire, to_wire};

/// Size of one snapshot chunk on the wire.
const SNAPSHOT_CHUNK: usize = 256 << 10;

/// Bytes of entries one AppendEntries carries at most (one larger entry still goes alone):
/// openraft batches by count, and a few large entries in one batch exceeded the message limit,
/// so the RPC failed the same way forever and the group was wedged. A shortened batch answers
/// PartialSuccess, and openraft sends the rest next.
pub const APPEND_BUDGET: u64 = 16 << 20;

/// Which connection a message takes. Heartbeats and votes get their own, so they are not
/// queued behind megabytes of entries or a snapshot on the data connection (a follower that
/// hears no heartbeat while a large batch streams calls an election, and under a steady load
/// of large writes the group kept changing leaders).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Control,
    Data,
}

/// What one side says about its group's messages.
pub trait GroupWire<C: RaftTypeConfig>: Send + Sync + 'static {
    type SnapshotData: OptionalSend + 'static;

    /// About how many bytes an entry takes on the wire, for [`APPEND_BUDGET`].
    fn entry_bytes(entry: &C::Entry) -> u64;

    /// The snapshot as it is sent: the header's meta bytes (what the receiving side of this
    /// group reads back), the data's length and a reader of it.
    fn open_snapshot(
        snapshot: SnapshotOf<C, Self::SnapshotData>,
    ) -> impl Future<Output = std::io::Result<SnapshotStream>> + Send;

    /// The peer received the whole snapshot and could not install it. By default a network
    /// error, which openraft retries at once a few times before it backs off; a group whose
    /// snapshots are large and whose install failures last (a full disk) answers Unreachable,
    /// which backs off at once.
    fn install_failed(reason: String) -> StreamingError<C> {
        StreamingError::Network(NetworkError::from_string(reason))
    }
}

/// A snapshot on its way out.
pub struct SnapshotStream {
    pub meta: Vec<u8>,
    pub len: u64,
    pub data: Box<dyn std::io::Read + Send>,
}

/// How the transport connects and sends.
#[derive(Clone, Copy, Debug)]
pub struct TransportOptions {
    /// The largest message either way.
    pub max_message: usize,
    /// Snapshot bytes per second sent to one peer; 0 is unlimited. Keeps a catching-up replica
    /// from starving the foreground traffic of the link.
    pub snapshot_rate: u64,
    pub connect_timeout: Duration,
}

/// Channels to peers, by address and lane.
pub struct Transport {
    /// This node's id in its groups (a store id, an MC id).
    id: AtomicU64,
    /// The cluster id sent with every message (0: none yet, nothing is sent).
    cluster_id: AtomicU64,
    security: infra::security::Security,
    options: TransportOptions,
    channels: Mutex<HashMap<(String, Lane), Channel>>,
    /// Snapshots being sent now.
    sending: AtomicU32,
}

impl Transport {
    pub fn new(
        id: u64,
        cluster_id: u64,
        security: infra::security::Security,
        options: TransportOptions,
    ) -> Arc<Self> {
        Arc::new(Self {
            id: id.into(),
            cluster_id: cluster_id.into(),
            security,
            options,
            channels: Mutex::default(),
            sending: AtomicU32::new(0),
        })
    }

    pub fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    pub fn set_id(&self, id: u64) {
        self.id.store(id, Ordering::Relaxed);
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Acquire)
    }

    pub fn set_cluster_id(&self, id: u64) {
        self.cluster_id.store(id, Ordering::Release);
    }

    pub fn snapshots_sending(&self) -> u32 {
        self.sending.load(Ordering::Relaxed)
    }

    /// A request to a peer, tagged with the cluster id.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        infra::security::tag(&mut request, self.cluster_id());
        request
    }

    pub fn client(&self, addr: &str, lane: Lane) -> Result<RaftServiceClient<Channel>, String> {
        let mut channels = self.channels.lock().expect("channel map lock");
        let key = (addr.to_string(), lane);
        let channel = match channels.get(&key) {
            Some(channel) => channel.clone(),
            None => {
                let channel = self
                    .security
                    .endpoint(addr)
                    .map_err(|e| format!("bad peer address {addr}: {e}"))?
                    .tcp_nodelay(true)
                    .http2_adaptive_window(true)
                    .connect_timeout(self.options.connect_timeout)
                    // A hung peer (SIGSTOP, a stuck disk) is found by pings, also mid-snapshot.
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                channels.insert(key, channel.clone());
                channel
            }
        };
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(self.options.max_message)
            .max_encoding_message_size(self.options.max_message))
    }
}

/// Creates the per-peer clients of one group.
pub struct GroupNetworkFactory<C, W> {
    pub group: u64,
    pub transport: Arc<Transport>,
    _types: PhantomData<fn() -> (C, W)>,
}

impl<C, W> GroupNetworkFactory<C, W> {
    pub fn new(group: u64, transport: Arc<Transport>) -> Self {
        Self {
            group,
            transport,
            _types: PhantomData,
        }
    }
}

impl<C, W> RaftNetworkFactory<C> for GroupNetworkFactory<C, W>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
    W: GroupWire<C>,
    GroupNetwork<C, W>: RaftNetworkV2<C>,
{
    type Network = GroupNetwork<C, W>;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        GroupNetwork {
            group: self.group,
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            _types: PhantomData,
        }
    }
}

/// One group's messages to one peer.
pub struct GroupNetwork<C, W> {
    group: u64,
    target: u64,
    addr: String,
    transport: Arc<Transport>,
    _types: PhantomData<fn() -> (C, W)>,
}

/// How many of `entries`, from the first, fit in `budget` bytes (at least one).
pub fn within_budget<E>(entries: &[E], budget: u64, bytes: impl Fn(&E) -> u64) -> usize {
    let mut total = 0u64;
    for (i, e) in entries.iter().enumerate() {
        total += bytes(e);
        if total > budget && i > 0 {
            return i;
        }
    }
    entries.len()
}

fn unreachable<C: RaftTypeConfig>(msg: impl ToString) -> RPCError<C> {
    RPCError::Unreachable(Unreachable::from_string(msg))
}

fn network<C: RaftTypeConfig>(msg: impl ToString) -> RPCError<C> {
    RPCError::Network(NetworkError::from_string(msg))
}

impl<C, W> GroupNetwork<C, W>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
    W: GroupWire<C>,
{
    fn message(&self, payload: Vec<u8>) -> RaftRequest {
        RaftRequest {
            rg_id: self.group,
            from_store_id: self.transport.id(),
            to_store_id: self.target,
            payload,
        }
    }

    /// One unary Raft RPC. The reply payload is `Result<Resp, String>`.
    async fn call<Req, Resp, Fut>(
        &mut self,
        lane: Lane,
        req: &Req,
        option: &RPCOption,
        send: impl FnOnce(RaftServiceClient<Channel>, tonic::Request<RaftRequest>) -> Fut,
    ) -> Result<Resp, RPCError<C>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Fut: Future<Output = Result<tonic::Response<proto::v1::RaftResponse>, tonic::Status>>,
    {
        let client = self
            .transport
            .client(&self.addr, lane)
            .map_err(unreachable::<C>)?;
        let payload = to_wire(req).map_err(network::<C>)?;
        let timeout = crate::rpc::rpc_timeout(option.soft_ttl(), lane == Lane::Data, payload.len());
        let mut request = self.transport.request(self.message(payload));
        request.set_timeout(timeout);
        let reply = match send(client, request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(unreachable(status.message()));
            }
            Err(status) => return Err(network(format!("{}: {}", status.code(), status.message()))),
        };
        if let Some(error) = reply.error {
            // The peer does not host this group (yet, or any more): back off like an
            // unreachable node instead of spinning.
            return Err(unreachable(error.message));
        }
        let result: Result<Resp, String> = from_wire(&reply.payload).map_err(network::<C>)?;
        result.map_err(network)
    }

    async fn send_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, W::SnapshotData>,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>>
    where
        VoteOf<C>: Serialize,
        SnapshotResponse<C>: DeserializeOwned,
    {
        let to_streaming = |e: String| StreamingError::Unreachable(Unreachable::from_string(e));
        let mut client = self
            .transport
            .client(&self.addr, Lane::Data)
            .map_err(to_streaming)?;
        let stream = W::open_snapshot(snapshot)
            .await
            .map_err(|e| to_streaming(e.to_string()))?;
        let header = SnapshotHeader {
            rg_id: self.group,
            from_store_id: self.transport.id(),
            to_store_id: self.target,
            vote: to_wire(&vote).map_err(|e| to_streaming(e.to_string()))?,
            meta: stream.meta,
            total_bytes: stream.len,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
        let rate = self.transport.options.snapshot_rate;
        let (total_bytes, mut data) = (stream.len, stream.data);
        // One blocking thread reads the data; async reads would hop to the blocking pool once
        // per chunk.
        let reader = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let mut sent = 0u64;
            let header = SnapshotChunk {
                chunk: Some(snapshot_chunk::Chunk::Header(header)),
            };
            if tx.blocking_send(header).is_err() || total_bytes == 0 {
                return Ok(());
            }
            loop {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = data.read(&mut buf[filled..])?;
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
                    let due = Duration::from_secs_f64(sent as f64 / rate as f64);
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
        let result: Result<SnapshotResponse<C>, String> =
            from_wire(&reply.payload).map_err(|e| to_streaming(e.to_string()))?;
        result.map_err(W::install_failed)
    }
}

impl<C, W> RaftNetworkV2<C> for GroupNetwork<C, W>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
    W: GroupWire<C>,
    AppendEntriesRequest<C>: Serialize,
    AppendEntriesResponse<C>: DeserializeOwned,
    VoteRequest<C>: Serialize,
    VoteResponse<C>: DeserializeOwned,
    VoteOf<C>: Serialize,
    SnapshotResponse<C>: DeserializeOwned,
    TransferLeaderRequest<C>: Serialize,
    TransferLeaderResponse<C>: DeserializeOwned,
    LogIdOf<C>: Clone,
{
    type SnapshotData = W::SnapshotData;

    /// Sends at most [`APPEND_BUDGET`] bytes of entries per RPC (always at least one entry).
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let keep = within_budget(&rpc.entries, APPEND_BUDGET, W::entry_bytes);
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
        let reply: AppendEntriesResponse<C> = self
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
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call(Lane::Control, &rpc, &option, |mut c, r| async move {
            c.vote(r).await
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.call(Lane::Control, &rpc, &option, |mut c, r| async move {
            c.pre_vote(r).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, W::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        /// Counts a send while it lasts, however it ends (the future may be dropped).
        struct Sending(Arc<Transport>);
        impl Drop for Sending {
            fn drop(&mut self) {
                self.0.sending.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.transport.sending.fetch_add(1, Ordering::Relaxed);
        let _counted = Sending(self.transport.clone());
        tokio::select! {
            result = self.send_snapshot(vote, snapshot) => result,
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        self.call(Lane::Control, &req, &option, |mut c, r| async move {
            c.transfer_leader(r).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_at_the_byte_budget_but_always_sends_one_entry() {
        let mib = 1u64 << 20;
        let size = |e: &u64| *e;
        assert_eq!(
            within_budget(&[15 * mib; 5], APPEND_BUDGET, size),
            1,
            "15 MiB each"
        );
        assert_eq!(within_budget(&[1024; 32], APPEND_BUDGET, size), 32);
        assert_eq!(
            within_budget(&[40 * mib], APPEND_BUDGET, size),
            1,
            "alone, but sent"
        );
        assert_eq!(within_budget(&[] as &[u64], APPEND_BUDGET, size), 0);
    }
}
