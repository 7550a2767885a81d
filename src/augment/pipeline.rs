//! The two views of every image of a batch: crop (with the flip folded into the sampling
//! matrix), 3x3 Gaussian blur with a per-view sigma, per-channel normalisation.

use rand::Rng;

use crate::augment::Normalization;
use crate::crop::{view_geometry, CropBox, CropSpec, ImageGuide, PadMode, PairDraw};
use crate::error::{Error, Result};
use crate::ops::affine_sample::{
    affine_sample_forward, pack_view_info, PackedImages, Source, ViewInfo, VIEW_INFO_WORDS,
};
use crate::ops::blur_normalize::{blur_normalize_forward, blur_normalize_single, MAX_CHANNELS};
use crate::tensor::Tensor;

/// What happens to a view after its crop.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewPipeline {
    pub crop: CropSpec,
    /// Mirror each view left-right with probability 1/2.
    pub flip: bool,
    /// Blur every view with a 3x3 Gaussian of sigma uniform in this range (None: no blur).
    pub blur_sigma: Option<(f64, f64)>,
    pub normalization: Normalization,
}

/// The CPU half of one batch: what was drawn, and the numbers the kernels read. Views
/// `0..batch` are the first view of each image, `batch..2 batch` the second.
#[derive(Clone, Debug)]
pub struct ViewPlan {
    pub draws: Vec<PairDraw>,
    pub flips: Vec<bool>,
    pub sigmas: Vec<f64>,
    /// `[2 batch, 6]` pixel matrices.
    pub matrices: Vec<f32>,
    pub info: Vec<ViewInfo>,
    /// (width, height) of every view.
    pub view_wh: [usize; 2],
}

/// The centre and side weights of the normalised 3-tap Gaussian of `sigma` (torchvision's).
pub fn blur_weights(sigma: f64) -> [f32; 2] {
    let side = (-0.5 / (sigma * sigma)).exp();
    let total = 1.0 + 2.0 * side;
    [(1.0 / total) as f32, (side / total) as f32]
}

impl ViewPlan {
    /// Each image `indices[k]` whole, as one view: no crop, flip or blur (evaluation).
    pub fn whole_images(indices: &[u32], image_wh: [usize; 2]) -> ViewPlan {
        let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        ViewPlan {
            draws: Vec::new(),
            flips: vec![false; indices.len()],
            sigmas: vec![0.0; indices.len()],
            matrices: indices.iter().flat_map(|_| identity).collect(),
            info: indices.iter().map(|&i| ViewInfo::whole(i)).collect(),
            view_wh: image_wh,
        }
    }

    /// One view per image `indices[k]` for the linear probe's training (torchvision's
    /// `RandomCrop(size, padding=pad)` then `RandomHorizontalFlip`): the whole image shifted by
    /// whole pixels uniform in [-pad, pad] on each axis, zeros where it leaves the image, then
    /// mirrored with probability 1/2 when `flip`. No blur. Draws nothing when `pad` is 0 and
    /// `flip` is false.
    pub fn padded_crops<R: Rng>(
        rng: &mut R,
        indices: &[u32],
        image_wh: [usize; 2],
        pad: usize,
        flip: bool,
    ) -> ViewPlan {
        let mut plan = ViewPlan::whole_images(indices, image_wh);
        let pad = pad as i64;
        for (k, &image) in indices.iter().enumerate() {
            let (left, top) = if pad > 0 {
                (rng.random_range(-pad..=pad), rng.random_range(-pad..=pad))
            } else {
                (0, 0)
            };
            plan.flips[k] = flip && rng.random_bool(0.5);
            let window = CropBox {
                left,
                top,
                width: image_wh[0] as u32,
                height: image_wh[1] as u32,
            };
            let g = view_geometry(&window, image_wh, image_wh, PadMode::Window, plan.flips[k]);
            for (dst, src) in plan.matrices[6 * k..6 * k + 6].iter_mut().zip(g.matrix) {
                *dst = src as f32;
            }
            plan.info[k] = ViewInfo {
                rect: g.rect,
                image,
                blur: [1.0, 0.0],
            };
        }
        plan
    }
}

impl ViewPipeline {
    /// The paper's pipeline for a crop spec: flip, blur sigma in [0.1, 2.0].
    pub fn paper(crop: CropSpec, normalization: Normalization) -> ViewPipeline {
        ViewPipeline {
            crop,
            flip: true,
            blur_sigma: Some((0.1, 2.0)),
            normalization,
        }
    }

    /// A pipeline for whole images (frozen features, the linear probe): only its normalisation
    /// is used, no crop, flip or blur.
    pub fn evaluation(normalization: Normalization) -> ViewPipeline {
        ViewPipeline {
            crop: CropSpec::whole(),
            flip: false,
            blur_sigma: None,
            normalization,
        }
    }

    /// Draws the two views of each image `indices[k]` of a data set of `image_wh` images.
    /// Per image, in order: the pair of boxes, the two flips, the two sigmas.
    pub fn plan<R: Rng>(
        &self,
        rng: &mut R,
        indices: &[u32],
        image_wh: [usize; 2],
    ) -> Result<ViewPlan> {
        self.plan_guided(rng, indices, image_wh, None)
    }

