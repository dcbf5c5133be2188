//! `mcsim`: a deterministic discrete-event simulator that runs mc's real scheduling code and
//! job engine against simulated stores and RGs in virtual time, for capacity planning and for
//! comparing policies on the same seeds.
//!
//! It must never touch the network or a wall clock for anything it reports, nor draw unseeded
//! randomness: the same scenario and seed give the same report, byte for byte.

pub mod model;
pub mod pd;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod sim;

/// FNV-1a 64 of the report's JSON: the hash `mcsim run` prints.
pub fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
