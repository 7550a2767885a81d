//! The oracle of the label check: a supervised classifier (an encoder whose head has one output
//! per class) trained with the labels on whole images and on views of every strategy and crop
//! size of the check, in turn, so that it favours none of them. Its weights are cached in
//! `DIR/oracle/` with the settings that made them, and reused when the same settings come again.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{Normalization, ViewPipeline, ViewPlan};
use crate::autograd::Graph;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::write_atomically;
use crate::nn::{Encoder, ModelKind};
use crate::ops::affine_sample::PackedImages;
use crate::ops::cross_entropy::cross_entropy;
use crate::optim::{cosine_lr, Adam};
use crate::simclr::checkpoint::{Checkpoint, CHECKPOINT_FILE};
use crate::tensor::Tensor;

/// The folder of the cached oracle inside the check's output folder.
pub const ORACLE_DIR: &str = "oracle";
/// The oracle's settings and accuracy, for people, beside its weights.
pub const ORACLE_JSON: &str = "oracle.json";
const FORMAT: &str = "taming-oracle-1";

/// How the oracle is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OracleSpec {
    pub model: ModelKind,
    pub epochs: usize,
    pub batch: usize,
    /// Adam's learning rate, cosine-annealed to 0 over the epochs.
    pub lr: f64,
    /// Train on the first N training images only; None for all.
    pub train_limit: Option<usize>,
}

impl Default for OracleSpec {
    fn default() -> Self {
        OracleSpec {
            // Measured on the shipped sample (whole images only, 2 epochs): batch 128 at lr 0.003
            // reached 71 % on the test split, batch 64 at lr 0.01 78.5 %, batch 32 78.8 %.
            model: ModelKind::SmallCnn,
            epochs: 4,
            batch: 64,
            lr: 0.01,
            train_limit: None,
        }
    }
}

/// Everything the oracle's weights depend on; a cache is reused only when this is equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OracleKey {
    pub format: String,
    pub spec: OracleSpec,
    pub seed: u64,
    /// The data set folder as given (None: the shipped sample).
    pub data: Option<PathBuf>,
    /// FNV-1a of the training images and labels, so that changed files are noticed.
    pub fingerprint: String,
    pub train_images: usize,
    pub image_shape: [usize; 3],
    pub classes: usize,
    /// The view pipelines it trains on besides whole images, by description.
    pub views: Vec<String>,
    pub normalization: Normalization,
}

impl OracleKey {
    pub fn new(
        spec: &OracleSpec,
        seed: u64,
        data: Option<&Path>,
        train: &Dataset,
        views: &[ViewPipeline],
        normalization: &Normalization,
    ) -> OracleKey {
        OracleKey {
            format: FORMAT.into(),
            spec: spec.clone(),
            seed,
            data: data.map(Path::to_path_buf),
            fingerprint: format!("{:016x}", fingerprint(train)),
            train_images: train.len(),
            image_shape: train.shape(),
            classes: train.classes(),
            views: views.iter().map(describe).collect(),
            normalization: normalization.clone(),
        }
    }
}

/// What `oracle.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OracleRecord {
    pub key: OracleKey,
    pub train_seconds: f64,
    /// Mean cross-entropy over the last epoch's steps.
    pub final_loss: f64,
    pub adapter: String,
}

/// One line per view pipeline: what the oracle saw.
fn describe(p: &ViewPipeline) -> String {
    let c = &p.crop;
    format!(
        "{} crop {} alpha {} pad {} flip {} blur {:?}",
        c.method,
        c.crop,
        c.alpha,
        c.pad.name(),
        p.flip,
        p.blur_sigma
    )
}

/// FNV-1a (64 bits) over the pixels and labels.
fn fingerprint(ds: &Dataset) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let bytes = ds
        .pixels()
        .iter()
        .copied()
        .chain(ds.labels().iter().flat_map(|l| l.to_le_bytes()));
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The cached oracle's record in `dir`, if there is one; an error if it was made with other
/// settings than `key` (nothing is changed then).
pub fn check_cache(dir: &Path, key: &OracleKey) -> Result<Option<OracleRecord>> {
    let path = dir.join(ORACLE_JSON);
    if !path.is_file() || !dir.join(CHECKPOINT_FILE).is_file() {
        return Ok(None);
    }
    let bytes = crate::io::read_file(&path)?;
    let record: OracleRecord = serde_json::from_slice(&bytes).map_err(|e| Error::File {
        path: path.clone(),
        detail: format!("is not an oracle record: {e}"),
    })?;
    if record.key != *key {
        return Err(Error::File {
            path,
            detail: format!(
                "holds an oracle trained with other settings ({}); use another --out, or the \
                 same data and options as before",
                crate::json::differences(&record.key, key)
            ),
        });
    }
    Ok(Some(record))
}

/// A fresh oracle of the key's model: one output per class.
fn build(gpu: &Gpu, key: &OracleKey) -> Result<Box<dyn Encoder>> {
    let mut rng = ChaCha8Rng::seed_from_u64(key.seed);
    key.spec
        .model
        .build(gpu, &mut rng, key.image_shape[0], key.classes)
}

/// Loads the cached oracle of `record` from `dir`.
pub fn load(gpu: &Gpu, dir: &Path, record: &OracleRecord) -> Result<Box<dyn Encoder>> {
    let ck = Checkpoint::load(dir)?;
    let path = dir.join(CHECKPOINT_FILE);
    let oracle = build(gpu, &record.key)?;
    ck.restore_encoder(oracle.as_ref(), &path)?;
    Ok(oracle)
}

