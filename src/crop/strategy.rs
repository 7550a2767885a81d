//! The cropping strategies of PAPER.md as box samplers: each draws the two boxes of one image's
//! pair of views from a seeded generator.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::crop::geometry::{CropBox, PadMode};
use crate::crop::guided::{place_in_hot_box, ImageGuide};
use crate::error::{Error, Result};
use crate::names::string_enum;

string_enum! {
    /// A cropping strategy.
    pub enum Method as "crop method" {
        /// Random crop: top-left uniform over the positions inside the image.
        Rc = "rc",
        /// Gaussian-centred crop: centres ~ N(image centre, diag(alpha W, alpha H)), zero padding.
        Gcc = "gcc",
        /// Corrected GCC: GCC boxes shifted back inside the image.
        Cgcc = "cgcc",
        /// Multi-object GCC: per image the Gaussian's mean is uniform in [a, b] fractions.
        Mgcc = "mgcc",
        /// SimCLR's RandomResizedCrop (scale and ratio ranges), resized to the view size.
        Rrc = "rrc",
        /// Saliency-guided GCC: the Gaussian centred per image on the centroid of the
        /// encoder's heat map (GCC until the first refresh).
        Saliency = "saliency",
        /// ContrastiveCrop (Peng et al. 2022): crop centres Beta-distributed over the box of
        /// the encoder's hot rows and columns (until the first refresh RandomResizedCrop, or
        /// RC at a fixed area).
        Ccrop = "ccrop",
        /// Learnt placement: a localiser network moves GCC's Gaussian per image and learns
        /// its spread, trained through the differentiable sampler (GCC until it starts).
        Stn = "stn",
    }
}

impl Method {
    /// Whether the method has a Gaussian whose variance `alpha` scales.
    pub fn uses_alpha(self) -> bool {
        matches!(
            self,
            Method::Gcc | Method::Cgcc | Method::Mgcc | Method::Saliency | Method::Stn
        )
    }

    /// What the method does, in a line (for reports).
    pub fn description(self) -> &'static str {
        match self {
            Method::Rc => {
                "random crop: the box's top-left corner uniform over the positions inside the \
                 image"
            }
            Method::Gcc => {
                "Gaussian-centred crop: centres ~ N(image centre, alpha x side), zero padding \
                 where the box leaves the image"
            }
            Method::Cgcc => "corrected GCC: GCC's boxes shifted back inside the image",
            Method::Mgcc => "multi-object GCC: GCC with the Gaussian's mean drawn per image",
            Method::Rrc => {
                "RandomResizedCrop (SimCLR's): random area and aspect ratio, resized to the \
                 view size"
            }
            Method::Saliency => {
                "saliency-guided GCC: GCC's Gaussian centred per image on the centroid of the \
                 run's own encoder's heat map (its last feature map's channels summed, min-max \
                 normalised, upsampled to the image)"
            }
            Method::Ccrop => {
                "ContrastiveCrop (Peng et al. 2022): crop centres at Beta(a, a) fractions of \
                 the box spanning the heat map's hot rows and columns, so that crops stay on \
                 the object"
            }
            Method::Stn => {
                "learnt placement: a small localiser network reads the whole image and moves \
                 GCC's Gaussian and sets its spread per image, trained end to end through the \
                 differentiable sampler (views at continuous positions, zeros outside)"
            }
        }
    }

    /// Whether the method's crops depend on the state of a training run (the guides of its
    /// encoder, or its localiser), so that they cannot be drawn without one.
    pub fn follows_training(self) -> bool {
        self.is_guided() || self.is_learnt()
    }

    /// Whether the method's views are placed by a network trained with the encoder, so that
    /// the CPU cannot draw them ([`CropSpec::draw_pair`] draws its untrained state, GCC).
    pub fn is_learnt(self) -> bool {
        self == Method::Stn
    }

    /// Whether the method places its crops from per-image guides computed by the encoder
    /// being trained (see [`crate::crop::guided`]).
    pub fn is_guided(self) -> bool {
        matches!(self, Method::Saliency | Method::Ccrop)
    }
}

/// A validated cropping configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropSpec {
    pub method: Method,
    /// Fraction of the image area, in (0, 1]: the view is floor(W sqrt(p)) x floor(H sqrt(p)).
    pub crop: f64,
    /// GCC family: the centre's variance is alpha W (x) and alpha H (y).
    pub alpha: f64,
    /// MGCC: the per-image mean is uniform in [a W, b W] x [a H, b H].
    pub mgcc_range: (f64, f64),
    pub pad: PadMode,
    /// RRC: area fraction and aspect-ratio ranges (torchvision's defaults).
    pub rrc_scale: (f64, f64),
    pub rrc_ratio: (f64, f64),
    /// ContrastiveCrop: the Beta(a, a) of the centre within the hot box, the area range of its
    /// boxes (their paper's 0.2-1; the ratio range is `rrc_ratio`), and whether the crop keeps
    /// the fixed area `crop` without resize instead.
    pub ccrop_beta: f64,
    pub ccrop_scale: (f64, f64),
    pub ccrop_fixed_area: bool,
}

