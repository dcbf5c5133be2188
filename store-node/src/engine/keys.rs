//! Key layout of the store's one RocksDB.
//!
//! - `default` CF: user data, keyed by the user key itself. Regions of every RG on this store
//!   share it, so a region split, merge or move between RGs on one store rewrites metadata and
//!   never copies data.
//! - `raft_log` CF: `rg_id (8 BE) | index (8 BE)` → entry. Big-endian keeps an RG's entries
//!   contiguous and ordered.
//! - `meta` CF: store records under `store/`, hosted replicas under `hosted/`, and per-RG
//!   records under `rg/{rg_id BE}/…` (vote, committed, purged, applied, membership, regions,
//!   last step, snapshot), and under `merged/` the RG each destroyed merge source went into.

pub const CF_DATA: &str = "default";
pub const CF_LOG: &str = "raft_log";
pub const CF_META: &str = "meta";

pub const STORE_ID: &[u8] = b"store/id";
pub const STORE_MC_TERM: &[u8] = b"store/mc_term";
/// The cluster this store belongs to, adopted from the first MC that commanded it.
pub const STORE_CLUSTER_ID: &[u8] = b"store/cluster_id";
/// Who may read and write rows, as the MC last said (see `access`).
pub const STORE_DATA_ACCESS: &[u8] = b"store/data_access";
pub const HOSTED_PREFIX: &[u8] = b"hosted/";
pub const MERGED_PREFIX: &[u8] = b"merged/";

pub fn log_key(rg: u64, index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&rg.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

pub fn log_index(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[8..16]);
    u64::from_be_bytes(b)
}

pub fn hosted_key(rg: u64) -> Vec<u8> {
    let mut key = HOSTED_PREFIX.to_vec();
    key.extend_from_slice(&rg.to_be_bytes());
    key
}

/// Where a merge source destroyed here went: a repeated MergeRg entry applied after the
/// source replica was destroyed is then known as done, not as a member without a source.
pub fn merged_key(source: u64) -> Vec<u8> {
    let mut key = MERGED_PREFIX.to_vec();
    key.extend_from_slice(&source.to_be_bytes());
    key
}

pub fn hosted_rg(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(HOSTED_PREFIX)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// `rg/{rg BE}/` — every per-RG record starts with it, so destroying a replica is one range
/// delete.
pub fn rg_prefix(rg: u64) -> Vec<u8> {
    let mut key = b"rg/".to_vec();
    key.extend_from_slice(&rg.to_be_bytes());
    key.push(b'/');
    key
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0xff; prefix.len() + 1]
}

pub fn rg_record(rg: u64, name: &str) -> Vec<u8> {
    let mut key = rg_prefix(rg);
    key.extend_from_slice(name.as_bytes());
    key
}

pub fn region_prefix(rg: u64) -> Vec<u8> {
    rg_record(rg, "region/")
}

pub fn region_key(rg: u64, region: u64) -> Vec<u8> {
    let mut key = region_prefix(rg);
    key.extend_from_slice(&region.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_order_by_rg_then_index() {
        assert!(log_key(1, u64::MAX) < log_key(2, 0));
        assert!(log_key(7, 9) < log_key(7, 10));
        assert_eq!(log_index(&log_key(7, 10)), 10);
    }

    #[test]
    fn rg_records_do_not_overlap_between_rgs() {
        let a = rg_prefix(1);
        let end = prefix_end(&a);
        assert!(region_key(1, u64::MAX) < end);
        assert!(rg_record(2, "vote") >= end);
        assert!(rg_record(0, "vote") < a);
    }

    #[test]
    fn hosted_keys_round_trip() {
        assert_eq!(hosted_rg(&hosted_key(42)), Some(42));
        assert_eq!(hosted_rg(b"hosted/short"), None);
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }
}
