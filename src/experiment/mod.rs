//! Layer 8: runs built on the whole engine: the smoke run of `taming smoke` and the crop
//! previews of `taming crops`.

pub mod canvas;
pub mod crop_preview;
pub mod smoke;
