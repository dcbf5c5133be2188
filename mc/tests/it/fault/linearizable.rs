//! A linearizability checker for histories of one register per key (puts and gets), after
//! Wing & Gong with Lowe's memoization: search for an order of the operations that respects
//! real time (an operation that returned before another was called comes first) and in which
//! every get returns the last put before it. A put whose outcome is unknown (the client gave
//! up) may have taken effect at any time after its call, or never.
//!
//! Each key is checked on its own (registers are independent), so histories stay small and the
//! search cheap. The checker is tested on histories known to be (not) linearizable below.

use std::collections::{BTreeMap, HashSet};

/// One operation on one key, with the times (any monotonic clock) it was called and returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub key: Vec<u8>,
    pub kind: Kind,
    pub call: u64,
    /// `None`: the client never learned the outcome (a put that may or may not have landed).
    pub ret: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Wrote this value (acknowledged when `ret` is set).
    Put(Vec<u8>),
    /// Read this value (`None`: the key was absent).
    Get(Option<Vec<u8>>),
}

/// The first key whose history has no linearization, with that history.
pub fn check(ops: &[Op]) -> Result<(), (Vec<u8>, Vec<Op>)> {
    let mut by_key: BTreeMap<&[u8], Vec<Op>> = BTreeMap::new();
    for op in ops {
        // A get that never returned says nothing.
        if matches!(op.kind, Kind::Get(_)) && op.ret.is_none() {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    for (key, history) in by_key {
        if !linearizable(&history) {
            return Err((key.to_vec(), history));
        }
    }
    Ok(())
}

/// Whether one key's history linearizes, starting from an absent key.
fn linearizable(history: &[Op]) -> bool {
    assert!(
        history.len() <= 128,
        "history of one key too long to search: {}",
        history.len()
    );
    // Unknown puts may be left out: only completed operations must all be placed.
    let must: u128 = history
        .iter()
        .enumerate()
        .filter(|(_, o)| o.ret.is_some())
        .fold(0, |m, (i, _)| m | (1u128 << i));
    let ret = |o: &Op| o.ret.unwrap_or(u64::MAX);
    let mut seen: HashSet<(u128, Option<Vec<u8>>)> = HashSet::new();
    // Depth-first over (placed ops, register value).
    let mut stack: Vec<(u128, Option<Vec<u8>>)> = vec![(0, None)];
    while let Some((placed, value)) = stack.pop() {
        if placed & must == must {
            return true;
        }
        if !seen.insert((placed, value.clone())) {
            continue;
        }
        // An op can go next if no unplaced op returned before it was called.
        let frontier = history
            .iter()
            .enumerate()
            .filter(|(i, _)| placed & (1 << i) == 0)
            .map(|(_, o)| ret(o))
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in history.iter().enumerate() {
            if placed & (1 << i) != 0 || op.call > frontier {
                continue;
            }
            let next = placed | (1 << i);
            match &op.kind {
                Kind::Put(v) => stack.push((next, Some(v.clone()))),
                Kind::Get(v) if *v == value => stack.push((next, value.clone())),
                Kind::Get(_) => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &str, call: u64, ret: Option<u64>) -> Op {
        Op {
            key: b"k".to_vec(),
            kind: Kind::Put(v.as_bytes().to_vec()),
            call,
            ret,
        }
    }

    fn get(v: Option<&str>, call: u64, ret: u64) -> Op {
        Op {
            key: b"k".to_vec(),
            kind: Kind::Get(v.map(|v| v.as_bytes().to_vec())),
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_that_linearize_pass() {
        assert!(check(&[put("a", 0, Some(1)), get(Some("a"), 2, 3)]).is_ok());
        // Concurrent put and get: the get may see either value.
        assert!(
            check(&[
                put("a", 0, Some(1)),
                put("b", 2, Some(6)),
                get(Some("a"), 3, 4)
            ])
            .is_ok()
        );
        assert!(
            check(&[
                put("a", 0, Some(1)),
                put("b", 2, Some(6)),
                get(Some("b"), 3, 4)
            ])
            .is_ok()
        );
        // An unknown put may have landed…
        assert!(check(&[put("a", 0, None), get(Some("a"), 5, 6)]).is_ok());
        // …or not.
        assert!(check(&[put("a", 0, None), get(None, 5, 6)]).is_ok());
        // Nothing written: absent.
        assert!(check(&[get(None, 0, 1)]).is_ok());
    }

    #[test]
    fn stale_reads_lost_writes_and_reads_from_nowhere_fail() {
        // A stale read: b was acknowledged before the read began.
        let stale = [
            put("a", 0, Some(1)),
            put("b", 2, Some(3)),
            get(Some("a"), 4, 5),
        ];
        assert_eq!(check(&stale).unwrap_err().0, b"k".to_vec());
        // A lost write: acknowledged, then read as absent.
        assert!(check(&[put("a", 0, Some(1)), get(None, 2, 3)]).is_err());
        // A value nobody wrote.
        assert!(check(&[put("a", 0, Some(1)), get(Some("z"), 2, 3)]).is_err());
        // A read of a write that began after the read returned.
        assert!(check(&[get(Some("a"), 0, 1), put("a", 2, Some(3))]).is_err());
        // Reads that disagree on the order of two sequential writes.
        let flip = [
            put("a", 0, Some(1)),
            put("b", 2, Some(10)),
            get(Some("b"), 3, 4),
            get(Some("a"), 5, 6),
        ];
        assert!(check(&flip).is_err());
    }

    #[test]
    fn keys_are_independent() {
        let mut ops = vec![put("a", 0, Some(1)), get(Some("a"), 2, 3)];
        ops.push(Op {
            key: b"other".to_vec(),
            kind: Kind::Get(Some(b"a".to_vec())),
            call: 4,
            ret: Some(5),
        });
        assert_eq!(check(&ops).unwrap_err().0, b"other".to_vec());
    }
}
