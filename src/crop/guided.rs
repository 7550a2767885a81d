//! Per-image guides of the saliency-guided strategies, computed from the encoder being trained
//! (`simclr::saliency`) and read by the box samplers: the heat map's centroid for `saliency`
//! (the GCC Gaussian's mean) and its hot box for `ccrop` (where ContrastiveCrop puts its crop
//! centres).

use rand::Rng;
use rand_distr::{Beta, Distribution};

use crate::crop::geometry::CropBox;

/// One image's guide.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageGuide {
    /// The heat's centroid (x, y) in pixels (the image centre is (W/2, H/2)).
    pub centroid: [f32; 2],
    /// The hot box (x0, y0, x1, y1): the first and last hot column and row over the side, as
    /// ContrastiveCrop stores its boxes (the whole image is (0, 0, 1, 1)).
    pub hot_box: [f32; 4],
}

impl ImageGuide {
    /// Floats per guide in [`ImageGuide::words`]: centroid, then hot box (the first six words
    /// of the saliency kernel's summary, in the same order).
    pub const WORDS: usize = 6;

    pub fn words(&self) -> [f32; ImageGuide::WORDS] {
        let [cx, cy] = self.centroid;
        let [x0, y0, x1, y1] = self.hot_box;
        [cx, cy, x0, y0, x1, y1]
    }

    /// The guide in the first [`ImageGuide::WORDS`] of `w`.
    pub fn from_words(w: &[f32]) -> ImageGuide {
        ImageGuide {
            centroid: [w[0], w[1]],
            hot_box: [w[2], w[3], w[4], w[5]],
        }
    }

    /// The guide of an image with no salient region: the centre and the whole image.
    pub fn whole(w: usize, h: usize) -> ImageGuide {
        ImageGuide {
            centroid: [w as f32 / 2.0, h as f32 / 2.0],
            hot_box: [0.0, 0.0, 1.0, 1.0],
        }
    }
}

/// ContrastiveCrop's placement of a `b`-sized box (their `get_params`): per axis the top-left
/// corner ranges over the hot box's extent minus half the crop, clamped to the image, at a
/// Beta(a, a) fraction of that range (a U shape for a < 1: crops near the box's edges); drawn
/// rows first, as theirs. Also clamped inside the image where the hot box reaches the far edge.
pub fn place_in_hot_box<R: Rng>(
    rng: &mut R,
    guide: &ImageGuide,
    w: usize,
    h: usize,
    b: CropBox,
    a: f64,
) -> CropBox {
    let beta = Beta::new(a, a).ok();
    let mut fraction = || beta.as_ref().map_or(0.5, |d| d.sample(rng));
    let [x0, y0, x1, y1] = guide.hot_box.map(f64::from);
    let axis = |side: usize, lo: f64, hi: f64, size: u32, t: f64| -> i64 {
        let side_i = side as i64;
        let half = (size / 2) as i64;
        let start = ((side as f64 * lo).trunc() as i64 - half).max(0);
        let end = ((side as f64 * hi).trunc() as i64 - half).min(side_i - size as i64);
        let at = start + ((end - start) as f64 * t).trunc() as i64;
        at.clamp(0, (side_i - size as i64).max(0))
    };
    let ty = fraction();
    let tx = fraction();
    CropBox {
        top: axis(h, y0, y1, b.height, ty),
        left: axis(w, x0, x1, b.width, tx),
        ..b
    }
}
