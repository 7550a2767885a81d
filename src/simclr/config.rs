//! The configuration of a pre-training run, stored in its checkpoint so that a resumed run and
//! the linear evaluation know exactly what was trained.

use crate::names::string_enum;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::augment::Normalization;
use crate::crop::{CropSpec, Method, PadMode};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::ModelKind;
use crate::tensor::Precision;

string_enum! {
    /// The pre-training optimiser.
    pub enum OptimizerKind {
        /// Adam (the paper's choice), betas (0.9, 0.999).
        Adam = "adam",
        /// SGD with momentum.
        Sgd = "sgd",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub method: Method,
    /// Crop size as a fraction of the image area.
    pub crop: f64,
    pub alpha: f64,
    pub pad: PadMode,
    pub mgcc_range: (f64, f64),
    pub epochs: usize,
    pub batch: usize,
    pub model: ModelKind,
    /// Width of the embedding fed to NT-Xent.
    pub embedding: usize,
    /// The data set folder; None for the shipped Fashion-MNIST sample.
    pub data: Option<PathBuf>,
    /// Use only the first N training images (tiny runs and tests); None for all.
    pub train_limit: Option<usize>,
    pub seed: u64,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub temperature: f64,
    /// Per-channel statistics; None computes them from the training images.
    pub normalization: Option<Normalization>,
    /// Run the kNN monitor every this many epochs (0: never).
    pub knn_every: usize,
    pub knn_k: usize,
    /// Read the loss back (and check it is finite) every this many steps.
    pub loss_every: usize,
    /// The guided methods' settings (saliency, ccrop); absent in checkpoints made before them.
    #[serde(default)]
    pub guide: GuideConfig,
    /// The learnt placement's settings (stn); absent in checkpoints made before it.
    #[serde(default)]
    pub stn: StnConfig,
    /// What the encoder's convolutions store their operands in during pre-training (the
    /// evaluations run in f32); absent (f32) in checkpoints made before it.
    #[serde(default)]
    pub precision: Precision,
}

string_enum! {
    /// What the learnt placement's localiser is trained to do.
    pub enum StnObjective {
        /// Place views where they still look like their image: minimise
        /// 1 - cos(z(view), stopgrad z(whole image)) over both views.
        Consistency = "consistency",
        /// Gradient reversal: maximise NT-Xent, held by a hinge on the views' overlap (IoU).
        Adversarial = "adversarial",
    }
}

/// How the learnt placement (`stn`) trains its localiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StnConfig {
    pub objective: StnObjective,
    /// The floor on the spread, as the GCC alpha whose std it is (`sqrt(a x side)` pixels);
    /// None: 0.5, or the run's alpha where that is smaller (so that the localiser starts as
    /// GCC at the run's alpha).
    pub min_spread: Option<f64>,
    /// The adversarial objective keeps the two views' IoU above this.
    pub min_iou: f64,
    /// The weight of the overlap hinge against NT-Xent (adversarial objective).
    pub hinge_weight: f64,
    /// Epochs of GCC (the untrained localiser) before the localiser trains; None: a quarter.
    pub warmup: Option<usize>,
    /// The localiser's Adam learning rate (constant).
    pub lr: f64,
    /// The localiser learns on every this-many-th step of an epoch (it places every step's
    /// views); absent in checkpoints made before it.
    #[serde(default = "every_step")]
    pub every: usize,
}

fn every_step() -> usize {
    1
}

impl Default for StnConfig {
    fn default() -> StnConfig {
        StnConfig {
            objective: StnObjective::Consistency,
            min_spread: None,
            min_iou: 0.2,
            hinge_weight: 100.0,
            warmup: None,
            lr: 1e-3,
            every: 1,
        }
    }
}

/// Learnt-placement settings given on a command line: each one given replaces the base's.
#[derive(Clone, Debug, Default)]
pub struct StnOverrides {
    pub objective: Option<StnObjective>,
    pub min_spread: Option<f64>,
    pub min_iou: Option<f64>,
    pub hinge_weight: Option<f64>,
    pub warmup: Option<usize>,
    pub lr: Option<f64>,
    pub every: Option<usize>,
}

