//! Layer 6: the view pipeline of PAPER.md on the GPU. Per batch the CPU draws a few numbers per
//! view (crop box, flip, blur sigma), turns them into a sampling matrix and a word record, and
//! uploads those; the pixels are produced in two kernel launches from the resident u8 dataset:
//! crop + flip (one affine sampling), then blur + normalise.

pub mod normalization;
pub mod pipeline;

pub use normalization::Normalization;
pub use pipeline::{ViewPipeline, ViewPlan};
