//! Linear evaluation of a frozen encoder: a linear classifier trained with the paper's optimiser
//! and schedule (SGD lr 0.01, momentum 0.9, x0.1 at epochs 20/40/60/80, up to 100 epochs),
//! on an 80/20 train/validation split, with early stopping when the validation loss has not
//! improved by 0.001 for 15 epochs; the classifier (and backbone state) of the best validation
//! loss is scored on the test set. Two protocols feed it (see `probe_inputs`): the paper's,
//! with RandomCrop(pad 4) + flip views through the frozen backbone at every step, and a fast
//! one that computes whole-image features once.

use crate::names::string_enum;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::ViewPipeline;
use crate::autograd::Graph;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::layers::Linear;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;
use crate::ops::cross_entropy::{cross_entropy, cross_entropy_forward};
use crate::ops::linear::linear_forward;
use crate::optim::Sgd;
use crate::simclr::probe_inputs::{Augmented, Precomputed, ProbeAugmentation, ProbeInputs};
use crate::tensor::Tensor;

string_enum! {
    /// How the probe's training images reach it.
    pub enum ProbeProtocol {
        /// Whole-image features computed once, batch norm in evaluation mode (for CPU devices).
        Fast = "fast",
        /// The paper's: RandomCrop(pad) + flip views through the frozen backbone at every step.
        Paper = "paper",
    }
}

string_enum! {
    /// The frozen backbone's batch norm while the probe trains.
    pub enum BackboneBn {
        /// Running statistics, untouched (the usual protocol).
        Eval = "eval",
        /// Batch statistics, running statistics updated (the authors' code). With the fast
        /// protocol: the running statistics are first re-estimated on the training images,
        /// then the features computed once with them (what the paper protocol's statistics
        /// converge to).
        Train = "train",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearEvalConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub momentum: f64,
    /// Epochs after which the learning rate is multiplied by 0.1.
    pub milestones: Vec<usize>,
    pub patience: usize,
    pub min_delta: f64,
    pub val_fraction: f64,
    pub seed: u64,
    pub protocol: ProbeProtocol,
    pub backbone_bn: BackboneBn,
    /// RandomCrop's zero padding in pixels (paper protocol).
    pub pad: usize,
    /// Random horizontal flips of the training images (paper protocol).
    pub flip: bool,
    /// Standardise every feature with the training images' moments (see `probe_inputs`).
    pub standardize: bool,
}

impl Default for LinearEvalConfig {
    fn default() -> Self {
        LinearEvalConfig {
            epochs: 100,
            batch: 256,
            lr: 0.01,
            momentum: 0.9,
            milestones: vec![20, 40, 60, 80],
            patience: 15,
            min_delta: 0.001,
            val_fraction: 0.2,
            seed: 0,
            protocol: ProbeProtocol::Fast,
            backbone_bn: BackboneBn::Eval,
            pad: 4,
            flip: true,
            standardize: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearEvalResult {
    /// Fraction of test images classified correctly.
    pub test_accuracy: f64,
    pub best_val_loss: f64,
    /// 1-based epoch of the best validation loss (the classifier that is tested).
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub test_images: usize,
}

fn labels_of(gpu: &Gpu, labels: &[u32], rows: &[usize]) -> Result<Tensor> {
    let v: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    Tensor::from_u32(gpu, &[v.len()], &v)
}

/// Trains and tests the linear probe on `encoder`'s frozen features. `pipeline` supplies the
/// normalisation the encoder was trained with. With the paper protocol and batch norm in
/// training mode, the encoder's running statistics change: they end as they were at the best
/// validation loss. `progress` draws a bar over the probe's epochs.
pub fn linear_eval(
    gpu: &Gpu,
    encoder: &dyn Encoder,
    train: &Dataset,
    test: &Dataset,
    pipeline: &ViewPipeline,
    config: &LinearEvalConfig,
    progress: bool,
) -> Result<LinearEvalResult> {
    check_inputs(config, train, test)?;
    let dim = encoder.feature_dim();
    let classes = train.classes();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let (val_rows, mut fit_rows) = split_rows(train.len(), config.val_fraction, &mut rng);
    let val_rows = &val_rows[..];
    let val_y = labels_of(gpu, train.labels(), val_rows)?;

    let (train_images, test_images) = (train.upload(gpu)?, test.upload(gpu)?);
    let mut inputs = probe_inputs(
        encoder,
        &train_images,
        &test_images,
        pipeline,
        val_rows,
        config,
    )?;

    let probe = Linear::new(gpu, &mut rng, "probe", dim, classes)?;
    let mut sgd = Sgd::new(
        probe.params(),
        config.lr as f32,
        config.momentum as f32,
        0.0,
    );
    let mut best = Best::of(&probe, f64::INFINITY, 0)?;
    let mut epochs_run = 0;
    let bar = match progress {
        true => ProgressBar::new(config.epochs as u64),
        false => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("probe [{bar:30}] {pos}/{len} epochs {msg} ({elapsed})")
            .map_err(|e| Error::InvalidArgument(format!("progress bar: {e}")))?
            .progress_chars("=> "),
    );
    for epoch in 0..config.epochs {
        let drops = config.milestones.iter().filter(|&&m| epoch >= m).count();
        sgd.lr = (config.lr * 0.1f64.powi(drops as i32)) as f32;
        fit_rows.shuffle(&mut rng);
        for rows in fit_rows.chunks(config.batch) {
            let g = Graph::new(gpu);
            let x = g.input(inputs.fit_batch(rows, &mut rng)?);
            let y = labels_of(gpu, train.labels(), rows)?;
            let loss = cross_entropy(&g, probe.forward(&g, x)?, &y)?;
            g.backward(loss)?;
            sgd.step()?;
        }
        epochs_run = epoch + 1;
        let val_x = inputs.validation()?;
        let logits = linear_forward(&val_x, &probe.weight.value, Some(&probe.bias.value))?;
        let val_loss = cross_entropy_forward(&logits, &val_y)?.item()? as f64;
        if !val_loss.is_finite() {
            return Err(Error::Diverged(format!(
                "the linear probe's validation loss is {val_loss} at epoch {epochs_run}"
            )));
        }
        if val_loss < best.val_loss - config.min_delta {
            best = Best::of(&probe, val_loss, epochs_run)?;
            inputs.keep_best()?;
        } else if epochs_run - best.epoch >= config.patience {
            break;
        }
        bar.set_message(format!(
            "validation loss {val_loss:.4} (best {:.4})",
            best.val_loss
        ));
        bar.set_position(epochs_run as u64);
    }
    bar.finish_and_clear();
    best.restore(&probe)?;
    inputs.restore_best()?;
    let logits = linear_forward(
        &inputs.test()?,
        &probe.weight.value,
        Some(&probe.bias.value),
    )?
    .to_vec()?;
    Ok(LinearEvalResult {
        test_accuracy: accuracy(&logits, test.labels(), classes),
        best_val_loss: best.val_loss,
        best_epoch: best.epoch,
        epochs_run,
        train_images: fit_rows.len(),
        val_images: val_rows.len(),
        test_images: test.len(),
    })
}

/// The settings and data a probe needs: a validation fraction in (0, 1), at least one epoch, a
/// positive batch, 2 training images (one to fit, one to validate), 1 test image, and the same
/// classes in both splits.
fn check_inputs(config: &LinearEvalConfig, train: &Dataset, test: &Dataset) -> Result<()> {
    if !(config.val_fraction > 0.0 && config.val_fraction < 1.0)
        || config.epochs == 0
        || config.batch == 0
    {
        return Err(Error::InvalidArgument(format!(
            "linear evaluation needs a validation fraction in (0, 1), at least one epoch and a \
             positive batch; got {}, {} and {}",
            config.val_fraction, config.epochs, config.batch
        )));
    }
    // The split below keeps one validation image and one training image at the least.
    if train.len() < 2 || test.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the linear probe needs at least 2 training images (one to fit, one to validate) \
             and 1 test image; got {} and {}",
            train.len(),
            test.len()
        )));
    }
    if train.classes() != test.classes() {
        return Err(Error::InvalidArgument(format!(
            "the training images have {} classes but the test images {}",
            train.classes(),
            test.classes()
        )));
    }
    Ok(())
}

