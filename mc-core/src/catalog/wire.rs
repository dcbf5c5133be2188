//! The Raft-log encoding of a [`WriteBatch`]: keys and values as byte strings (one length and
//! a copy), not as sequences of integers (one call per byte) — the hot path of every catalog
//! write.

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use super::WriteBatch;

struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct Op<'a>(&'a [u8], Option<&'a [u8]>);

impl Serialize for Op<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&Bytes(self.0))?;
        t.serialize_element(&self.1.map(Bytes))?;
        t.end()
    }
}

impl Serialize for WriteBatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.ops.len()))?;
        for (k, v) in &self.ops {
            seq.serialize_element(&Op(k, v.as_deref()))?;
        }
        seq.end()
    }
}

struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Deserialize<'de> for WriteBatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ops: Vec<(ByteBuf, Option<ByteBuf>)> = Vec::deserialize(d)?;
        Ok(WriteBatch {
            ops: ops
                .into_iter()
                .map(|(k, v)| (k.0, v.map(|v| v.0)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_through_postcard_and_json() {
        let mut batch = WriteBatch::default();
        batch.put(&b"job/1"[..], vec![0u8, 255, 7]);
        batch.delete(&b"job/2"[..]);
        batch.put(Vec::new(), Vec::new());
        let wire = postcard::to_stdvec(&batch).unwrap();
        assert_eq!(postcard::from_bytes::<WriteBatch>(&wire).unwrap(), batch);
        // Each key and value is its length and its bytes.
        assert_eq!(
            wire.len(),
            1 + (1 + 5 + 1 + 1 + 3) + (1 + 5 + 1) + (1 + 1 + 1)
        );
        let json = serde_json::to_vec(&batch).unwrap();
        assert_eq!(serde_json::from_slice::<WriteBatch>(&json).unwrap(), batch);
    }
}