/// Writes the oracle's weights, then its record, into `dir`.
fn save(dir: &Path, oracle: &dyn Encoder, record: &OracleRecord) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::File {
        path: dir.to_path_buf(),
        detail: format!("cannot create the oracle's folder: {e}"),
    })?;
    let mut ck = Checkpoint::new();
    ck.add_encoder(oracle)?;
    ck.metadata.insert("format".into(), FORMAT.into());
    ck.save(dir)?;
    write_atomically(
        &dir.join(ORACLE_JSON),
        &crate::json::to_pretty_bytes(record)?,
    )
}

/// Trains the oracle of `key` on `train` (whole images and every pipeline of `views`, one kind
/// per step in turn) and caches it in `dir`.
pub fn train(
    gpu: &Gpu,
    key: &OracleKey,
    train: &Dataset,
    views: &[ViewPipeline],
    dir: &Path,
    progress: bool,
) -> Result<(Box<dyn Encoder>, OracleRecord)> {
    let spec = &key.spec;
    if train.len() < spec.batch {
        return Err(Error::InvalidArgument(format!(
            "the oracle's batch of {} is larger than the {} training images; lower \
             --oracle-batch",
            spec.batch,
            train.len()
        )));
    }
    let oracle = build(gpu, key)?;
    let mut adam = Adam::new(oracle.params(), spec.lr as f32);
    let images = train.upload(gpu)?;
    let whole = ViewPipeline::evaluation(key.normalization.clone());
    let [_, h, w] = train.shape();
    let mut rng = ChaCha8Rng::seed_from_u64(key.seed);
    rng.set_stream(1);
    let steps = train.len() / spec.batch;
    let kinds = views.len() + 1;
    let bar = match progress {
        true => ProgressBar::new((steps * spec.epochs) as u64),
        false => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("oracle [{bar:30}] {pos}/{len} steps {msg} ({elapsed})")
            .map_err(|e| Error::InvalidArgument(format!("progress bar: {e}")))?
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let mut final_loss = f64::NAN;
    for epoch in 0..spec.epochs {
        adam.lr = cosine_lr(spec.lr as f32, epoch, spec.epochs);
        let mut order: Vec<u32> = (0..train.len() as u32).collect();
        order.shuffle(&mut rng);
        let loss_sum = Tensor::zeros(gpu, &[1])?;
        for (step, indices) in order.chunks_exact(spec.batch).enumerate() {
            // Whole images (flipped at random, as the views are) and each view kind in turn.
            let x = match (epoch * steps + step) % kinds {
                0 => {
                    let plan = ViewPlan::padded_crops(&mut rng, indices, [w, h], 0, true);
                    whole.run_single(&images, &plan)?
                }
                k => {
                    let pipeline = &views[k - 1];
                    let plan = pipeline.plan(&mut rng, indices, [w, h])?;
                    pipeline.run(&images, &plan)?.0
                }
            };
            let labels: Vec<u32> = indices
                .iter()
                .map(|&i| train.labels()[i as usize])
                .collect();
            let y = Tensor::from_u32(gpu, &[labels.len()], &labels)?;
            let g = Graph::new(gpu);
            let logits = oracle.forward(&g, g.input(x), true)?;
            let loss = cross_entropy(&g, logits, &y)?;
            g.backward(loss)?;
            adam.step()?;
            crate::ops::elementwise::accumulate(&loss_sum, &g.value(loss))?;
            if (step + 1) % 10 == 0 {
                bar.set_message(format!("loss {:.3}", g.value(loss).item()?));
            }
            bar.inc(1);
        }
        final_loss = loss_sum.item()? as f64 / steps as f64;
        if !final_loss.is_finite() {
            return Err(Error::Diverged(format!(
                "the oracle's loss is {final_loss} in epoch {}; lower --oracle-lr",
                epoch + 1
            )));
        }
    }
    bar.finish_and_clear();
    let record = OracleRecord {
        key: key.clone(),
        train_seconds: start.elapsed().as_secs_f64(),
        final_loss,
        adapter: gpu.adapter().to_string(),
    };
    save(dir, oracle.as_ref(), &record)?;
    Ok((oracle, record))
}

/// The oracle's label for every view of a batch `[N, C, h, w]` (batch norm in evaluation mode).
pub fn predict(oracle: &dyn Encoder, views: Tensor) -> Result<Vec<u32>> {
    let g = Graph::no_grad(views.gpu());
    let logits = oracle.forward(&g, g.input(views), false)?;
    let logits = g.value(logits);
    let classes = logits.shape()[1];
    Ok(logits
        .to_vec()?
        .chunks(classes)
        .map(|row| {
            (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0) as u32
        })
        .collect())
}

/// The oracle's accuracy (percent) on whole images `images` with `labels`.
pub fn whole_image_accuracy(
    oracle: &dyn Encoder,
    images: &PackedImages,
    labels: &[u32],
    normalization: &Normalization,
    batch: usize,
) -> Result<f64> {
    let [n, _, h, w] = images.shape();
    let pipeline = ViewPipeline::evaluation(normalization.clone());
    let indices: Vec<u32> = (0..n as u32).collect();
    let mut correct = 0usize;
    for chunk in indices.chunks(batch.max(1)) {
        let plan = ViewPlan::whole_images(chunk, [w, h]);
        let predicted = predict(oracle, pipeline.run_single(images, &plan)?)?;
        correct += predicted
            .iter()
            .zip(chunk)
            .filter(|(p, &i)| **p == labels[i as usize])
            .count();
    }
    Ok(100.0 * correct as f64 / n.max(1) as f64)
}
