//! The encoding of Raft messages and log entries: postcard, compact and schema-less (both ends
//! run the same types).

use serde::Serialize;
use serde::de::DeserializeOwned;

pub fn to_wire<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(io_err)
}

pub fn from_wire<T: DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    postcard::from_bytes(bytes).map_err(io_err)
}

/// openraft's storage traits speak `std::io::Error`.
pub fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
