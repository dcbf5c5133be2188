//! gRPC services: thin — validate, call the core, map errors (in `errors`, one place).

pub mod audit;
pub mod cluster;
pub mod convert;
pub mod errors;
pub mod heartbeat;
pub mod jobs;
