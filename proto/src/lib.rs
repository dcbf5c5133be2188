//! MC's v1 wire API: the `.proto` files under `proto/mc/v1` and the Rust code tonic generates
//! from them, for the MC, the store nodes, `mcctl` and any SQL engine's DDL hook.
//!
//! This crate must never hold logic beyond the wire contract itself: no decisions, no I/O.
//! What is here besides generated code is the one list of job types ([`job_types`]) and the
//! one mapping between typed errors and gRPC statuses (`status`), because every client and
//! server must agree on both.
//!
//! The gRPC services and the status mapping are behind the `grpc` feature (on by default):
//! the MC's core and the simulator use the messages only, and build without tonic.

/// Generated messages and services of package `mc.v1`.
#[allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mc.v1.rs"));
}

pub mod job_types;
#[cfg(feature = "grpc")]
pub mod status;

/// The encoded `FileDescriptorSet` of every v1 file, for gRPC reflection and for tests that
/// walk the API.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mc_v1_descriptor.bin"));

#[cfg(test)]
mod roundtrip_tests;
