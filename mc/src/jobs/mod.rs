//! The core's jobs and the parts of the job engine that speak gRPC: the executor that sends
//! steps to stores, and the probe that asks a store what became of a step.

pub use mc_core::jobs::*;

pub mod grpc_executor;
