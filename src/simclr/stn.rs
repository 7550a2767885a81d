//! The learnt crop placement (`stn`) in pre-training. Per step, the localiser reads the batch's
//! whole images and places each image's two views (`ops::stn`); the matrices are built on the
//! device, the views sampled, blurred and normalised by differentiable ops, and the encoder
//! trains on NT-Xent between them as for every other method. The localiser has its own Adam:
//! - `consistency`: it minimises 1 - cos(z(view), stopgrad z(whole image)) over both views (a
//!   second backward pass of the same tape, into the localiser only: the encoder gets only
//!   NT-Xent's gradient);
//! - `adversarial`: a gradient reversal between it and the matrices, so that one backward pass
//!   trains the encoder to minimise NT-Xent and the localiser to maximise it, plus the overlap
//!   hinge that keeps the two views' IoU above `min_iou`.
//!
//! During the warm-up the localiser is not run: its zero output places views as GCC does. After
//! it, the localiser places every step's views and learns on every `every`-th step.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::augment::{ViewPipeline, ViewPlan};
use crate::autograd::{Graph, Var};
use crate::crop::{view_geometry, CropBox, PadMode};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::localiser::Localiser;
use crate::nn::Encoder;
use crate::ops::affine_sample::VIEW_INFO_WORDS;
use crate::ops::affine_sample::{affine_sample_resident, pack_view_info, PackedImages, ViewInfo};
use crate::ops::blur_normalize::blur_normalize;
use crate::ops::elementwise::{accumulate, add, add_forward, scale, scale_forward};
use crate::ops::l2norm::{l2_normalize, l2_normalize_forward};
use crate::ops::ntxent::nt_xent;
use crate::ops::stn::{
    agreement, gradient_reversal, overlap_hinge, view_matrices, Placement, DRAW_WORDS,
    PLACEMENT_WORDS, STAT_WORDS,
};
use crate::ops::view::rows;
use crate::optim::{Adam, Optimizer};
use crate::simclr::checkpoint::Checkpoint;
use crate::simclr::config::{PretrainConfig, StnConfig, StnObjective};
use crate::tensor::{Precision, Tensor};

/// The generator stream of the localiser's initial weights (the encoder's is stream 0, the
/// epochs' 1, 2, ...), so that adding the localiser changes no other draw.
const LOCALISER_STREAM: u64 = u64::MAX;

/// What the placement did over one epoch, averaged over its steps' images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacementRecord {
    /// Distance of the Gaussian's mean from the image centre, as a fraction of the side.
    pub mean_offset: f64,
    /// The centre's spread (std), as a fraction of the side.
    pub mean_spread: f64,
    /// Share of the views' area outside the image (zeros).
    pub outside_share: f64,
    /// The two views' overlap over their union (IoU).
    pub overlap: f64,
    /// The localiser's own loss (None during the warm-up, when it does not train).
    pub localiser_loss: Option<f64>,
}

/// The localiser, its optimiser, and where it may put views.
pub struct LearntPlacement {
    pub localiser: Localiser,
    pub optimizer: Adam,
    pub placement: Placement,
    pub config: StnConfig,
    /// Epochs before the localiser trains.
    pub warmup: usize,
    /// The run's precision (the convolutions of the encoder and the localiser).
    pub precision: Precision,
}

/// The running sums of one epoch (on the device; read once, at its end).
#[derive(Default)]
pub struct PlacementTally {
    stats: Option<Tensor>,
    loss: Option<Tensor>,
    steps: usize,
    /// Steps on which the localiser learnt (and its loss was added).
    loss_steps: usize,
}

