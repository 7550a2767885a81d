//! Layer 4: plain CPU versions of every kernel, in f64, written to be read, not to be fast.
//! Used by the kernel tests and the benches to check and to compare the GPU kernels.

pub mod affine_sample;
pub mod augment;
pub mod batchnorm;
pub mod chain;
pub mod conv2d;
pub mod elementwise;
pub mod ntxent;
pub mod optim;
pub mod saliency;
pub mod small_ops;
pub mod stn;
