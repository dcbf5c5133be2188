//! Hostile inputs for decoders: what a peer on the network could send.

/// Deterministic inputs for the targets: random bytes, and valid encodings with bytes flipped,
/// cut short or extended (where decoders go wrong: lengths that lie).
pub fn corpus(seed: u64, n: usize, valid: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            if valid.is_empty() || i % 2 == 0 {
                let len = (next() % 512) as usize;
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut v = valid[i % valid.len()].clone();
                match next() % 3 {
                    0 if !v.is_empty() => {
                        let at = (next() as usize) % v.len();
                        v[at] ^= 1 << (next() % 8);
                    }
                    1 => v.truncate((next() as usize) % (v.len() + 1)),
                    _ => v.extend((0..(next() % 16)).map(|_| 0xff)),
                }
                v
            }
        })
        .collect()
}
