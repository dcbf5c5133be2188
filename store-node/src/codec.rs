//! Encodings of what the store persists and sends to peers.
//!
//! Raft log entries and Raft RPC payloads are hot and use postcard (compact, no field names).
//! postcard is not self-describing: adding or removing a field of a logged type (`RgCommand`)
//! is a log-format change and needs a new variant instead. Small local records (region and
//! replica metadata, step outcomes) use JSON, which tolerates added fields.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, StoreError};

pub fn to_wire<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

pub fn from_wire<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

pub fn to_record<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

pub fn from_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("decode: {e}")))
}

/// For openraft storage traits, which speak `std::io::Error`.
pub fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
