//! Layer 6: the cropping strategies of PAPER.md (RC, GCC, CGCC, MGCC and RandomResizedCrop) and
//! the saliency-guided ones (saliency-centred GCC, ContrastiveCrop) as box samplers on the CPU,
//! and the arithmetic that turns a box into what the GPU sampling kernel reads. Boxes are a few numbers per view; the pixels never leave the GPU.

pub mod degenerate;
pub mod geometry;
pub mod guided;
pub mod strategy;

pub use degenerate::degenerate_warning;
pub use geometry::{view_geometry, CropBox, PadMode, ViewGeometry};
pub use guided::ImageGuide;
pub use strategy::{CropSpec, Method, PairDraw};