impl CropSpec {
    /// A spec with the paper's defaults for everything but the method, crop size and alpha.
    pub fn new(method: Method, crop: f64, alpha: f64) -> Result<CropSpec> {
        CropSpec::with_defaults(method, crop, alpha).validated()
    }

    fn with_defaults(method: Method, crop: f64, alpha: f64) -> CropSpec {
        CropSpec {
            method,
            crop,
            alpha,
            mgcc_range: (0.25, 0.75),
            pad: PadMode::Centre,
            rrc_scale: (0.08, 1.0),
            rrc_ratio: (3.0 / 4.0, 4.0 / 3.0),
            ccrop_beta: 0.1,
            ccrop_scale: (0.2, 1.0),
            ccrop_fixed_area: false,
        }
    }

    /// The whole image (RC at crop 1: the only box is the image itself).
    pub fn whole() -> CropSpec {
        CropSpec::with_defaults(Method::Rc, 1.0, 1.0)
    }

    /// Checks every field; the error names the field, its value and the allowed range.
    pub fn validated(self) -> Result<CropSpec> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if !(self.crop > 0.0 && self.crop <= 1.0) {
            return bad(format!(
                "crop size {} is not a fraction of the image area in (0, 1] (e.g. --crop 0.4)",
                self.crop
            ));
        }
        if self.method.uses_alpha() && !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return bad(format!(
                "alpha {} must be a positive number (the Gaussian's variance is alpha x side)",
                self.alpha
            ));
        }
        let (a, b) = self.mgcc_range;
        if !(0.0 <= a && a < b && b <= 1.0) {
            return bad(format!(
                "the MGCC mean range ({a}, {b}) needs 0 <= a < b <= 1"
            ));
        }
        let (s0, s1) = self.rrc_scale;
        let (r0, r1) = self.rrc_ratio;
        if !(0.0 < s0 && s0 <= s1 && s1 <= 1.0 && 0.0 < r0 && r0 <= r1 && r1.is_finite()) {
            return bad(format!(
                "RandomResizedCrop needs 0 < scale min <= max <= 1 and 0 < ratio min <= max; \
                 got scale {:?}, ratio {:?}",
                self.rrc_scale, self.rrc_ratio
            ));
        }
        let (c0, c1) = self.ccrop_scale;
        if !(self.ccrop_beta > 0.0
            && self.ccrop_beta.is_finite()
            && 0.0 < c0
            && c0 <= c1
            && c1 <= 1.0)
        {
            return bad(format!(
                "ContrastiveCrop needs a Beta parameter > 0 (--ccrop-beta, e.g. 0.1) and \
                 0 < scale min <= max <= 1; got beta {}, scale {:?}",
                self.ccrop_beta, self.ccrop_scale
            ));
        }
        Ok(self)
    }

    /// The view size (width, height) for a `w` x `h` image: floor(side * sqrt(p)).
    pub fn view_size(&self, w: usize, h: usize) -> Result<[usize; 2]> {
        let side = |s: usize| (s as f64 * self.crop.sqrt()).floor() as usize;
        let (cw, ch) = (side(w), side(h));
        if cw == 0 || ch == 0 {
            return Err(Error::InvalidArgument(format!(
                "crop size {} of a {w}x{h} image is {cw}x{ch} pixels; use a larger --crop",
                self.crop
            )));
        }
        Ok([cw, ch])
    }

    /// Draws the two boxes of one image's views; a guided method draws as before its first
    /// refresh (GCC for `saliency`, RandomResizedCrop or RC for `ccrop`).
    pub fn draw_pair<R: Rng>(&self, rng: &mut R, w: usize, h: usize) -> Result<PairDraw> {
        self.draw_pair_guided(rng, w, h, None)
    }

    /// Draws the two boxes of one image's views, a guided method placing them by the image's
    /// `guide` when it has one.
    pub fn draw_pair_guided<R: Rng>(
        &self,
        rng: &mut R,
        w: usize,
        h: usize,
        guide: Option<&ImageGuide>,
    ) -> Result<PairDraw> {
        let [cw, ch] = self.view_size(w, h)?;
        let (wf, hf) = (w as f64, h as f64);
        let centre = [wf / 2.0, hf / 2.0];
        let draw = match self.method {
            Method::Rc => {
                let boxes = [0, 1].map(|_| uniform_box(rng, w, h, cw, ch));
                PairDraw::from_boxes(centre, boxes)
            }
            Method::Gcc | Method::Cgcc | Method::Stn => {
                self.gaussian_pair(rng, centre, w, h, cw, ch)
            }
            Method::Mgcc => {
                let (a, b) = self.mgcc_range;
                let mean = [
                    rng.random_range(a * wf..=b * wf),
                    rng.random_range(a * hf..=b * hf),
                ];
                self.gaussian_pair(rng, mean, w, h, cw, ch)
            }
            Method::Rrc => {
                let boxes = [0, 1].map(|_| self.resized_crop_box(rng, w, h, self.rrc_scale));
                PairDraw::from_boxes(centre, boxes)
            }
            Method::Saliency => {
                let mean = guide.map_or(centre, |g| g.centroid.map(f64::from));
                self.gaussian_pair(rng, mean, w, h, cw, ch)
            }
            Method::Ccrop => {
                let boxes = [0, 1].map(|_| {
                    let b = match self.ccrop_fixed_area {
                        true => uniform_box(rng, w, h, cw, ch),
                        false => self.resized_crop_box(rng, w, h, self.ccrop_scale),
                    };
                    match guide {
                        Some(g) => place_in_hot_box(rng, g, w, h, b, self.ccrop_beta),
                        None => b,
                    }
                });
                PairDraw::from_boxes(centre, boxes)
            }
        };
        Ok(draw)
    }

    fn gaussian_pair<R: Rng>(
        &self,
        rng: &mut R,
        mean: [f64; 2],
        w: usize,
        h: usize,
        cw: usize,
        ch: usize,
    ) -> PairDraw {
        let mut centres = [[0.0; 2]; 2];
        let mut boxes = [CropBox {
            left: 0,
            top: 0,
            width: cw as u32,
            height: ch as u32,
        }; 2];
        for (c, b) in centres.iter_mut().zip(&mut boxes) {
            *c = gaussian_centre(rng, mean, self.alpha, w, h);
            // The authors' arithmetic: truncate the centre, subtract half the size (floor).
            b.left = c[0].trunc() as i64 - (cw / 2) as i64;
            b.top = c[1].trunc() as i64 - (ch / 2) as i64;
            if self.method == Method::Cgcc {
                b.left = b.left.clamp(0, (w - cw) as i64);
                b.top = b.top.clamp(0, (h - ch) as i64);
            }
        }
        PairDraw {
            mean,
            centres,
            boxes,
        }
    }

    /// torchvision's RandomResizedCrop.get_params: ten tries at a box of random area and aspect
    /// ratio inside the image, then a central crop of the nearest allowed ratio.
    fn resized_crop_box<R: Rng>(
        &self,
        rng: &mut R,
        w: usize,
        h: usize,
        scale: (f64, f64),
    ) -> CropBox {
        let area = (w * h) as f64;
        let (log_r0, log_r1) = (self.rrc_ratio.0.ln(), self.rrc_ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(scale.0..=scale.1);
            let ratio = rng.random_range(log_r0..=log_r1).exp();
            let bw = (target * ratio).sqrt().round() as usize;
            let bh = (target / ratio).sqrt().round() as usize;
            if 0 < bw && bw <= w && 0 < bh && bh <= h {
                return uniform_box(rng, w, h, bw, bh);
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (bw, bh) = if in_ratio < self.rrc_ratio.0 {
            (w, ((w as f64 / self.rrc_ratio.0).round() as usize).min(h))
        } else if in_ratio > self.rrc_ratio.1 {
            (((h as f64 * self.rrc_ratio.1).round() as usize).min(w), h)
        } else {
            (w, h)
        };
        CropBox {
            left: ((w - bw) / 2) as i64,
            top: ((h - bh) / 2) as i64,
            width: bw as u32,
            height: bh as u32,
        }
    }
}

/// A `bw` x `bh` box with its top-left corner uniform over the positions inside the image.
fn uniform_box<R: Rng>(rng: &mut R, w: usize, h: usize, bw: usize, bh: usize) -> CropBox {
    CropBox {
        left: rng.random_range(0..=(w - bw)) as i64,
        top: rng.random_range(0..=(h - bh)) as i64,
        width: bw as u32,
        height: bh as u32,
    }
}

/// A centre drawn from N(mean, diag(alpha W, alpha H)): alpha scales the variance.
pub fn gaussian_centre<R: Rng>(
    rng: &mut R,
    mean: [f64; 2],
    alpha: f64,
    w: usize,
    h: usize,
) -> [f64; 2] {
    let sx = (alpha * w as f64).sqrt();
    let sy = (alpha * h as f64).sqrt();
    // The standard deviations are positive and finite for a validated alpha.
    let x = Normal::new(mean[0], sx).map_or(mean[0], |d| d.sample(rng));
    let y = Normal::new(mean[1], sy).map_or(mean[1], |d| d.sample(rng));
    // Far-away centres only ever give empty views; keep the integer arithmetic in range.
    [x.clamp(-1e9, 1e9), y.clamp(-1e9, 1e9)]
}

/// One image's draw: the distribution's mean (the image centre except for MGCC), the two view
/// centres (continuous, before truncation) and the two boxes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairDraw {
    pub mean: [f64; 2],
    pub centres: [[f64; 2]; 2],
    pub boxes: [CropBox; 2],
}

impl PairDraw {
    fn from_boxes(mean: [f64; 2], boxes: [CropBox; 2]) -> PairDraw {
        let centre = |b: &CropBox| {
            [
                b.left as f64 + b.width as f64 / 2.0,
                b.top as f64 + b.height as f64 / 2.0,
            ]
        };
        PairDraw {
            mean,
            centres: [centre(&boxes[0]), centre(&boxes[1])],
            boxes,
        }
    }
}
