//! Checkers and balancers that propose jobs, each decision with its reasons and scores in the
//! scheduling log. They read only the cluster view and the catalog, so the simulator drives
//! them in virtual time.

pub mod placement;
