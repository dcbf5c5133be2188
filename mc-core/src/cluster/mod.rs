//! The live view of stores, RGs and regions.

pub mod affinity;
pub mod dense;
pub mod effect;
pub mod evidence;
pub mod index;
pub mod info;
pub mod key;
pub mod members;
pub mod outcome;
pub mod region_set;
pub mod view;

pub use info::{RegionInfo, RegionLoad, RgInfo, StoreInfo, StoreState};
pub use key::Key;
pub use members::Role;
pub use region_set::RegionSet;
pub use source::{ShapeChanges, ViewSource};
pub use view::ClusterView;
pub mod live;
pub mod rgs;
pub mod routes;
pub mod source;
pub mod stores;

pub use live::{LiveCluster, LivenessConfig};
