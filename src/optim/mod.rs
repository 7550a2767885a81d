//! Layer 5: optimisers (their updates are GPU kernels) and learning-rate schedules.

mod adam;
mod schedule;
mod sgd;
mod update;

pub use adam::Adam;
pub use schedule::cosine_lr;
pub use sgd::Sgd;
