//! A region boundary key as the view holds it: up to 22 bytes inline, longer ones on the heap.
//!
//! A view of a million regions holds two boundaries per region and the route index a third
//! copy of each start. Keys of MC-made regions are an object prefix and a few bytes (8 to 16),
//! and a `Vec<u8>` of eight bytes costs a 32-byte heap block beside its 24 bytes: three copies
//! a region were about 100 B of the 418 B a cached region cost. Inline, they cost nothing beyond
//! the 24 bytes a `Vec` took anyway. Reads through `Deref<Target = [u8]>`, orders and hashes as
//! the bytes do, and (de)serializes exactly as the `Vec<u8>` it replaces.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes held without an allocation.
const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

#[derive(Clone)]
pub struct Key(Repr);

impl Key {
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Key(Repr::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            })
        } else {
            Key(Repr::Heap(bytes.into()))
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Heap(b) => b,
        }
    }
}

impl Default for Key {
    fn default() -> Self {
        Key::new(&[])
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= INLINE {
            Key::new(&v)
        } else {
            Key(Repr::Heap(v.into_boxed_slice()))
        }
    }
}

impl From<&[u8]> for Key {
    fn from(v: &[u8]) -> Self {
        Key::new(v)
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(v: &[u8; N]) -> Self {
        Key::new(v)
    }
}

impl From<Key> for Vec<u8> {
    fn from(k: Key) -> Self {
        k.as_slice().to_vec()
    }
}

impl From<&Key> for Vec<u8> {
    fn from(k: &Key) -> Self {
        k.as_slice().to_vec()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl PartialEq<[u8]> for Key {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Key {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for Key {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Key> for Vec<u8> {
    fn eq(&self, other: &Key) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl PartialOrd<Vec<u8>> for Key {
    fn partial_cmp(&self, other: &Vec<u8>) -> Option<Ordering> {
        Some(self.as_slice().cmp(other.as_slice()))
    }
}

impl PartialOrd<Key> for Vec<u8> {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.as_slice().cmp(other.as_slice()))
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As a Vec<u8> does: records written before keys were inline read back the same.
        s.collect_seq(self.as_slice())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(Key::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_its_bytes_inline_or_not_and_serializes_as_a_vec() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        let short = Key::new(b"t\x00\x00\x01");
        let long = Key::from(vec![b'u'; 40]);
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Heap(_)));
        assert_eq!(&*short, b"t\x00\x00\x01");
        assert!(short < long && Key::default() < short);
        assert_eq!(Key::new(&[0; 22]).len(), 22);
        for k in [short, long, Key::default(), Key::new(&[0xff; 23])] {
            let as_vec = serde_json::to_string(&k.to_vec()).unwrap();
            assert_eq!(serde_json::to_string(&k).unwrap(), as_vec);
            assert_eq!(serde_json::from_str::<Key>(&as_vec).unwrap(), k);
            let bytes = postcard::to_allocvec(&k.to_vec()).unwrap();
            assert_eq!(postcard::to_allocvec(&k).unwrap(), bytes);
            assert_eq!(postcard::from_bytes::<Key>(&bytes).unwrap(), k);
        }
    }
}
