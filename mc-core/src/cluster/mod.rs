//! The live view of stores, RGs and regions.

pub mod affinity;
pub mod dense;
pub mod effect;
pub mod evidence;
pub mod index;
pub mod key;
pub mod members;
pub mod outcome;
pub mod region_set;
pub mod view;

pub use key::Key;
pub use region_set::RegionSet;
pub use view::{
    ClusterView, RegionInfo, RegionLoad, RgInfo, Role, ShapeChanges, StoreInfo, StoreState,
    ViewSource,
};
pub mod live;
pub mod rgs;
pub mod routes;
pub mod stores;

pub use live::{LiveCluster, LivenessConfig};
