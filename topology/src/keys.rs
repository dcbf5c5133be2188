//! Where an object's data lives in the key space: every key starts with the 8-byte big-endian
//! id of the object it belongs to. All prefixes have the same length, so two objects' ranges
//! never overlap, and a table's own rows, each index and each partition are separate ranges
//! that regions can split and move independently.

use crate::ids::ObjectId;

/// `[start, end)` of the object's keys; `end` is empty for the last id (unbounded).
pub fn object_range(id: ObjectId) -> (Vec<u8>, Vec<u8>) {
    let start = id.0.to_be_bytes().to_vec();
    let end =
        id.0.checked_add(1)
            .map(|e| e.to_be_bytes().to_vec())
            .unwrap_or_default();
    (start, end)
}

/// `[start, end)` of the keys of the object and of every object below it (their ids, and so
/// their key prefixes, are contiguous): one range scan finds a table's regions with its
/// indexes' and partitions'.
pub fn subtree_range(id: ObjectId) -> (Vec<u8>, Vec<u8>) {
    let end = id
        .subtree_end()
        .map(|e| e.to_be_bytes().to_vec())
        .unwrap_or_default();
    (id.0.to_be_bytes().to_vec(), end)
}

/// A key of the object: its prefix followed by `suffix`.
pub fn key(id: ObjectId, suffix: &[u8]) -> Vec<u8> {
    let mut k = id.0.to_be_bytes().to_vec();
    k.extend_from_slice(suffix);
    k
}

/// The object a key belongs to, when it carries a well-formed id.
pub fn object_of(key: &[u8]) -> Option<ObjectId> {
    let id = ObjectId(u64::from_be_bytes(key.get(..8)?.try_into().ok()?));
    id.is_valid().then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(range: &(Vec<u8>, Vec<u8>), key: &[u8]) -> bool {
        key >= range.0.as_slice() && (range.1.is_empty() || key < range.1.as_slice())
    }

    #[test]
    fn ranges_never_overlap_and_keys_map_back() {
        let db = ObjectId::database(1).unwrap();
        let table = db.child(1).unwrap();
        let objects = [
            db,
            table,
            table.child(1).unwrap(),
            table.child(2).unwrap(),
            table.child(2).unwrap().child(1).unwrap(),
            db.child(2).unwrap(),
            ObjectId::database(2).unwrap(),
        ];
        for a in &objects {
            let k = key(*a, b"row-17");
            assert_eq!(object_of(&k), Some(*a));
            for b in &objects {
                let rb = object_range(*b);
                assert_eq!(contains(&rb, &k), a == b, "{a}'s key in {b}'s range");
                let ra = object_range(*a);
                let disjoint = ra.1 <= rb.0 || rb.1 <= ra.0;
                assert!(a == b || disjoint, "{a} and {b} overlap");
            }
        }
        let sub = subtree_range(table);
        for o in &objects {
            let k = key(*o, b"x");
            let below = *o == table || table.is_ancestor_of(*o);
            assert_eq!(contains(&sub, &k), below, "{o} in {table}'s subtree range");
        }
        assert_eq!(
            subtree_range(table.child(2).unwrap().child(1).unwrap()).1,
            object_range(table.child(2).unwrap().child(1).unwrap()).1
        );
        assert_eq!(object_of(b"short"), None);
        assert_eq!(object_of(&[0; 8]), None, "id 0 is no object");
        assert!(object_range(ObjectId(u64::MAX)).1.is_empty());
    }
}
