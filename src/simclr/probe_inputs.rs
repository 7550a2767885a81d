//! Where the linear probe's inputs come from. [`Precomputed`]: every image's frozen features
//! computed once (whole images, batch norm in evaluation mode), the fast protocol for CPU
//! devices. [`Augmented`]: every training batch cropped (RandomCrop with zero padding, flip)
//! and passed through the frozen backbone at every step, the paper's protocol, with the
//! backbone's batch norm in evaluation or training mode.

use rand_chacha::ChaCha8Rng;

use crate::augment::{ViewPipeline, ViewPlan};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;
use crate::ops::batchnorm::{batch_norm_forward, BatchNormState};
use crate::simclr::features::{all_image_features, extract_features, view_features};
use crate::tensor::Tensor;

/// Whole images per batch when features are extracted.
const EXTRACT_BATCH: usize = 512;

/// The probe's inputs for training steps, validation and test.
pub(crate) trait ProbeInputs {
    /// Inputs `[rows.len(), dim]` for one SGD step on training images `rows`.
    fn fit_batch(&mut self, rows: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor>;
    /// Inputs of the validation images (fixed when the inputs were made).
    fn validation(&mut self) -> Result<Tensor>;
    /// Inputs of every test image.
    fn test(&mut self) -> Result<Tensor>;
    /// Keeps what the latest validation inputs depended on (the backbone's running statistics
    /// when batch norm trains), so that the test sees the best epoch's backbone.
    fn keep_best(&mut self) -> Result<()>;
    fn restore_best(&mut self) -> Result<()>;
}

/// Per-dimension mean and 1 / (std + 1e-6) of training features: standardising with them is a
/// parameter-free batch norm in front of the probe (as MAE's linear probe has). Pooled features
/// of a frozen network can have spreads of 0.01 around means of 0.3; without this, SGD at lr
/// 0.01 barely moves the probe within 100 epochs.
pub(crate) struct Moments {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

impl Moments {
    pub(crate) fn of(features: &[f32], dim: usize) -> Moments {
        let n = (features.len() / dim) as f64;
        let (mut mean, mut inv_std) = (vec![0.0; dim], vec![0.0; dim]);
        for k in 0..dim {
            let column = || features.iter().skip(k).step_by(dim).map(|&x| x as f64);
            mean[k] = column().sum::<f64>() / n;
            let var = column().map(|x| (x - mean[k]).powi(2)).sum::<f64>() / n;
            inv_std[k] = 1.0 / (var.sqrt() + 1e-6);
        }
        Moments { mean, inv_std }
    }

    pub(crate) fn apply(&self, x: &mut [f32]) {
        let dim = self.mean.len();
        for row in x.chunks_mut(dim) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.inv_std) {
                *v = ((*v as f64 - m) * s) as f32;
            }
        }
    }
}

/// [`Moments`] applied on the GPU: a batch norm in evaluation mode whose running statistics are
/// the moments (eps 0, variance (std + 1e-6)^2, so it divides by exactly what `apply` does).
struct GpuStandardizer {
    state: BatchNormState,
    ones: Tensor,
    zeros: Tensor,
}

impl GpuStandardizer {
    fn new(gpu: &Gpu, m: &Moments) -> Result<GpuStandardizer> {
        let dim = m.mean.len();
        let mean: Vec<f32> = m.mean.iter().map(|&v| v as f32).collect();
        let var: Vec<f32> = m.inv_std.iter().map(|&s| (1.0 / (s * s)) as f32).collect();
        Ok(GpuStandardizer {
            state: BatchNormState {
                running_mean: Tensor::from_slice(gpu, &[dim], &mean)?,
                running_var: Tensor::from_slice(gpu, &[dim], &var)?,
                momentum: 0.0,
                eps: 0.0,
            },
            ones: Tensor::full(gpu, &[dim], 1.0)?,
            zeros: Tensor::zeros(gpu, &[dim])?,
        })
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let [n, dim] = [x.shape()[0], x.shape()[1]];
        let planes = x.reshape(&[n, dim, 1, 1])?;
        let (y, _) = batch_norm_forward(&planes, &self.ones, &self.zeros, &self.state, false)?;
        y.reshape(&[n, dim])
    }
}