/// A seeded split of `len` training rows into validation rows (a `fraction` of them, at least
/// one) and rows to fit (at least one).
fn split_rows(len: usize, fraction: f64, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(rng);
    let n_val = ((len as f64 * fraction).round() as usize).clamp(1, len - 1);
    let fit = order.split_off(n_val);
    (order, fit)
}

/// The probe's inputs under the configured protocol: features computed once (fast), or views
/// through the frozen encoder at every step (paper).
fn probe_inputs<'a>(
    encoder: &'a dyn Encoder,
    train_images: &'a PackedImages,
    test_images: &'a PackedImages,
    pipeline: &'a ViewPipeline,
    val_rows: &[usize],
    config: &LinearEvalConfig,
) -> Result<Box<dyn ProbeInputs + 'a>> {
    Ok(match config.protocol {
        ProbeProtocol::Fast => Box::new(Precomputed::new(
            encoder,
            train_images,
            test_images,
            pipeline,
            val_rows,
            config.backbone_bn == BackboneBn::Train,
            config.standardize,
        )?),
        ProbeProtocol::Paper => Box::new(Augmented::new(
            encoder,
            train_images,
            test_images,
            pipeline,
            val_rows,
            ProbeAugmentation {
                pad: config.pad,
                flip: config.flip,
                backbone_bn_train: config.backbone_bn == BackboneBn::Train,
            },
            config.standardize,
        )?),
    })
}

/// The probe at its best validation loss so far: what is tested in the end.
struct Best {
    val_loss: f64,
    /// 1-based; 0 before the first epoch.
    epoch: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Best {
    /// The probe's weights now, recorded with their validation loss and epoch.
    fn of(probe: &Linear, val_loss: f64, epoch: usize) -> Result<Best> {
        Ok(Best {
            val_loss,
            epoch,
            weight: probe.weight.value.to_vec()?,
            bias: probe.bias.value.to_vec()?,
        })
    }

    /// Puts these weights back into the probe.
    fn restore(&self, probe: &Linear) -> Result<()> {
        probe.weight.value.write(&self.weight)?;
        probe.bias.value.write(&self.bias)
    }
}

/// The share of rows of `logits` (`classes` wide) whose largest entry is the row's label.
fn accuracy(logits: &[f32], labels: &[u32], classes: usize) -> f64 {
    let correct = logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            let pred = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            pred as u32 == label
        })
        .count();
    correct as f64 / labels.len() as f64
}