impl LearntPlacement {
    /// A zero-output localiser for the run of `config` on `channels`-channel `image_wh`
    /// images.
    pub fn new(
        gpu: &Gpu,
        config: &PretrainConfig,
        channels: usize,
        image_wh: [usize; 2],
    ) -> Result<LearntPlacement> {
        let spec = config.crop_spec()?;
        let view_wh = spec.view_size(image_wh[0], image_wh[1])?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(LOCALISER_STREAM);
        let localiser = Localiser::new(gpu, &mut rng, channels)?;
        let optimizer = Adam::new(localiser.params(), config.stn.lr as f32);
        let s = &config.stn;
        Ok(LearntPlacement {
            localiser,
            optimizer,
            placement: Placement::gcc(
                image_wh,
                view_wh,
                config.alpha,
                s.min_spread(config.alpha),
                s.min_iou,
            ),
            config: s.clone(),
            warmup: s.warmup(config.epochs),
            precision: config.precision,
        })
    }

    /// One SimCLR step with learnt views (see the module's comment); returns NT-Xent's loss.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step(
        &mut self,
        encoder: &dyn Encoder,
        optimizer: &mut Optimizer,
        pipeline: &ViewPipeline,
        images: &PackedImages,
        rng: &mut ChaCha8Rng,
        indices: &[u32],
        epoch: usize,
        step: usize,
        temperature: f32,
        tally: &mut PlacementTally,
    ) -> Result<Tensor> {
        let gpu = images.gpu().clone();
        let b = indices.len();
        let [_, _, ih, iw] = images.shape();
        let (draws, info) = draw_views(rng, pipeline, indices, [iw, ih]);
        let draws = Tensor::from_slice(&gpu, &[2 * b, DRAW_WORDS], &draws)?;
        let info = Tensor::from_u32(&gpu, &[2 * b, VIEW_INFO_WORDS], &pack_view_info(&info))?;
        let started = epoch >= self.warmup;
        // After the warm-up the localiser places every step's views, and learns on every
        // `every`-th step of an epoch.
        let trains = started && step % self.config.every == 0;
        let whole = match started {
            true => Some(pipeline.run_single(images, &ViewPlan::whole_images(indices, [iw, ih]))?),
            false => None,
        };
        let g = Graph::new(&gpu).with_precision(self.precision);
        let r = match &whole {
            Some(whole) if trains => self.localiser.forward(&g, g.input(whole.clone()))?,
            Some(whole) => g.input(self.placements(whole)?),
            None => g.input(Tensor::zeros(&gpu, &[b, PLACEMENT_WORDS])?),
        };
        let adversarial = trains && self.config.objective == StnObjective::Adversarial;
        let to_views = match adversarial {
            true => gradient_reversal(&g, r),
            false => r,
        };
        let (v1, v2, stats) = self.views(&g, to_views, &draws, &info, images, pipeline)?;
        let z1 = encoder.forward(&g, v1, true)?;
        let z2 = encoder.forward(&g, v2, true)?;
        let loss = nt_xent(&g, z1, z2, temperature)?;
        let localiser_loss = match (trains, adversarial) {
            (false, _) => {
                g.backward(loss)?;
                None
            }
            (true, true) => {
                // One pass: the reversal turns NT-Xent's gradient into the localiser's ascent.
                let hinge = overlap_hinge(&g, r, &draws, &self.placement)?;
                let weighted = scale(&g, hinge, self.config.hinge_weight as f32)?;
                let total = add(&g, loss, weighted)?;
                g.backward(total)?;
                let ascent = scale_forward(&g.value(loss), -1.0)?;
                Some(add_forward(&ascent, &g.value(weighted))?)
            }
            (true, false) => {
                let target = self.consistency_target(encoder, pipeline, images, indices)?;
                let consistency = consistency_loss(&g, z1, z2, &target)?;
                g.backward_into(loss, &encoder.params())?;
                g.backward_into(consistency, &self.localiser.params())?;
                Some(g.value(consistency))
            }
        };
        optimizer.step()?;
        if localiser_loss.is_some() {
            self.optimizer.step()?;
        }
        tally.add(&stats, localiser_loss.as_ref())?;
        Ok(g.value(loss))
    }

    /// The two view batches `[B, C, h, w]` placed by `r` `[B, 4]` (on the tape, so that
    /// gradients reach `r`) and the placement's statistics: matrices, sampling of the resident
    /// images, blur and normalisation (each view's own weights from `info`).
    pub fn views(
        &self,
        g: &Graph,
        r: Var,
        draws: &Tensor,
        info: &Tensor,
        images: &PackedImages,
        pipeline: &ViewPipeline,
    ) -> Result<(Var, Var, Tensor)> {
        let b = g.value(r).shape()[0];
        let (m, stats) = view_matrices(g, r, draws, &self.placement)?;
        let [vw, vh] = self.placement.view_wh;
        let sampled = affine_sample_resident(g, images, m, info, [vh, vw])?;
        let norm = &pipeline.normalization;
        let views = blur_normalize(g, sampled, info, &norm.mean, &norm.std)?;
        Ok((rows(g, views, 0, b)?, rows(g, views, b, b)?, stats))
    }

    /// The consistency objective's targets `[B, D]`: the unit embeddings of the whole images,
    /// resized to the views' resolution (the size the encoder trains at, and a third of the
    /// pixels at crop 0.4), through the encoder with batch norm in evaluation mode, no gradient.
    pub fn consistency_target(
        &self,
        encoder: &dyn Encoder,
        pipeline: &ViewPipeline,
        images: &PackedImages,
        indices: &[u32],
    ) -> Result<Tensor> {
        let [_, _, ih, iw] = images.shape();
        let plan = resized_whole_images(indices, [iw, ih], self.placement.view_wh);
        let small = pipeline.run_single(images, &plan)?;
        let frozen = Graph::no_grad(images.gpu());
        let z = encoder.forward(&frozen, frozen.input(small), false)?;
        l2_normalize_forward(&frozen.value(z))
    }

    /// Adds the localiser's weights and optimiser state to a checkpoint.
    pub fn save_into(&self, ck: &mut Checkpoint) -> Result<()> {
        for p in self.localiser.params() {
            ck.add(format!("stn/param/{}", p.name), &p.value)?;
        }
        let (state, steps) = self.optimizer.state();
        for (name, t) in &state {
            ck.add(format!("stn/optim/{name}"), t)?;
        }
        ck.metadata
            .insert("stn_optimizer_steps".into(), crate::json::to_line(&steps)?);
        Ok(())
    }

    /// Restores what [`LearntPlacement::save_into`] wrote.
    pub fn restore_from(
        &mut self,
        gpu: &Gpu,
        ck: &Checkpoint,
        path: &std::path::Path,
    ) -> Result<()> {
        for p in self.localiser.params() {
            ck.restore_into(&format!("stn/param/{}", p.name), &p.value, path)?;
        }
        let steps: Vec<u32> =
            serde_json::from_str(ck.meta("stn_optimizer_steps", path)?).map_err(|e| {
                Error::File {
                    path: path.to_path_buf(),
                    detail: format!("entry \"stn_optimizer_steps\" is not valid: {e}"),
                }
            })?;
        let find = |name: &str| {
            ck.tensor(gpu, &format!("stn/optim/{name}"))
                .and_then(|r| r.ok())
        };
        self.optimizer.load_state(&find, &steps)
    }

    /// The placement outputs `[N, 4]` of whole images, without gradient.
    pub fn placements(&self, whole: &Tensor) -> Result<Tensor> {
        let g = Graph::no_grad(whole.gpu());
        let r = self.localiser.forward(&g, g.input(whole.clone()))?;
        Ok(g.value(r))
    }

    /// [`LearntPlacement::placements`] read back (previews).
    pub fn outputs(&self, whole: &Tensor) -> Result<Vec<f32>> {
        self.placements(whole)?.to_vec()
    }
}