fn upload_rows(gpu: &Gpu, x: &[f32], dim: usize, rows: &[usize]) -> Result<Tensor> {
    let v: Vec<f32> = rows
        .iter()
        .flat_map(|&r| x[r * dim..(r + 1) * dim].iter().copied())
        .collect();
    Tensor::from_slice(gpu, &[rows.len(), dim], &v)
}

/// The fast protocol: features computed once, kept on the CPU, uploaded batch by batch.
pub(crate) struct Precomputed {
    gpu: Gpu,
    dim: usize,
    train: Vec<f32>,
    test: Vec<f32>,
    validation: Tensor,
}

impl Precomputed {
    pub(crate) fn new(
        encoder: &dyn Encoder,
        train: &PackedImages,
        test: &PackedImages,
        pipeline: &ViewPipeline,
        val_rows: &[usize],
        recalibrate_bn: bool,
        standardize: bool,
    ) -> Result<Precomputed> {
        let gpu = train.gpu().clone();
        let dim = encoder.feature_dim();
        if recalibrate_bn {
            recalibrate_batch_norm(encoder, train, pipeline)?;
        }
        let of = |images: &PackedImages| {
            all_image_features(encoder, images, pipeline, EXTRACT_BATCH, false)?.to_vec()
        };
        let (mut train_f, mut test_f) = (of(train)?, of(test)?);
        if standardize {
            let moments = Moments::of(&train_f, dim);
            moments.apply(&mut train_f);
            moments.apply(&mut test_f);
        }
        let validation = upload_rows(&gpu, &train_f, dim, val_rows)?;
        Ok(Precomputed {
            gpu,
            dim,
            train: train_f,
            test: test_f,
            validation,
        })
    }
}

