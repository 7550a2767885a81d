//! `taming`: label-preserving cropping for contrastive learning, on a wgpu compute engine.
//!
//! Layers, each using only those above it: `gpu` (device, buffers, kernels); `tensor` and
//! `autograd` (the tape); `ops` (one file per op family: launchers and tape records);
//! `reference` (plain CPU versions of every kernel); `nn` and `optim`; `data`, `crop` and
//! `augment`; `simclr` and `label_check`; `experiment`.
//! `shapes`, `json`, `io`, `names` and `error` are shared by all.

pub mod augment;
pub mod autograd;
pub mod crop;
pub mod data;
pub mod error;
pub mod experiment;
pub mod gpu;
pub mod io;
pub mod json;
pub mod label_check;
pub mod names;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod reference;
pub mod shapes;
pub mod simclr;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::Tensor;