impl PlacementTally {
    fn add(&mut self, stats: &Tensor, loss: Option<&Tensor>) -> Result<()> {
        self.steps += 1;
        // The first step's outputs become the sums: nothing else holds or writes them.
        match &self.stats {
            Some(sum) => accumulate(sum, stats)?,
            None => self.stats = Some(stats.clone()),
        }
        if let Some(loss) = loss {
            self.loss_steps += 1;
            match &self.loss {
                Some(sum) => accumulate(sum, loss)?,
                None => self.loss = Some(loss.clone()),
            }
        }
        Ok(())
    }

    /// The epoch's means (one read-back).
    pub fn record(&self) -> Result<Option<PlacementRecord>> {
        let Some(stats) = &self.stats else {
            return Ok(None);
        };
        let sums = stats.to_vec()?;
        let images = (sums.len() / STAT_WORDS * self.steps) as f64;
        let mean = |i: usize| {
            sums.iter()
                .skip(i)
                .step_by(STAT_WORDS)
                .map(|&v| v as f64)
                .sum::<f64>()
                / images
        };
        let localiser_loss = match &self.loss {
            Some(l) => Some(l.item()? as f64 / self.loss_steps as f64),
            None => None,
        };
        Ok(Some(PlacementRecord {
            mean_offset: mean(0),
            mean_spread: mean(1),
            outside_share: mean(2),
            overlap: mean(3),
            localiser_loss,
        }))
    }
}