impl StnOverrides {
    pub fn apply(&self, base: StnConfig) -> StnConfig {
        StnConfig {
            objective: self.objective.unwrap_or(base.objective),
            min_spread: self.min_spread.or(base.min_spread),
            min_iou: self.min_iou.unwrap_or(base.min_iou),
            hinge_weight: self.hinge_weight.unwrap_or(base.hinge_weight),
            warmup: self.warmup.or(base.warmup),
            lr: self.lr.unwrap_or(base.lr),
            every: self.every.unwrap_or(base.every),
        }
    }
}

impl StnConfig {
    /// The warm-up in epochs for a run of `epochs`, the default resolved.
    pub fn warmup(&self, epochs: usize) -> usize {
        self.warmup.unwrap_or(epochs / 4)
    }

    /// The spread floor as a GCC alpha for a run at `alpha`, the default resolved.
    pub fn min_spread(&self, alpha: f64) -> f64 {
        self.min_spread.unwrap_or(alpha.min(0.5))
    }
}

/// How the saliency-guided methods refresh and use their per-image guides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuideConfig {
    /// Epochs of the unguided strategy before the first refresh; None: a fifth of the epochs
    /// (ContrastiveCrop's CIFAR setting, 100 of 500).
    pub warmup: Option<usize>,
    /// Refresh every this many epochs after the warm-up; None: a fifth of the epochs (at
    /// least 1).
    pub every: Option<usize>,
    /// A heat-map row or column is hot above this (ContrastiveCrop's box), in (0, 1).
    pub threshold: f64,
    /// ContrastiveCrop's Beta(a, a) of the crop centre within the hot box.
    pub ccrop_beta: f64,
    /// ContrastiveCrop at the run's fixed crop area without resize, instead of
    /// RandomResizedCrop's scale and ratio with resize.
    pub ccrop_fixed_area: bool,
}

impl GuideConfig {
    /// (warm-up, refresh period) in epochs for a run of `epochs`, defaults resolved.
    pub fn schedule(&self, epochs: usize) -> (usize, usize) {
        let fifth = epochs / 5;
        (
            self.warmup.unwrap_or(fifth),
            self.every.unwrap_or(fifth.max(1)),
        )
    }
}

impl Default for GuideConfig {
    fn default() -> GuideConfig {
        GuideConfig {
            warmup: None,
            every: None,
            threshold: 0.1,
            ccrop_beta: 0.1,
            ccrop_fixed_area: false,
        }
    }
}

impl PretrainConfig {
    /// The paper's protocol for a crop strategy, with the small CNN on the shipped sample.
    /// The embedding width of every configuration made here: what a random encoder of the
    /// same model is built with, so that the baseline has the pre-trained encoders' shape.
    pub fn default_embedding() -> usize {
        128
    }

    pub fn new(method: Method, crop: f64, alpha: f64, epochs: usize) -> PretrainConfig {
        PretrainConfig {
            method,
            crop,
            alpha,
            pad: PadMode::Centre,
            mgcc_range: (0.25, 0.75),
            epochs,
            batch: 256,
            model: ModelKind::SmallCnn,
            embedding: PretrainConfig::default_embedding(),
            data: None,
            train_limit: None,
            seed: 0,
            optimizer: OptimizerKind::Adam,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            temperature: 0.1,
            normalization: None,
            knn_every: 0,
            knn_k: 200,
            loss_every: 10,
            guide: GuideConfig::default(),
            stn: StnConfig::default(),
            precision: Precision::F32,
        }
    }

    /// Whether a guided method recomputes its guides before epoch `epoch` (0-based): at the end
    /// of the warm-up and every refresh period after it.
    pub fn refreshes_before(&self, epoch: usize) -> bool {
        let (warmup, every) = self.guide.schedule(self.epochs);
        self.method.is_guided() && epoch >= warmup && (epoch - warmup) % every == 0
    }

