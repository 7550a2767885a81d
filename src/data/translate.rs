//! A data set whose objects are not centred: each image placed at a seeded random position on a
//! larger zero canvas, optionally with clutter patches cut from other images of the same split
//! (the cluttered-MNIST construction of the spatial-transformer paper, Jaderberg et al. 2015).
//! On such data the crop strategies can differ in what they keep; on centred Fashion-MNIST a
//! central crop always holds the object.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};

/// How to translate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslateSpec {
    /// Side of the square canvas in pixels, at least the image's side.
    pub canvas: usize,
    /// Clutter patches per image.
    pub clutter: usize,
    /// Side of a clutter patch; None for 2/7 of the image's width (8 px on 28 px images).
    pub patch: Option<usize>,
    pub seed: u64,
}

impl TranslateSpec {
    fn patch_side(&self, w: usize) -> usize {
        self.patch.unwrap_or((2 * w).div_ceil(7)).max(1)
    }

    /// Checks the spec against images of `shape` (channels, height, width).
    pub fn validate(&self, shape: [usize; 3]) -> Result<()> {
        let [_, h, w] = shape;
        if self.canvas < w.max(h) || self.canvas > 4096 {
            return Err(Error::InvalidArgument(format!(
                "--canvas {} must be at least the images' side ({}) and at most 4096",
                self.canvas,
                w.max(h)
            )));
        }
        if self.patch == Some(0) {
            return Err(Error::InvalidArgument(
                "--patch 0: a clutter patch needs a side of at least 1 pixel".into(),
            ));
        }
        let p = self.patch_side(w);
        if p > w.min(h) || self.clutter > 64 {
            return Err(Error::InvalidArgument(format!(
                "clutter patches of {p} px must fit in a {w}x{h} image, and --clutter {} must be \
                 at most 64",
                self.clutter
            )));
        }
        Ok(())
    }
}

/// Where each image of a translated split was placed (left, top), in image order.
pub type Placements = Vec<[usize; 2]>;

/// `ds` translated onto `spec.canvas` x `spec.canvas` zero canvases; deterministic in the seed
/// and the split.
pub fn translate(
    ds: &Dataset,
    spec: &TranslateSpec,
    split: Split,
) -> Result<(Dataset, Placements)> {
    let [c, h, w] = ds.shape();
    spec.validate(ds.shape())?;
    let side = spec.canvas;
    let plane = side * side;
    let total = ds
        .len()
        .checked_mul(c * plane)
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} images on a {side}x{side} canvas do not fit in memory",
                ds.len()
            ))
        })?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(match split {
        Split::Train => 1,
        Split::Test => 2,
    });
    let p = spec.patch_side(w);
    let mut pixels = vec![0u8; total];
    let mut placements = Vec::with_capacity(ds.len());
    for (i, out) in pixels.chunks_mut(c * plane).enumerate() {
        for _ in 0..spec.clutter {
            let donor = ds.image(rng.random_range(0..ds.len()));
            let (sx, sy) = (rng.random_range(0..=w - p), rng.random_range(0..=h - p));
            let (dx, dy) = (
                rng.random_range(0..=side - p),
                rng.random_range(0..=side - p),
            );
            paste_max(out, side, donor, [w, h], [sx, sy], [p, p], [dx, dy], c);
        }
        let (left, top) = (
            rng.random_range(0..=side - w),
            rng.random_range(0..=side - h),
        );
        paste_max(
            out,
            side,
            ds.image(i),
            [w, h],
            [0, 0],
            [w, h],
            [left, top],
            c,
        );
        placements.push([left, top]);
    }
    let names = ds.class_names().to_vec();
    let source = std::path::Path::new("translated data set");
    let out = Dataset::new(pixels, ds.labels().to_vec(), [c, side, side], names, source)?;
    Ok((out, placements))
}

/// Copies the `size` window at `from` of an image (`wh`, `c` channels) onto a canvas of side
/// `side` at `to`, keeping the brighter pixel where both have one.
#[allow(clippy::too_many_arguments)]
fn paste_max(
    canvas: &mut [u8],
    side: usize,
    image: &[u8],
    wh: [usize; 2],
    from: [usize; 2],
    size: [usize; 2],
    to: [usize; 2],
    c: usize,
) {
    let [w, h] = wh;
    for ch in 0..c {
        for y in 0..size[1] {
            for x in 0..size[0] {
                let v = image[ch * w * h + (from[1] + y) * w + from[0] + x];
                let d = &mut canvas[ch * side * side + (to[1] + y) * side + to[0] + x];
                *d = (*d).max(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn squares(n: usize) -> Dataset {
        // 4x4 images: a bright 2x2 square in the middle, brightness by label.
        let mut pixels = Vec::new();
        for i in 0..n {
            for y in 0..4 {
                for x in 0..4 {
                    let inside = (1..3).contains(&x) && (1..3).contains(&y);
                    pixels.push(if inside { 100 + i as u8 } else { 0 });
                }
            }
        }
        let names = vec!["a".to_string(), "b".to_string()];
        let labels = (0..n as u32).map(|i| i % 2).collect();
        Dataset::new(pixels, labels, [1, 4, 4], names, Path::new("squares")).unwrap()
    }

    #[test]
    fn each_image_lands_whole_where_its_placement_says_and_nowhere_else() {
        let ds = squares(20);
        let spec = TranslateSpec {
            canvas: 10,
            clutter: 0,
            patch: None,
            seed: 3,
        };
        let (t, places) = translate(&ds, &spec, Split::Train).unwrap();
        assert_eq!((t.shape(), t.labels()), ([1, 10, 10], ds.labels()));
        let mut lefts = std::collections::BTreeSet::new();
        for (i, &[left, top]) in places.iter().enumerate() {
            lefts.insert(left);
            let img = t.image(i);
            for y in 0..10 {
                for x in 0..10 {
                    let inside =
                        (left + 1..left + 3).contains(&x) && (top + 1..top + 3).contains(&y);
                    let want = if inside { 100 + i as u8 } else { 0 };
                    assert_eq!(img[y * 10 + x], want, "image {i} at ({x}, {y})");
                }
            }
        }
        assert!(lefts.len() > 3, "placements vary: {lefts:?}");
        // Same seed and split, same data; the other split draws other positions.
        assert_eq!(translate(&ds, &spec, Split::Train).unwrap().1, places);
        assert_ne!(translate(&ds, &spec, Split::Test).unwrap().1, places);
    }

    #[test]
    fn clutter_adds_pixels_from_other_images_and_bad_sizes_are_refused() {
        let ds = squares(20);
        let spec = TranslateSpec {
            canvas: 12,
            clutter: 4,
            patch: Some(2),
            seed: 0,
        };
        let (t, _) = translate(&ds, &spec, Split::Train).unwrap();
        let lit = |d: &Dataset| d.pixels().iter().filter(|&&v| v > 0).count();
        assert!(lit(&t) > lit(&ds), "clutter lights more pixels");
        let small = TranslateSpec {
            canvas: 3,
            ..spec.clone()
        };
        assert!(translate(&ds, &small, Split::Train)
            .unwrap_err()
            .to_string()
            .contains("--canvas 3"));
        let big = TranslateSpec {
            patch: Some(5),
            ..spec
        };
        assert!(translate(&ds, &big, Split::Train)
            .unwrap_err()
            .to_string()
            .contains("5 px"));
    }
}