/// The consistency objective: 1 - cos(z(view), target) averaged over both views' embeddings.
pub fn consistency_loss(g: &Graph, z1: Var, z2: Var, targets: &Tensor) -> Result<Var> {
    let a1 = agreement(g, l2_normalize(g, z1)?, targets)?;
    let a2 = agreement(g, l2_normalize(g, z2)?, targets)?;
    scale(g, add(g, a1, a2)?, 0.5)
}

/// Each image `indices[k]` whole, resized to `view_wh` (bilinear; no crop, flip or blur).
fn resized_whole_images(indices: &[u32], image_wh: [usize; 2], view_wh: [usize; 2]) -> ViewPlan {
    let whole = CropBox {
        left: 0,
        top: 0,
        width: image_wh[0] as u32,
        height: image_wh[1] as u32,
    };
    let g = view_geometry(&whole, image_wh, view_wh, PadMode::Window, false);
    let mut plan = ViewPlan::whole_images(indices, image_wh);
    plan.matrices = indices
        .iter()
        .flat_map(|_| g.matrix.map(|v| v as f32))
        .collect();
    plan.view_wh = view_wh;
    plan
}

/// The CPU's share of a step: per image, in order, the standard normal noise of its two views
/// (x, y each), their two flips, their two blur sigmas; and the views' information words (the
/// whole image as the rectangle: zeros only outside it).
pub fn draw_views<R: Rng>(
    rng: &mut R,
    pipeline: &ViewPipeline,
    indices: &[u32],
    image_wh: [usize; 2],
) -> (Vec<f32>, Vec<ViewInfo>) {
    let b = indices.len();
    let mut draws = vec![0.0f32; 2 * b * DRAW_WORDS];
    let mut info = vec![ViewInfo::whole(0); 2 * b];
    let rect = [0, 0, image_wh[0] as i32, image_wh[1] as i32];
    for (k, &image) in indices.iter().enumerate() {
        for v in [k, b + k] {
            for a in 0..2 {
                draws[DRAW_WORDS * v + a] = rng.sample::<f64, _>(StandardNormal) as f32;
            }
        }
        let (flips, sigmas) = pipeline.draw_flips_and_sigmas(rng);
        for (view, v) in [k, b + k].into_iter().enumerate() {
            draws[DRAW_WORDS * v + 2] = flips[view] as u8 as f32;
            let blur = pipeline.blur_of(sigmas[view]);
            info[v] = ViewInfo { rect, image, blur };
        }
    }
    (draws, info)
}
