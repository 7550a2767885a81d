//! SimCLR pre-training with the paper's protocol: per batch, two views of every image from the
//! GPU view pipeline, each view batch through the encoder in its own forward pass (batch-norm
//! statistics per view batch), NT-Xent, backward, optimiser step; cosine learning rate per
//! epoch. The CPU reads the loss every `loss_every` steps; a checkpoint is written after every
//! epoch, and a non-finite loss stops the run before it can overwrite the last good one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{Normalization, ViewPipeline};
use crate::autograd::Graph;
use crate::crop::{degenerate_warning, ImageGuide};
use crate::data::{load_splits, Dataset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{create_output_folder, remove_stale_temporaries, write_atomically};
use crate::nn::{Encoder, ModelKind};
use crate::ops::affine_sample::PackedImages;
use crate::ops::elementwise::accumulate;
use crate::ops::ntxent::nt_xent;
use crate::optim::{cosine_lr, Adam, Optimizer, Sgd};
use crate::simclr::checkpoint::{Checkpoint, CHECKPOINT_FILE, SIDECAR_FILE};
use crate::simclr::config::{OptimizerKind, PretrainConfig};
use crate::simclr::features::all_image_features;
use crate::simclr::knn::knn_accuracy;
use crate::simclr::saliency::{refresh_guides, RefreshRecord};
use crate::simclr::stn::{LearntPlacement, PlacementRecord, PlacementTally};
use crate::tensor::{Precision, Tensor};

/// Identifies the checkpoint layout written here.
const FORMAT: &str = "taming-pretrain-1";

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean NT-Xent loss over the epoch's steps.
    pub loss: f64,
    pub lr: f64,
    pub knn_accuracy: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
    /// A guided method's refresh of its guides before this epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshRecord>,
    /// The learnt placement's epoch (stn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementRecord>,
}

/// How to run, beyond what is trained (not stored in the checkpoint).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from the checkpoint in the output folder.
    pub resume: bool,
    /// Draw a progress bar.
    pub progress: bool,
    /// Stop (with a checkpoint) once this many epochs are done in total.
    pub stop_after: Option<usize>,
}

/// The generator of epoch `epoch`: one seed, one stream per epoch (stream 0 initialises the
/// model), so a resumed run draws exactly what an uninterrupted one would.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64 + 1);
    rng
}

/// The weights a run of `seed` starts from; with no training, the random-encoder baseline of
/// that seed.
pub fn initial_encoder(
    gpu: &Gpu,
    model: ModelKind,
    seed: u64,
    channels: usize,
    embedding: usize,
) -> Result<Box<dyn Encoder>> {
    model.build(
        gpu,
        &mut ChaCha8Rng::seed_from_u64(seed),
        channels,
        embedding,
    )
}

/// The encoder and optimiser of a configuration, freshly initialised.
fn build(
    gpu: &Gpu,
    config: &PretrainConfig,
    channels: usize,
) -> Result<(Box<dyn Encoder>, Optimizer)> {
    let encoder = initial_encoder(gpu, config.model, config.seed, channels, config.embedding)?;
    let lr = config.lr as f32;
    let optimizer = match config.optimizer {
        OptimizerKind::Adam => {
            let mut adam = Adam::new(encoder.params(), lr);
            adam.weight_decay = config.weight_decay as f32;
            Optimizer::Adam(adam)
        }
        OptimizerKind::Sgd => Optimizer::Sgd(Sgd::new(
            encoder.params(),
            lr,
            config.momentum as f32,
            config.weight_decay as f32,
        )),
    };
    Ok((encoder, optimizer))
}

/// The checkpoint entry of a guided method's per-image guides: `[images, ImageGuide::WORDS]`.
const GUIDES: &str = "guides";