    /// The validated crop spec.
    pub fn crop_spec(&self) -> Result<CropSpec> {
        let mut spec = CropSpec::new(self.method, self.crop, self.alpha)?;
        spec.pad = self.pad;
        spec.mgcc_range = self.mgcc_range;
        spec.ccrop_beta = self.guide.ccrop_beta;
        spec.ccrop_fixed_area = self.guide.ccrop_fixed_area;
        spec.validated()
    }

    /// Checks every field; the error says which and what is allowed.
    /// The crop of this configuration, checked against the training images it will see: a
    /// batch no larger than them, and views of at least one pixel.
    pub fn check_data(&self, train: &Dataset) -> Result<CropSpec> {
        if train.len() < self.batch {
            return Err(Error::InvalidArgument(format!(
                "--batch {} is larger than the {} training images",
                self.batch,
                train.len()
            )));
        }
        let spec = self.crop_spec()?;
        let [_, h, w] = train.shape();
        spec.view_size(w, h)?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<()> {
        self.crop_spec()?;
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch < 2 {
            return bad(format!(
                "--batch {} is too small: NT-Xent needs at least 2 images per batch",
                self.batch
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr {} must be positive", self.lr));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "--temperature {} must be positive",
                self.temperature
            ));
        }
        if self.embedding == 0 || self.loss_every == 0 || self.knn_k == 0 {
            return bad("the embedding width, --loss-every and the kNN k must be positive".into());
        }
        self.validate_guide()?;
        self.validate_stn()
    }

    /// The learnt placement's settings; checked for every method, as the guides' are.
    fn validate_stn(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        let s = &self.stn;
        if let Some(f) = s.min_spread {
            if !(f > 0.0 && f.is_finite()) {
                return bad(format!(
                    "--stn-min-spread {f} must be positive: it is the GCC alpha whose std \
                     floors the views' spread (0.5 by default)"
                ));
            }
        }
        if !(0.0..1.0).contains(&s.min_iou) {
            return bad(format!(
                "--stn-min-iou {} must lie in [0, 1) (the two views' overlap over their union)",
                s.min_iou
            ));
        }
        if !(s.hinge_weight >= 0.0 && s.hinge_weight.is_finite()) {
            return bad(format!(
                "--stn-hinge-weight {} must be a number >= 0",
                s.hinge_weight
            ));
        }
        if !(s.lr > 0.0 && s.lr.is_finite()) {
            return bad(format!("--stn-lr {} must be positive", s.lr));
        }
        if s.every == 0 {
            return bad("--stn-every must be at least 1 step".into());
        }
        let warmup = s.warmup(self.epochs);
        if self.method.is_learnt() && warmup >= self.epochs {
            return bad(format!(
                "--stn-warmup {warmup} leaves no epoch of the {} for the localiser to train; \
                 use a warm-up below --epochs",
                self.epochs
            ));
        }
        Ok(())
    }

    /// The guided methods' settings; checked for every method, so that a typo is caught even
    /// where it would not be used.
    fn validate_guide(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        let t = self.guide.threshold;
        if !(t > 0.0 && t < 1.0) {
            return bad(format!(
                "--ccrop-threshold {t} must lie in (0, 1): the heat map is normalised to [0, 1] \
                 (ContrastiveCrop uses 0.1)"
            ));
        }
        let (warmup, _) = self.guide.schedule(self.epochs);
        if self.guide.every == Some(0) {
            return bad("--saliency-every must be at least 1 epoch".into());
        }
        if self.method.is_guided() && warmup >= self.epochs {
            return bad(format!(
                "--saliency-warmup {warmup} leaves no guided epoch of the {} (the guides are \
                 first computed after the warm-up); use a warm-up below --epochs",
                self.epochs
            ));
        }
        Ok(())
    }
}