    /// [`ViewPipeline::plan`] with the per-image guides of a guided method (indexed by image;
    /// None before its first refresh).
    pub fn plan_guided<R: Rng>(
        &self,
        rng: &mut R,
        indices: &[u32],
        image_wh: [usize; 2],
        guides: Option<&[ImageGuide]>,
    ) -> Result<ViewPlan> {
        if let Some(g) = guides {
            if let Some(&bad) = indices.iter().find(|&&i| i as usize >= g.len()) {
                return Err(Error::InvalidArgument(format!(
                    "image {bad} has no crop guide: the guides cover {} images",
                    g.len()
                )));
            }
        }
        if let Some((lo, hi)) = self.blur_sigma {
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "blur sigma range ({lo}, {hi}) needs 0 < min <= max"
                )));
            }
        }
        let view_wh = self.crop.view_size(image_wh[0], image_wh[1])?;
        let b = indices.len();
        let mut plan = ViewPlan {
            draws: Vec::with_capacity(b),
            flips: vec![false; 2 * b],
            sigmas: vec![0.0; 2 * b],
            matrices: vec![0.0; 12 * b],
            info: vec![ViewInfo::whole(0); 2 * b],
            view_wh,
        };
        for (k, &image) in indices.iter().enumerate() {
            let guide = guides.map(|g| &g[image as usize]);
            let draw = self
                .crop
                .draw_pair_guided(rng, image_wh[0], image_wh[1], guide)?;
            let (flips, sigmas) = self.draw_flips_and_sigmas(rng);
            for (view, slot) in [k, b + k].into_iter().enumerate() {
                (plan.flips[slot], plan.sigmas[slot]) = (flips[view], sigmas[view]);
            }
            for (view, slot) in [k, b + k].into_iter().enumerate() {
                let g = view_geometry(
                    &draw.boxes[view],
                    image_wh,
                    view_wh,
                    self.crop.pad,
                    plan.flips[slot],
                );
                for (dst, src) in plan.matrices[6 * slot..6 * slot + 6]
                    .iter_mut()
                    .zip(g.matrix)
                {
                    *dst = src as f32;
                }
                plan.info[slot] = ViewInfo {
                    rect: g.rect,
                    image,
                    blur: self.blur_of(plan.sigmas[slot]),
                };
            }
            plan.draws.push(draw);
        }
        Ok(plan)
    }

    /// The flips and blur sigmas of one image's two views, in the order every plan draws them
    /// (the two flips, then the two sigmas; sigma 0 without blur).
    pub fn draw_flips_and_sigmas<R: Rng>(&self, rng: &mut R) -> ([bool; 2], [f64; 2]) {
        let flips = [0, 1].map(|_| self.flip && rng.random_bool(0.5));
        let sigmas = [0, 1].map(|_| match self.blur_sigma {
            Some((lo, hi)) => rng.random_range(lo..=hi),
            None => 0.0,
        });
        (flips, sigmas)
    }

    /// The blur weights a view of blur `sigma` carries (none without blur).
    pub fn blur_of(&self, sigma: f64) -> [f32; 2] {
        match self.blur_sigma {
            Some(_) => blur_weights(sigma),
            None => [1.0, 0.0],
        }
    }

    /// The two view batches `[batch, C, h, w]` of a plan, from the resident images: one upload
    /// of the matrices and view words, two kernel launches.
    pub fn run(&self, images: &PackedImages, plan: &ViewPlan) -> Result<(Tensor, Tensor)> {
        let views = plan.info.len();
        if views % 2 == 1 {
            return Err(Error::InvalidArgument(format!(
                "a plan of view pairs needs an even number of views, not {views}"
            )));
        }
        let (sampled, info) = self.sample(images, plan)?;
        let norm = &self.normalization;
        blur_normalize_forward(&sampled, &info, views / 2, &norm.mean, &norm.std)
    }

    /// All views of a plan as one batch (for [`ViewPlan::whole_images`]).
    pub fn run_single(&self, images: &PackedImages, plan: &ViewPlan) -> Result<Tensor> {
        let (sampled, info) = self.sample(images, plan)?;
        let norm = &self.normalization;
        blur_normalize_single(&sampled, &info, &norm.mean, &norm.std)
    }

    /// Checks a plan, uploads it, and samples its views (the first launch).
    fn sample(&self, images: &PackedImages, plan: &ViewPlan) -> Result<(Tensor, Tensor)> {
        let [n, c, h, w] = images.shape();
        let norm = &self.normalization;
        if c > MAX_CHANNELS || norm.mean.len() != c || norm.std.len() != c {
            return Err(Error::InvalidArgument(format!(
                "normalisation has {} means and {} stds for {c}-channel images",
                norm.mean.len(),
                norm.std.len()
            )));
        }
        let views = plan.info.len();
        if views == 0 || plan.matrices.len() != 6 * views {
            return Err(Error::InvalidArgument(format!(
                "a view plan needs views with one matrix each; got {views} views and {} matrix \
                 entries",
                plan.matrices.len()
            )));
        }
        if let Some(bad) = plan.info.iter().find(|v| v.image as usize >= n) {
            return Err(Error::InvalidArgument(format!(
                "image index {} is beyond the {n} resident images of {w}x{h}",
                bad.image
            )));
        }
        let gpu = images.gpu();
        let m = Tensor::from_slice(gpu, &[views, 6], &plan.matrices)?;
        let info = Tensor::from_u32(gpu, &[views, VIEW_INFO_WORDS], &pack_view_info(&plan.info))?;
        let [vw, vh] = plan.view_wh;
        let sampled = affine_sample_forward(Source::U8(images), &m, &info, [vh, vw])?;
        Ok((sampled, info))
    }
}