/// Writes the checkpoint after `history.len()` epochs, then its JSON sidecar.
#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    gpu: &Gpu,
    dir: &Path,
    config: &PretrainConfig,
    normalization: &Normalization,
    channels: usize,
    encoder: &dyn Encoder,
    optimizer: &Optimizer,
    history: &[EpochRecord],
    guides: Option<&[ImageGuide]>,
    learnt: Option<&LearntPlacement>,
) -> Result<PathBuf> {
    let mut ck = Checkpoint::new();
    ck.add_encoder(encoder)?;
    if let Some(learnt) = learnt {
        learnt.save_into(&mut ck)?;
    }
    if let Some(guides) = guides {
        let values = guides.iter().flat_map(ImageGuide::words).collect();
        ck.add_values(GUIDES, &[guides.len(), ImageGuide::WORDS], values);
    }
    let (state, counters) = optimizer.state();
    for (name, t) in &state {
        ck.add(format!("optim/{name}"), t)?;
    }
    let m = &mut ck.metadata;
    m.insert("format".into(), FORMAT.into());
    m.insert("config".into(), crate::json::to_line(config)?);
    m.insert("channels".into(), channels.to_string());
    m.insert("normalization".into(), crate::json::to_line(normalization)?);
    m.insert("epochs_done".into(), history.len().to_string());
    m.insert("history".into(), crate::json::to_line(&history)?);
    m.insert("optimizer_steps".into(), crate::json::to_line(&counters)?);
    m.insert(
        "rng".into(),
        format!(
            "ChaCha8 seed {} stream {} position 0 (the next epoch's generator)",
            config.seed,
            history.len() + 1
        ),
    );
    m.insert("adapter".into(), gpu.adapter().name.clone());
    let path = ck.save(dir)?;
    let sidecar = serde_json::json!({
        "format": FORMAT,
        "checkpoint": CHECKPOINT_FILE,
        "config": config,
        "epochs_done": history.len(),
        "history": history,
        "adapter": gpu.adapter().name,
    });
    write_atomically(
        &dir.join(SIDECAR_FILE),
        &crate::json::to_pretty_bytes(&sidecar)?,
    )?;
    Ok(path)
}

fn parse<T: serde::de::DeserializeOwned>(ck: &Checkpoint, key: &str, path: &Path) -> Result<T> {
    serde_json::from_str(ck.meta(key, path)?).map_err(|e| Error::File {
        path: path.to_path_buf(),
        detail: format!("entry {key:?} is not valid: {e}"),
    })
}

/// A trained encoder read back from `dir`, with its configuration.
pub struct Trained {
    pub config: PretrainConfig,
    pub encoder: Box<dyn Encoder>,
    pub history: Vec<EpochRecord>,
    /// The per-channel statistics the encoder was trained with.
    pub normalization: Normalization,
}

/// The checkpoint in `dir`, its path and its configuration, after checking its format.
fn open_checkpoint(dir: &Path) -> Result<(Checkpoint, PathBuf, PretrainConfig)> {
    let ck = Checkpoint::load(dir)?;
    let path = dir.join(CHECKPOINT_FILE);
    if ck.meta("format", &path)? != FORMAT {
        return Err(Error::File {
            path,
            detail: format!("is not a {FORMAT} checkpoint"),
        });
    }
    let config = parse(&ck, "config", &path)?;
    Ok((ck, path, config))
}

/// The configuration the checkpoint in `dir` was trained with (nothing is built).
pub fn trained_config(dir: &Path) -> Result<PretrainConfig> {
    Ok(open_checkpoint(dir)?.2)
}

/// Loads the encoder (parameters and batch-norm statistics) of the checkpoint in `dir`.
pub fn load_trained(gpu: &Gpu, dir: &Path) -> Result<Trained> {
    let (ck, path, config) = open_checkpoint(dir)?;
    let channels: usize = parse(&ck, "channels", &path)?;
    let history: Vec<EpochRecord> = parse(&ck, "history", &path)?;
    let normalization: Normalization = parse(&ck, "normalization", &path)?;
    ck.check_finite(&path)?;
    let (encoder, _) = build(gpu, &config, channels)?;
    ck.restore_encoder(encoder.as_ref(), &path)?;
    Ok(Trained {
        config,
        encoder,
        history,
        normalization,
    })
}

/// The localiser of the learnt-placement run checkpointed in `dir`, for `image_wh` images.
pub fn load_placement(gpu: &Gpu, dir: &Path, image_wh: [usize; 2]) -> Result<LearntPlacement> {
    let (ck, path, config) = open_checkpoint(dir)?;
    if !config.method.is_learnt() {
        return Err(Error::File {
            path,
            detail: format!("is a {} run, which has no localiser", config.method),
        });
    }
    let channels: usize = parse(&ck, "channels", &path)?;
    let mut learnt = LearntPlacement::new(gpu, &config, channels, image_wh)?;
    learnt.restore_from(gpu, &ck, &path)?;
    Ok(learnt)
}