impl ProbeInputs for Precomputed {
    fn fit_batch(&mut self, rows: &[usize], _rng: &mut ChaCha8Rng) -> Result<Tensor> {
        upload_rows(&self.gpu, &self.train, self.dim, rows)
    }
    fn validation(&mut self) -> Result<Tensor> {
        Ok(self.validation.clone())
    }
    fn test(&mut self) -> Result<Tensor> {
        let n = self.test.len() / self.dim;
        Tensor::from_slice(&self.gpu, &[n, self.dim], &self.test)
    }
    fn keep_best(&mut self) -> Result<()> {
        Ok(())
    }
    fn restore_best(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How the paper's protocol augments the probe's training images.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProbeAugmentation {
    /// RandomCrop's zero padding in pixels (4 in the paper).
    pub pad: usize,
    pub flip: bool,
    /// Batch norm of the frozen backbone in training mode while the probe trains.
    pub backbone_bn_train: bool,
}

/// Batches of the recalibration pass: with batch norm's momentum 0.1, the statistics of the last
/// ~10 batches of this size dominate the running ones.
const RECALIBRATION_BATCH: usize = 128;

/// Re-estimates the backbone's batch-norm running statistics on whole training images (one
/// training-mode pass in a fixed order): the fast protocol's stand-in for the paper protocol,
/// whose backbone updates its statistics on the probe's images while the probe trains. Without
/// it, the statistics are those of the pre-training crops (or, for a random encoder, the
/// initial 0 and 1).
fn recalibrate_batch_norm(
    encoder: &dyn Encoder,
    images: &PackedImages,
    pipeline: &ViewPipeline,
) -> Result<()> {
    all_image_features(encoder, images, pipeline, RECALIBRATION_BATCH, true)?;
    Ok(())
}

/// Whole-image features of every image with batch norm on batch statistics, leaving the
/// running statistics as they were.
fn training_mode_features(
    encoder: &dyn Encoder,
    images: &PackedImages,
    pipeline: &ViewPipeline,
) -> Result<Vec<f32>> {
    let kept = running_statistics(encoder)?;
    let features = all_image_features(encoder, images, pipeline, EXTRACT_BATCH, true)?;
    set_running_statistics(encoder, &kept)?;
    features.to_vec()
}

fn running_statistics(encoder: &dyn Encoder) -> Result<Vec<Vec<f32>>> {
    encoder.buffers().iter().map(|(_, t)| t.to_vec()).collect()
}

fn set_running_statistics(encoder: &dyn Encoder, values: &[Vec<f32>]) -> Result<()> {
    for ((_, t), v) in encoder.buffers().iter().zip(values) {
        t.write(v)?;
    }
    Ok(())
}

/// The paper's protocol: augmented views through the frozen backbone at every step.
pub(crate) struct Augmented<'a> {
    encoder: &'a dyn Encoder,
    pipeline: &'a ViewPipeline,
    train: &'a PackedImages,
    test: &'a PackedImages,
    augmentation: ProbeAugmentation,
    standardizer: Option<GpuStandardizer>,
    val_rows: Vec<u32>,
    /// Validation inputs, kept while they cannot change (batch norm in evaluation mode).
    val_cache: Option<Tensor>,
    best_buffers: Vec<Vec<f32>>,
}

impl<'a> Augmented<'a> {
    /// The standardisation (when `standardize`) uses the moments of the training images'
    /// un-augmented features, taken before the probe trains, with batch norm in the mode the
    /// probe trains with (in training mode, the running statistics are restored afterwards).
    pub(crate) fn new(
        encoder: &'a dyn Encoder,
        train: &'a PackedImages,
        test: &'a PackedImages,
        pipeline: &'a ViewPipeline,
        val_rows: &[usize],
        augmentation: ProbeAugmentation,
        standardize: bool,
    ) -> Result<Augmented<'a>> {
        let standardizer = if standardize {
            let features = if augmentation.backbone_bn_train {
                training_mode_features(encoder, train, pipeline)?
            } else {
                all_image_features(encoder, train, pipeline, EXTRACT_BATCH, false)?.to_vec()?
            };
            let moments = Moments::of(&features, encoder.feature_dim());
            Some(GpuStandardizer::new(train.gpu(), &moments)?)
        } else {
            None
        };
        Ok(Augmented {
            encoder,
            pipeline,
            train,
            test,
            augmentation,
            standardizer,
            val_rows: val_rows.iter().map(|&r| r as u32).collect(),
            val_cache: None,
            best_buffers: Vec::new(),
        })
    }

    fn standardized(&self, f: Tensor) -> Result<Tensor> {
        match &self.standardizer {
            Some(s) => s.apply(&f),
            None => Ok(f),
        }
    }

    fn whole(&self, images: &PackedImages, rows: &[u32]) -> Result<Tensor> {
        let f = extract_features(
            self.encoder,
            images,
            rows,
            self.pipeline,
            EXTRACT_BATCH,
            false,
        )?;
        self.standardized(f)
    }
}

impl ProbeInputs for Augmented<'_> {
    fn fit_batch(&mut self, rows: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let [_, _, h, w] = self.train.shape();
        let indices: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let a = self.augmentation;
        let plan = ViewPlan::padded_crops(rng, &indices, [w, h], a.pad, a.flip);
        let f = view_features(
            self.encoder,
            self.train,
            &plan,
            self.pipeline,
            a.backbone_bn_train,
        )?;
        self.standardized(f)
    }

    fn validation(&mut self) -> Result<Tensor> {
        if let Some(v) = &self.val_cache {
            return Ok(v.clone());
        }
        let v = self.whole(self.train, &self.val_rows)?;
        if !self.augmentation.backbone_bn_train {
            self.val_cache = Some(v.clone());
        }
        Ok(v)
    }

    fn test(&mut self) -> Result<Tensor> {
        let f = all_image_features(self.encoder, self.test, self.pipeline, EXTRACT_BATCH, false)?;
        self.standardized(f)
    }

    fn keep_best(&mut self) -> Result<()> {
        if self.augmentation.backbone_bn_train {
            self.best_buffers = running_statistics(self.encoder)?;
        }
        Ok(())
    }

    fn restore_best(&mut self) -> Result<()> {
        set_running_statistics(self.encoder, &self.best_buffers)
    }
}
