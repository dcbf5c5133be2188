//! Names and ids every layer agrees on, with no dependency on the network: the MC's core checks
//! user names and makes cluster ids without linking TLS.

/// Longest user name a certificate or token may carry; also the catalog's limit.
pub const MAX_USER_NAME: usize = 64;

/// Letters, digits and `._@-`, 1 to 64 of them: safe in a URI, a file name and a log line.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

/// A fresh cluster id (never 0), from the operating system's random source.
pub fn new_cluster_id() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    loop {
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .expect("the OS random source");
        let id = u64::from_be_bytes(bytes);
        if id != 0 {
            return id;
        }
    }
}