/// The guides stored in a checkpoint, if it has them; `images` is how many the run trains on.
fn checkpoint_guides(
    ck: &Checkpoint,
    path: &Path,
    images: usize,
) -> Result<Option<Vec<ImageGuide>>> {
    let Some((shape, values)) = ck.values(GUIDES) else {
        return Ok(None);
    };
    let words = ImageGuide::WORDS;
    if shape != [images, words] || values.len() != images * words {
        return Err(Error::File {
            path: path.to_path_buf(),
            detail: format!(
                "its crop guides have shape {shape:?}, the run trains on {images} images; \
                 resume with the same data and --train-limit"
            ),
        });
    }
    Ok(Some(
        values
            .chunks_exact(words)
            .map(ImageGuide::from_words)
            .collect(),
    ))
}

/// What a resumed run continues from.
struct Resumed {
    history: Vec<EpochRecord>,
    guides: Option<Vec<ImageGuide>>,
}

/// Restores the encoder, optimiser and crop guides of the run checkpointed in `out`, which
/// must have been made with `config` on `images` training images.
fn resume(
    gpu: &Gpu,
    out: &Path,
    config: &PretrainConfig,
    encoder: &dyn Encoder,
    optimizer: &mut Optimizer,
    learnt: Option<&mut LearntPlacement>,
    images: usize,
) -> Result<Resumed> {
    let ck_path = out.join(CHECKPOINT_FILE);
    let ck = Checkpoint::load(out)?;
    let saved: PretrainConfig = parse(&ck, "config", &ck_path)?;
    let diff = crate::json::differences_as(&saved, config, "in the checkpoint", "now");
    if !diff.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "--resume: the checkpoint in {} was made with other settings ({}); resume with \
             the same settings or choose another --out",
            out.display(),
            diff.join("; ")
        )));
    }
    ck.restore_encoder(encoder, &ck_path)?;
    let counters: Vec<u32> = parse(&ck, "optimizer_steps", &ck_path)?;
    let find = |name: &str| {
        ck.tensor(gpu, &format!("optim/{name}"))
            .and_then(|r| r.ok())
    };
    optimizer.load_state(&find, &counters)?;
    if let Some(learnt) = learnt {
        learnt.restore_from(gpu, &ck, &ck_path)?;
    }
    let history: Vec<EpochRecord> = parse(&ck, "history", &ck_path)?;
    let guides = checkpoint_guides(&ck, &ck_path, images)?;
    println!(
        "resuming {} after epoch {} of {}",
        out.display(),
        history.len(),
        config.epochs
    );
    Ok(Resumed { history, guides })
}

