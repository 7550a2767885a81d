//! Layer 3: one file per op family. Each has launchers (`*_forward`, `*_backward_*`) that record
//! dispatches, and a tape-level function that records the op and its backward on a `Graph`.
//! Ops never read data back to the CPU.

pub mod affine_sample;
pub mod batchnorm;
pub mod blur_normalize;
pub mod conv2d;
pub mod cross_entropy;
pub mod elementwise;
pub mod l2norm;
pub mod linear;
pub mod ntxent;
pub mod peak;
pub mod pool;
pub mod precision;
pub mod reduce;
pub mod saliency;
pub mod stn;
pub mod view;
