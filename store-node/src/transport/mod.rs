//! Store-to-store Raft traffic over gRPC (`RaftService`), multiplexed by RG id.

pub mod client;
pub mod service;