/// Pre-trains as configured, writing checkpoints into `out`; returns every epoch's record
/// (those of a resumed run's earlier epochs included).
pub fn pretrain(
    gpu: &Gpu,
    config: &PretrainConfig,
    out: &Path,
    options: &RunOptions,
) -> Result<Vec<EpochRecord>> {
    config.validate()?;
    config.precision.check(gpu)?;
    if options.stop_after == Some(0) {
        return Err(Error::InvalidArgument(
            "--stop-after 0 would stop before the first epoch: give at least 1, or leave it out \
             to train all --epochs"
                .into(),
        ));
    }
    let ck_path = out.join(CHECKPOINT_FILE);
    if ck_path.is_file() && !options.resume {
        return Err(Error::File {
            path: ck_path,
            detail: "a run already checkpointed here; pass --resume to continue it, or choose \
                     another --out"
                .into(),
        });
    }
    let (train, test) = load_splits(config.data.as_deref(), config.train_limit)?;
    let spec = config.check_data(&train)?;
    let [channels, h, w] = train.shape();
    if let Some(warning) = degenerate_warning(&spec, w, h)? {
        eprintln!("warning: {warning}");
    }
    // Only now that the inputs are known to be good: a refused run leaves no folder behind.
    create_output_folder(out)?;
    remove_stale_temporaries(out, &[CHECKPOINT_FILE, SIDECAR_FILE]);
    let (encoder, mut optimizer) = build(gpu, config, channels)?;
    let mut learnt = match config.method.is_learnt() {
        true => Some(LearntPlacement::new(gpu, config, channels, [w, h])?),
        false => None,
    };
    let mut history: Vec<EpochRecord> = Vec::new();
    let mut guides: Option<Vec<ImageGuide>> = None;
    if options.resume && ck_path.is_file() {
        let resumed = resume(
            gpu,
            out,
            config,
            encoder.as_ref(),
            &mut optimizer,
            learnt.as_mut(),
            train.len(),
        )?;
        (history, guides) = (resumed.history, resumed.guides);
    }

    let normalization = match &config.normalization {
        Some(n) => n.clone(),
        None => Normalization::of_dataset(&train)?,
    };
    let pipeline = ViewPipeline::paper(spec, normalization);
    let train_images = train.upload(gpu)?;
    let test_images: Option<PackedImages> = match config.knn_every {
        0 => None,
        _ => Some(test.upload(gpu)?),
    };
    let steps = train.len() / config.batch;
    let last = options
        .stop_after
        .unwrap_or(config.epochs)
        .min(config.epochs);
    let run = EpochContext {
        gpu,
        config,
        out,
        pipeline: &pipeline,
        encoder: encoder.as_ref(),
        images: &train_images,
        image_count: train.len(),
        steps,
    };
    for epoch in history.len()..last {
        let refresh = match config.refreshes_before(epoch) {
            true => {
                let (fresh, record) = refresh_guides(
                    encoder.as_ref(),
                    &train_images,
                    &pipeline,
                    config.guide.threshold,
                    epoch + 1,
                )?;
                guides = Some(fresh);
                Some(record)
            }
            false => None,
        };
        let lr = cosine_lr(config.lr as f32, epoch, config.epochs);
        optimizer.set_lr(lr);
        let bar = epoch_bar(options.progress, steps, epoch, config.epochs)?;
        let start = Instant::now();
        let (loss, placement) = run.train_epoch(
            &mut optimizer,
            epoch,
            lr,
            history.len(),
            guides.as_deref(),
            learnt.as_mut(),
            &bar,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let knn = match &test_images {
            Some(test_images)
                if (epoch + 1) % config.knn_every == 0 || epoch + 1 == config.epochs =>
            {
                Some(run.knn_monitor(&train, &test, test_images)?)
            }
            _ => None,
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            loss,
            lr: lr as f64,
            knn_accuracy: knn,
            seconds,
            images_per_second: (steps * config.batch) as f64 / seconds,
            refresh,
            placement,
        };
        println!(
            "epoch {:>3}/{}  loss {:.4}  lr {:.5}  {:.1} img/s{}{}{}",
            record.epoch,
            config.epochs,
            record.loss,
            record.lr,
            record.images_per_second,
            match record.knn_accuracy {
                Some(a) => format!("  kNN accuracy {:.2} %", 100.0 * a),
                None => String::new(),
            },
            match &record.refresh {
                Some(r) => format!(
                    "  guides refreshed ({:.1} s): centroid {:.1} % of the side off centre, \
                     hot box {:.0} % of the image",
                    r.seconds,
                    100.0 * r.centroid_offset,
                    100.0 * r.hot_box_area
                ),
                None => String::new(),
            },
            match &record.placement {
                Some(p) => format!(
                    "  placement: offset {:.1} %, spread {:.1} % of the side, {:.1} % outside, \
                     IoU {:.2}{}",
                    100.0 * p.mean_offset,
                    100.0 * p.mean_spread,
                    100.0 * p.outside_share,
                    p.overlap,
                    match p.localiser_loss {
                        Some(l) => format!(", localiser loss {l:.4}"),
                        None => " (warm-up)".into(),
                    }
                ),
                None => String::new(),
            }
        );
        history.push(record);
        save_checkpoint(
            gpu,
            out,
            config,
            &pipeline.normalization,
            channels,
            encoder.as_ref(),
            &optimizer,
            &history,
            guides.as_deref(),
            learnt.as_ref(),
        )?;
    }
    Ok(history)
}

/// What every epoch of a run reads.
struct EpochContext<'a> {
    gpu: &'a Gpu,
    config: &'a PretrainConfig,
    out: &'a Path,
    pipeline: &'a ViewPipeline,
    encoder: &'a dyn Encoder,
    images: &'a PackedImages,
    image_count: usize,
    steps: usize,
}

