//! What the store tells the MC about sizes: its disk (from the filesystem), the bytes it uses
//! (SST files and memtables of every column family), and, per region, a key near the middle of
//! its bytes — all from RocksDB's own estimates, never a scan of a region's data.

use std::path::Path;

use rocksdb::{Direction, IteratorMode};

use super::{CF_DATA, CF_LOG, CF_META, Engine};

/// Capacity and free space of the filesystem holding `path`: (total, available to this
/// process), in bytes; None when the filesystem cannot say.
pub fn filesystem(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let unit = s.f_frsize as u64;
    Some((
        (s.f_blocks as u64).saturating_mul(unit),
        (s.f_bavail as u64).saturating_mul(unit),
    ))
}

impl Engine {
    /// Bytes the store's RocksDB holds: SST files and memtables, of every column family
    /// (user data, the Raft logs, metadata).
    pub fn used_bytes(&self) -> u64 {
        [CF_DATA, CF_LOG, CF_META]
            .iter()
            .map(|name| {
                let cf = self.cf(name);
                let prop = |p: &str| {
                    self.db
                        .property_int_value_cf(cf, p)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                };
                prop("rocksdb.total-sst-files-size")
                    .saturating_add(prop("rocksdb.cur-size-all-mem-tables"))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// A key of `[start, end)` near the middle of its bytes by RocksDB's size estimates (SST
    /// index blocks, no data read), or None when the estimates cannot place one (everything
    /// still in memtables, one huge key). The region's last key bounds an open end. About 40
    /// estimate calls and two seeks, whatever the region's size.
    pub fn split_key(&self, start: &[u8], end: &[u8]) -> Option<Vec<u8>> {
        let cf = self.cf(CF_DATA);
        // The real bounds: the first and last keys of the range.
        let first = {
            let mut it = self
                .db
                .iterator_cf(cf, IteratorMode::From(start, Direction::Forward));
            match it.next()? {
                Ok((k, _)) if end.is_empty() || k.as_ref() < end => k.to_vec(),
                _ => return None,
            }
        };
        let last = {
            let mut it = if end.is_empty() {
                self.db.iterator_cf(cf, IteratorMode::End)
            } else {
                self.db
                    .iterator_cf(cf, IteratorMode::From(end, Direction::Reverse))
            };
            let mut last = None;
            for item in it.by_ref().take(2) {
                let (k, _) = item.ok()?;
                if end.is_empty() || k.as_ref() < end {
                    last = Some(k.to_vec());
                    break;
                }
            }
            last?
        };
        if last <= first {
            return None;
        }
        let mut end_bound = last.clone();
        end_bound.push(0);
        let total = self.approximate_size(&first, &end_bound);
        if total == 0 {
            return None;
        }
        let (mut lo, mut hi) = (first.clone(), end_bound.clone());
        for _ in 0..40 {
            let mid = midpoint(&lo, &hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if self.approximate_size(&first, &mid) < total / 2 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // The first real key at or after the estimate: splits land between keys.
        let mut it = self
            .db
            .iterator_cf(cf, IteratorMode::From(&hi, Direction::Forward));
        let (k, _) = it.next()?.ok()?;
        (k.as_ref() > first.as_slice() && k.as_ref() <= last.as_slice()).then(|| k.to_vec())
    }
}

/// The byte string halfway between `a < b`, reading both as base-256 fractions.
pub fn midpoint(a: &[u8], b: &[u8]) -> Vec<u8> {
    let n = a.len().max(b.len()) + 1;
    let at = |s: &[u8], i: usize| u32::from(s.get(i).copied().unwrap_or(0));
    // sum = a + b, then halve, most significant byte first.
    let mut sum = vec![0u32; n + 1];
    let mut carry = 0u32;
    for i in (0..n).rev() {
        let v = at(a, i) + at(b, i) + carry;
        sum[i + 1] = v & 0xff;
        carry = v >> 8;
    }
    sum[0] = carry;
    let mut out = Vec::with_capacity(n);
    let mut rem = 0u32;
    for (i, d) in sum.iter().enumerate() {
        let v = rem * 256 + d;
        if i > 0 {
            out.push((v / 2) as u8);
        }
        rem = v % 2;
    }
    while out.len() > 1 && out.last() == Some(&0) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_midpoint_lies_between_its_ends() {
        for (a, b) in [
            (&b"a"[..], &b"c"[..]),
            (b"a", b"b"),
            (b"k0001", b"k9999"),
            (b"", b"\xff"),
            (b"ab", b"ab\x01"),
        ] {
            let m = midpoint(a, b);
            assert!(a <= m.as_slice() && m.as_slice() < b, "{a:?} {m:?} {b:?}");
        }
        assert_eq!(midpoint(b"a", b"c"), b"b".to_vec());
    }

    #[test]
    fn the_split_key_halves_a_region_by_bytes_and_real_keys() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), false).unwrap();
        let cf = engine.cf(CF_DATA);
        // 2,000 keys of 4 KiB (incompressible) in [k0000, k2000), flushed to SST files.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..2_000u32 {
            let value = crate::engine::noise(&mut x, 4096);
            engine.db().put_cf(cf, format!("k{i:04}"), value).unwrap();
        }
        engine.db().flush_cf(cf).unwrap();
        let key = engine.split_key(b"k", b"l").expect("a split key");
        let key = String::from_utf8(key).unwrap();
        let n: u32 = key[1..].parse().unwrap();
        assert!((700..1300).contains(&n), "{key} is far from the middle");
        // An open end works the same; a range holding one key has no split key.
        assert!(engine.split_key(b"k", b"").is_some());
        assert_eq!(engine.split_key(b"k0005", b"k0006"), None);
        assert_eq!(engine.split_key(b"x", b""), None);
        let (total, free) = filesystem(dir.path()).unwrap();
        assert!(total > 0 && free <= total);
        assert!(
            engine.used_bytes() >= 2_000 * 4096 / 2,
            "{}",
            engine.used_bytes()
        );
    }
}
