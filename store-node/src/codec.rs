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

/// `Vec<u8>` as one byte string instead of a sequence of u8s. postcard writes both the same
/// way (a varint length, then the bytes), so the log format does not change; but a 15 MiB
/// value went through serde one byte at a time, which took seconds per entry in a debug
/// build and made every follower miss its RPC deadline.
pub mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::ser::Serializer;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        /// Self-describing formats (JSON) write bytes as a list of numbers.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    #[cfg(test)]
    mod tests {
        use crate::rg::types::Op;

        /// The same bytes as the `Vec<u8>` encoding they replace: logs written before read back.
        #[test]
        fn bytes_encode_as_the_sequence_they_replace() {
            #[derive(serde::Serialize)]
            enum OldOp {
                Put { key: Vec<u8>, value: Vec<u8> },
            }
            let key = b"k1".to_vec();
            let value: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
            let old = postcard::to_stdvec(&OldOp::Put {
                key: key.clone(),
                value: value.clone(),
            })
            .unwrap();
            let op = Op::Put { key, value };
            assert_eq!(postcard::to_stdvec(&op).unwrap(), old);
            assert_eq!(postcard::from_bytes::<Op>(&old).unwrap(), op);
            let json = serde_json::to_vec(&op).unwrap();
            assert_eq!(serde_json::from_slice::<Op>(&json).unwrap(), op);
        }
    }
}
