//! `mcsim`: a deterministic discrete-event simulator that runs mc's real scheduling code and
//! job engine against simulated stores and RGs in virtual time, for capacity planning and for
//! comparing policies on the same seeds.
//!
//! It must never touch the network or a wall clock, nor draw unseeded randomness: the same
//! scenario and seed must give the same report, byte for byte.
