//! Linear evaluation on frozen features: the encoder's pooled features of every image are
//! computed once (whole images, batch norm in evaluation mode), then a linear classifier is
//! trained on them with the paper's optimiser and schedule: SGD lr 0.01, momentum 0.9, x0.1 at
//! epochs 20/40/60/80, up to 100 epochs, 80/20 train/validation split, early stopping when the
//! validation loss has not improved by 0.001 for 15 epochs. The classifier with the best
//! validation loss is scored on the test set. (This is the faster protocol for CPU devices: no
//! augmentation of the training images, since the features are computed once; and the features
//! are standardised first, see [`standardize`].)

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
use crate::ops::cross_entropy::{cross_entropy, cross_entropy_forward};
use crate::ops::linear::linear_forward;
use crate::optim::Sgd;
use crate::simclr::features::extract_features;
use crate::tensor::Tensor;

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

/// Features of every image of `data` on the CPU, `[N, dim]` row-major.
fn features_of(
    gpu: &Gpu,
    encoder: &dyn Encoder,
    data: &Dataset,
    pipeline: &ViewPipeline,
) -> Result<Vec<f32>> {
    let images = data.upload(gpu)?;
    let all: Vec<u32> = (0..data.len() as u32).collect();
    extract_features(encoder, &images, &all, pipeline, 512)?.to_vec()
}

/// Standardises every feature dimension with the training images' mean and standard
/// deviation (a parameter-free batch norm in front of the probe, as MAE's linear probe has).
/// Pooled features of a frozen network can have spreads of 0.01 around means of 0.3; without
/// this, SGD at lr 0.01 barely moves the probe within 100 epochs.
fn standardize(train: &mut [f32], test: &mut [f32], dim: usize) {
    let n = (train.len() / dim) as f64;
    for k in 0..dim {
        let column = || train.iter().skip(k).step_by(dim).map(|&x| x as f64);
        let mean = column().sum::<f64>() / n;
        let var = column().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var.sqrt() + 1e-6);
        for x in train.iter_mut().skip(k).step_by(dim) {
            *x = ((*x as f64 - mean) * inv) as f32;
        }
        for x in test.iter_mut().skip(k).step_by(dim) {
            *x = ((*x as f64 - mean) * inv) as f32;
        }
    }
}

/// The rows `rows` of a row-major `[_, dim]` matrix, uploaded as `[rows.len(), dim]`.
fn gather(gpu: &Gpu, x: &[f32], dim: usize, rows: &[usize]) -> Result<Tensor> {
    let v: Vec<f32> = rows
        .iter()
        .flat_map(|&r| x[r * dim..(r + 1) * dim].iter().copied())
        .collect();
    Tensor::from_slice(gpu, &[rows.len(), dim], &v)
}

fn labels_of(gpu: &Gpu, labels: &[u32], rows: &[usize]) -> Result<Tensor> {
    let v: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    Tensor::from_u32(gpu, &[v.len()], &v)
}

/// Trains and tests the linear probe on `encoder`'s frozen features. `pipeline` supplies the
/// normalisation the encoder was trained with.
pub fn linear_eval(
    gpu: &Gpu,
    encoder: &dyn Encoder,
    train: &Dataset,
    test: &Dataset,
    pipeline: &ViewPipeline,
    config: &LinearEvalConfig,
) -> Result<LinearEvalResult> {
    if !(config.val_fraction > 0.0 && config.val_fraction < 1.0) || config.epochs == 0 {
        return Err(Error::InvalidArgument(format!(
            "linear evaluation needs a validation fraction in (0, 1) and at least one epoch; got \
             {} and {}",
            config.val_fraction, config.epochs
        )));
    }
    let dim = encoder.feature_dim();
    let classes = train.classes();
    let mut train_f = features_of(gpu, encoder, train, pipeline)?;
    let mut test_f = features_of(gpu, encoder, test, pipeline)?;
    standardize(&mut train_f, &mut test_f, dim);

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    let n_val =
        ((train.len() as f64 * config.val_fraction).round() as usize).clamp(1, train.len() - 1);
    let (val_rows, fit_rows) = order.split_at(n_val);
    let mut fit_rows = fit_rows.to_vec();
    let val_x = gather(gpu, &train_f, dim, val_rows)?;
    let val_y = labels_of(gpu, train.labels(), val_rows)?;

    let probe = Linear::new(gpu, &mut rng, "probe", dim, classes)?;
    let mut sgd = Sgd::new(
        probe.params(),
        config.lr as f32,
        config.momentum as f32,
        0.0,
    );
    let mut best = (
        f64::INFINITY,
        0usize,
        probe.weight.value.to_vec()?,
        probe.bias.value.to_vec()?,
    );
    let mut epochs_run = 0;
    for epoch in 0..config.epochs {
        let drops = config.milestones.iter().filter(|&&m| epoch >= m).count();
        sgd.lr = (config.lr * 0.1f64.powi(drops as i32)) as f32;
        fit_rows.shuffle(&mut rng);
        for rows in fit_rows.chunks(config.batch) {
            let g = Graph::new(gpu);
            let x = g.input(gather(gpu, &train_f, dim, rows)?);
            let y = labels_of(gpu, train.labels(), rows)?;
            let loss = cross_entropy(&g, probe.forward(&g, x)?, &y)?;
            g.backward(loss)?;
            sgd.step()?;
        }
        epochs_run = epoch + 1;
        let logits = linear_forward(&val_x, &probe.weight.value, Some(&probe.bias.value))?;
        let val_loss = cross_entropy_forward(&logits, &val_y)?.item()? as f64;
        if !val_loss.is_finite() {
            return Err(Error::Diverged(format!(
                "the linear probe's validation loss is {val_loss} at epoch {epochs_run}"
            )));
        }
        if val_loss < best.0 - config.min_delta {
            best = (
                val_loss,
                epochs_run,
                probe.weight.value.to_vec()?,
                probe.bias.value.to_vec()?,
            );
        } else if epochs_run - best.1 >= config.patience {
            break;
        }
    }
    probe.weight.value.write(&best.2)?;
    probe.bias.value.write(&best.3)?;
    let all_test: Vec<usize> = (0..test.len()).collect();
    let logits = linear_forward(
        &gather(gpu, &test_f, dim, &all_test)?,
        &probe.weight.value,
        Some(&probe.bias.value),
    )?
    .to_vec()?;
    let correct = logits
        .chunks(classes)
        .zip(test.labels())
        .filter(|(row, &label)| {
            let pred = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            pred as u32 == label
        })
        .count();
    Ok(LinearEvalResult {
        test_accuracy: correct as f64 / test.len() as f64,
        best_val_loss: best.0,
        best_epoch: best.1,
        epochs_run,
        train_images: fit_rows.len(),
        val_images: val_rows.len(),
        test_images: test.len(),
    })
}
