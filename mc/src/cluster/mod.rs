//! The live view of stores, RGs and regions.

pub mod affinity;
pub mod dense;
pub mod index;
pub mod members;
pub mod view;

pub use view::{
    ClusterView, RegionInfo, RegionLoad, RgInfo, Role, ShapeChanges, StoreInfo, StoreState,
    ViewSource,
};
pub mod live;
pub mod rgs;
pub mod routes;
pub mod stores;

pub use live::{LiveCluster, LivenessConfig};
