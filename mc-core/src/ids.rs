//! Identifiers. Plain integers on the wire and in the catalog; aliases here keep signatures
//! readable.

pub type JobId = u64;
pub type StoreId = u64;
pub type RgId = u64;
pub type RegionId = u64;
pub type ObjectId = u64;