impl EpochContext<'_> {
    /// One epoch of SimCLR steps in the epoch's own seeded order; returns the mean loss. The
    /// loss is read back every `loss_every` steps (and last), and a non-finite one stops the
    /// run with `done` epochs checkpointed.
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &self,
        optimizer: &mut Optimizer,
        epoch: usize,
        lr: f32,
        done: usize,
        guides: Option<&[ImageGuide]>,
        learnt: Option<&mut LearntPlacement>,
        bar: &ProgressBar,
    ) -> Result<(f64, Option<PlacementRecord>)> {
        let (config, steps) = (self.config, self.steps);
        let mut rng = epoch_rng(config.seed, epoch);
        let mut order: Vec<u32> = (0..self.image_count as u32).collect();
        order.shuffle(&mut rng);
        let start = Instant::now();
        let loss_sum = Tensor::zeros(self.gpu, &[1])?;
        let mut learnt = learnt.map(|l| (l, PlacementTally::default()));
        for step in 0..steps {
            let indices = &order[step * config.batch..(step + 1) * config.batch];
            let loss = match &mut learnt {
                Some((learnt, tally)) => learnt.train_step(
                    self.encoder,
                    optimizer,
                    self.pipeline,
                    self.images,
                    &mut rng,
                    indices,
                    epoch,
                    step,
                    config.temperature as f32,
                    tally,
                )?,
                None => self.train_step(optimizer, &mut rng, indices, guides)?,
            };
            accumulate(&loss_sum, &loss)?;
            if (step + 1) % config.loss_every == 0 || step + 1 == steps {
                let value = loss.item()?;
                check_finite(value as f64, epoch, step, done, self.out)?;
                let rate = ((step + 1) * config.batch) as f64 / start.elapsed().as_secs_f64();
                bar.set_message(format!("loss {value:.4} lr {lr:.5} {rate:.0} img/s"));
            }
            bar.set_position(step as u64 + 1);
        }
        let loss = loss_sum.item()? as f64 / steps as f64;
        check_finite(loss, epoch, steps - 1, done, self.out)?;
        let placement = match learnt {
            Some((_, tally)) => tally.record()?,
            None => None,
        };
        Ok((loss, placement))
    }

    /// One step: two views of every image of the batch, each view batch through the encoder in
    /// its own forward pass, NT-Xent, backward, the optimiser's update; returns the loss.
    fn train_step(
        &self,
        optimizer: &mut Optimizer,
        rng: &mut ChaCha8Rng,
        indices: &[u32],
        guides: Option<&[ImageGuide]>,
    ) -> Result<Tensor> {
        simclr_step(
            self.encoder,
            optimizer,
            self.pipeline,
            self.images,
            rng,
            indices,
            guides,
            self.config.temperature as f32,
            self.config.precision,
        )
    }

    /// The kNN monitor: test images classified by their nearest training images' features.
    fn knn_monitor(
        &self,
        train: &Dataset,
        test: &Dataset,
        test_images: &PackedImages,
    ) -> Result<f64> {
        let features = |images: &PackedImages| {
            all_image_features(self.encoder, images, self.pipeline, 512, false)
        };
        let (bank, queries) = (features(self.images)?, features(test_images)?);
        knn_accuracy(
            &bank,
            train.labels(),
            &queries,
            test.labels(),
            train.classes(),
            self.config.knn_k,
        )
    }
}

/// One SimCLR step on the resident `images`: two views of every image of `indices` (guided by
/// `guides` where given), each view batch through the encoder in its own forward pass (its
/// convolutions' operands stored in `precision`), NT-Xent at `temperature`, backward, the
/// optimiser's update; returns the loss, left on the device.
#[allow(clippy::too_many_arguments)]
pub fn simclr_step<R: Rng>(
    encoder: &dyn Encoder,
    optimizer: &mut Optimizer,
    pipeline: &ViewPipeline,
    images: &PackedImages,
    rng: &mut R,
    indices: &[u32],
    guides: Option<&[ImageGuide]>,
    temperature: f32,
    precision: Precision,
) -> Result<Tensor> {
    let [_, _, h, w] = images.shape();
    let plan = pipeline.plan_guided(rng, indices, [w, h], guides)?;
    let (v1, v2) = pipeline.run(images, &plan)?;
    let g = Graph::new(images.gpu()).with_precision(precision);
    let z1 = encoder.forward(&g, g.input(v1), true)?;
    let z2 = encoder.forward(&g, g.input(v2), true)?;
    let loss = nt_xent(&g, z1, z2, temperature)?;
    g.backward(loss)?;
    optimizer.step()?;
    Ok(g.value(loss))
}

/// The progress bar of one epoch (hidden without `progress`).
fn epoch_bar(progress: bool, steps: usize, epoch: usize, epochs: usize) -> Result<ProgressBar> {
    let bar = match progress {
        true => ProgressBar::new(steps as u64),
        false => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})")
            .map_err(|e| Error::InvalidArgument(format!("progress bar: {e}")))?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    Ok(bar)
}

/// Stops a run whose loss is not a number, naming where and what is kept.
fn check_finite(value: f64, epoch: usize, step: usize, done: usize, out: &Path) -> Result<()> {
    if value.is_finite() {
        return Ok(());
    }
    let kept = match done {
        0 => "no checkpoint was written yet".to_string(),
        n => format!("the checkpoint of epoch {n} in {} is kept", out.display()),
    };
    Err(Error::Diverged(format!(
        "the loss is {value} at epoch {}, step {}; {kept}. Lower --lr or change the seed",
        epoch + 1,
        step + 1
    )))
}
