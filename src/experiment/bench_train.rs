//! `taming bench-train`: SimCLR steps of a sweep's model and batch on random u8 images (no data
//! needed), timed per crop size, and from them the projected wall time of the whole sweep on
//! this adapter. The steps are the ones `taming pretrain` takes ([`simclr_step`],
//! [`LearntPlacement::train_step`]); only the images are random, which no kernel's cost depends
//! on.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{Normalization, ViewPipeline};
use crate::autograd::Graph;
use crate::crop::Method;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::experiment::preset::SweepSpec;
use crate::experiment::run::RunSpec;
use crate::gpu::Gpu;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;
use crate::optim::{Adam, Optimizer};
use crate::simclr::stn::{LearntPlacement, PlacementTally};
use crate::simclr::{simclr_step, PretrainConfig, ProbeProtocol};
use crate::tensor::Tensor;

/// What to measure: the sweep's model, batch and crop sizes, on `images` random u8 images of
/// `image_shape` resident on the device.
#[derive(Clone, Debug)]
pub struct BenchTrainSpec {
    /// Timed steps per crop size, after one untimed warm-up step.
    pub steps: usize,
    /// Random images resident on the device (the steps cycle through them).
    pub images: usize,
    /// (channels, height, width) of every image: CIFAR-10's [3, 32, 32] by default.
    pub image_shape: [usize; 3],
    /// Time the learnt placement's step too (where the sweep has `stn` runs).
    pub learnt: bool,
    pub seed: u64,
}

impl Default for BenchTrainSpec {
    fn default() -> Self {
        BenchTrainSpec {
            steps: 5,
            images: 4096,
            image_shape: [3, 32, 32],
            learnt: true,
            seed: 0,
        }
    }
}

/// The measurements at one crop size (1.0: whole images, the label check oracle's and the
/// probe's input size).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizeTiming {
    pub crop: f64,
    /// [width, height] of a view.
    pub view: [usize; 2],
    /// One SimCLR step (GCC views, both view batches forward and backward, NT-Xent, Adam).
    pub step_ms: f64,
    pub images_per_second: f64,
    /// Flops of the step's convolutions and products (forward and backward), per step.
    pub gflop_per_step: f64,
    pub gflops: f64,
    /// The encoder's forward pass alone (no tape), batch norm in evaluation mode: the cost of
    /// extracting features, refreshing guides and labelling views.
    pub forward_images_per_second: f64,
    /// The learnt placement's step after its warm-up, with the sweep's stn settings.
    pub learnt_step_ms: Option<f64>,
}

/// Everything `bench-train` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchTrainReport {
    pub adapter: String,
    pub model: String,
    pub batch: usize,
    pub image_shape: [usize; 3],
    pub steps: usize,
    pub sizes: Vec<SizeTiming>,
    /// The last timed step's loss (finite, or the bench fails).
    pub loss: f64,
}

impl BenchTrainReport {
    /// The timing of crop size `crop`.
    pub fn at(&self, crop: f64) -> Option<&SizeTiming> {
        self.sizes.iter().find(|s| (s.crop - crop).abs() < 1e-9)
    }
}

/// Checks the spec against the sweep before anything runs.
pub fn validate(spec: &BenchTrainSpec, sweep: &SweepSpec) -> Result<()> {
    let bad = |what: String| Err(Error::InvalidArgument(what));
    if spec.steps == 0 {
        return bad("--steps must be at least 1".into());
    }
    if sweep.batch < 2 {
        return bad(format!(
            "--batch {} is too small: NT-Xent needs at least 2 images per step",
            sweep.batch
        ));
    }
    if spec.images < sweep.batch {
        return bad(format!(
            "--images {} must be at least the batch of {}",
            spec.images, sweep.batch
        ));
    }
    let [c, h, w] = spec.image_shape;
    if c == 0 || h == 0 || w == 0 {
        return bad(format!(
            "image shape {:?} has an empty side",
            spec.image_shape
        ));
    }
    let bytes = spec.images * c * h * w;
    if bytes > 1 << 31 {
        return bad(format!(
            "{} random images of {:?} are {} MiB; lower --images",
            spec.images,
            spec.image_shape,
            bytes >> 20
        ));
    }
    sweep.validate()
}

/// Times the sweep's SimCLR step at every crop size of the sweep and at 1.0.
pub fn bench_train(
    gpu: &Gpu,
    sweep: &SweepSpec,
    spec: &BenchTrainSpec,
) -> Result<BenchTrainReport> {
    validate(spec, sweep)?;
    sweep.precision.check(gpu)?;
    let data = random_images(spec)?;
    let images = data.upload(gpu)?;
    let normalization = Normalization::of_dataset(&data)?;
    let [channels, h, w] = spec.image_shape;
    let learnt = spec.learnt && sweep.methods.contains(&Method::Stn);
    let mut sizes = Vec::new();
    let mut loss = f64::NAN;
    // The grid's crop sizes, then whole images (the probe's and the oracle's input) if the
    // grid lacks them.
    let mut measured: Vec<(f64, f64, bool)> = sweep
        .crops
        .iter()
        .zip(&sweep.alphas)
        .map(|(&c, &a)| (c, a, true))
        .collect();
    if !sweep.crops.contains(&1.0) {
        measured.push((1.0, 1.0, false));
    }
    for (crop, alpha, in_grid) in measured {
        let run = |method| RunSpec {
            method: Some(method),
            crop: Some(crop),
            alpha: Some(alpha),
            seed: spec.seed,
        };
        let config = sweep
            .pretrain_config(&run(Method::Gcc))
            .expect("a GCC run has a configuration");
        let pipeline = ViewPipeline::paper(config.crop_spec()?, normalization.clone());
        let view = config.crop_spec()?.view_size(w, h)?;
        let (step_ms, gflop_per_step, last_loss) =
            time_simclr_steps(gpu, &config, &pipeline, &images, spec)?;
        loss = last_loss;
        let learnt_step_ms = match learnt && in_grid {
            true => {
                let mut config = sweep
                    .pretrain_config(&run(Method::Stn))
                    .expect("an stn run has a configuration");
                config.seed = spec.seed;
                Some(time_learnt_steps(gpu, &config, &pipeline, &images, spec)?)
            }
            false => None,
        };
        let forward = forward_rate(gpu, &config, channels, view, spec)?;
        sizes.push(SizeTiming {
            crop,
            view,
            step_ms,
            images_per_second: sweep.batch as f64 / (step_ms / 1e3),
            gflop_per_step,
            gflops: gflop_per_step / (step_ms / 1e3),
            forward_images_per_second: forward,
            learnt_step_ms,
        });
    }
    Ok(BenchTrainReport {
        adapter: gpu.adapter().to_string(),
        model: sweep.model.name().to_string(),
        batch: sweep.batch,
        image_shape: spec.image_shape,
        steps: spec.steps,
        sizes,
        loss,
    })
}

/// Uniformly random u8 images of the spec's shape, all labelled 0.
fn random_images(spec: &BenchTrainSpec) -> Result<Dataset> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let size: usize = spec.image_shape.iter().product();
    let mut pixels = vec![0u8; spec.images * size];
    rng.fill(&mut pixels[..]);
    Dataset::new(
        pixels,
        vec![0; spec.images],
        spec.image_shape,
        vec!["random".into()],
        std::path::Path::new("random images"),
    )
}

/// The images of step `k`: `batch` consecutive ones of the resident set, wrapping around.
fn step_indices(k: usize, batch: usize, images: usize) -> Vec<u32> {
    (0..batch)
        .map(|i| ((k * batch + i) % images) as u32)
        .collect()
}

fn encoder_and_optimizer(
    gpu: &Gpu,
    config: &PretrainConfig,
    channels: usize,
) -> Result<(Box<dyn Encoder>, Optimizer)> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let encoder = config
        .model
        .build(gpu, &mut rng, channels, config.embedding)?;
    let optimizer = Optimizer::Adam(Adam::new(encoder.params(), config.lr as f32));
    Ok((encoder, optimizer))
}

/// Mean milliseconds per timed step of `step(k)`, after one untimed warm-up step (which
/// compiles the kernels); the device is drained before and after the timed steps. Also
/// returns the flops counted per timed step and the last step's loss.
fn time_steps(
    gpu: &Gpu,
    steps: usize,
    mut step: impl FnMut(usize) -> Result<Tensor>,
) -> Result<(f64, f64, f64)> {
    step(0)?.item()?;
    gpu.wait()?;
    let flops_before = gpu.flops();
    let start = Instant::now();
    let mut last = None;
    for k in 1..=steps {
        last = Some(step(k)?);
    }
    let loss = last.expect("at least one step").item()? as f64;
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    let gflop = (gpu.flops() - flops_before) / steps as f64 / 1e9;
    if !loss.is_finite() {
        return Err(Error::Diverged(format!(
            "the benchmark's loss is {loss} after {steps} steps"
        )));
    }
    Ok((ms, gflop, loss))
}

fn time_simclr_steps(
    gpu: &Gpu,
    config: &PretrainConfig,
    pipeline: &ViewPipeline,
    images: &PackedImages,
    spec: &BenchTrainSpec,
) -> Result<(f64, f64, f64)> {
    let (encoder, mut optimizer) = encoder_and_optimizer(gpu, config, spec.image_shape[0])?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    time_steps(gpu, spec.steps, |k| {
        let indices = step_indices(k, config.batch, spec.images);
        let temperature = config.temperature as f32;
        let encoder = encoder.as_ref();
        simclr_step(
            encoder,
            &mut optimizer,
            pipeline,
            images,
            &mut rng,
            &indices,
            None,
            temperature,
            config.precision,
        )
    })
}

/// The learnt placement's step past its warm-up (the localiser places the views, and learns
/// on the sweep's `every`-th steps), in milliseconds.
fn time_learnt_steps(
    gpu: &Gpu,
    config: &PretrainConfig,
    pipeline: &ViewPipeline,
    images: &PackedImages,
    spec: &BenchTrainSpec,
) -> Result<f64> {
    let [channels, h, w] = spec.image_shape;
    let (encoder, mut optimizer) = encoder_and_optimizer(gpu, config, channels)?;
    let mut learnt = LearntPlacement::new(gpu, config, channels, [w, h])?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut tally = PlacementTally::default();
    let epoch = config.epochs.saturating_sub(1);
    let (ms, _, _) = time_steps(gpu, spec.steps, |k| {
        let indices = step_indices(k, config.batch, spec.images);
        learnt.train_step(
            encoder.as_ref(),
            &mut optimizer,
            pipeline,
            images,
            &mut rng,
            &indices,
            epoch,
            k,
            config.temperature as f32,
            &mut tally,
        )
    })?;
    Ok(ms)
}

/// Images per second through the encoder's forward pass alone at `view` size.
fn forward_rate(
    gpu: &Gpu,
    config: &PretrainConfig,
    channels: usize,
    view: [usize; 2],
    spec: &BenchTrainSpec,
) -> Result<f64> {
    let (encoder, _) = encoder_and_optimizer(gpu, config, channels)?;
    let shape = [config.batch, channels, view[1], view[0]];
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let x = Tensor::from_slice(gpu, &shape, &values)?;
    let forward = || -> Result<Tensor> {
        let g = Graph::no_grad(gpu);
        let f = encoder.features(&g, g.input(x.clone()), false)?;
        Ok(g.value(f))
    };
    forward()?.to_vec()?;
    let start = Instant::now();
    for _ in 0..spec.steps {
        forward()?;
    }
    gpu.wait()?;
    Ok((spec.steps * config.batch) as f64 / start.elapsed().as_secs_f64())
}

/// One part of a projected sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectedPart {
    pub what: String,
    pub runs: usize,
    pub seconds: f64,
}

/// The projected wall time of a sweep on the measured adapter, part by part, and what the
/// projection leaves out or estimates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub runs: usize,
    pub parts: Vec<ProjectedPart>,
    pub total_seconds: f64,
    pub caveats: Vec<String>,
}

/// The sweep's wall time from `report`, for `train_images` training and `test_images` test
/// images (CIFAR-10: 50,000 and 10,000; the sweep's train_limit applies).
pub fn project(
    report: &BenchTrainReport,
    sweep: &SweepSpec,
    train_images: usize,
    test_images: usize,
) -> Result<Projection> {
    let train_images = sweep
        .train_limit
        .map_or(train_images, |l| l.min(train_images));
    let steps = (train_images / sweep.batch) as f64;
    let timing = |crop: f64| {
        report.at(crop).ok_or_else(|| {
            Error::InvalidArgument(format!("the benchmark did not measure crop size {crop}"))
        })
    };
    let whole = timing(1.0)?;
    let mut caveats = Vec::new();
    let (mut plain, mut learnt, mut refresh, mut probes) = (0.0, 0.0, 0.0, 0.0);
    let (mut plain_runs, mut learnt_runs, mut guided_runs) = (0, 0, 0);
    let runs = sweep.runs();
    let forward_seconds = |images: usize, rate: f64| images as f64 / rate;
    for run in &runs {
        probes += probe_seconds(sweep, train_images, test_images, whole);
        let Some(config) = sweep.pretrain_config(run) else {
            continue;
        };
        let t = timing(config.crop)?;
        let epoch = steps * t.step_ms / 1e3;
        if config.method.is_learnt() {
            let warmup = config.stn.warmup(config.epochs).min(config.epochs);
            let learnt_ms = match t.learnt_step_ms {
                Some(ms) => ms,
                None => {
                    let caveat = "the learnt placement's step was not measured (--no-learnt): its \
                                  runs are projected at the plain step's cost, which is too low";
                    // Once, not once per learnt run.
                    if !caveats.iter().any(|c| c == caveat) {
                        caveats.push(caveat.into());
                    }
                    t.step_ms
                }
            };
            let after = (config.epochs - warmup) as f64 * steps * learnt_ms / 1e3;
            learnt += warmup as f64 * epoch + after;
            learnt_runs += 1;
            continue;
        }
        plain += config.epochs as f64 * epoch;
        plain_runs += 1;
        if config.method.is_guided() {
            guided_runs += 1;
            let refreshes = (0..config.epochs)
                .filter(|&e| config.refreshes_before(e))
                .count();
            refresh +=
                refreshes as f64 * forward_seconds(train_images, whole.forward_images_per_second);
        }
    }
    let baselines = runs.iter().filter(|r| r.method.is_none()).count();
    let mut parts = vec![
        ProjectedPart {
            what: "pre-training (RC, the GCC family, the guided crops)".into(),
            runs: plain_runs,
            seconds: plain,
        },
        ProjectedPart {
            what: "pre-training (learnt placement, stn)".into(),
            runs: learnt_runs,
            seconds: learnt,
        },
        ProjectedPart {
            what: "saliency refreshes of the guided crops".into(),
            runs: guided_runs,
            seconds: refresh,
        },
        ProjectedPart {
            what: format!(
                "linear probes ({} random-encoder baselines included)",
                baselines
            ),
            runs: runs.len(),
            seconds: probes,
        },
    ];
    if sweep.probe.protocol == ProbeProtocol::Paper {
        caveats.push(format!(
            "each probe is counted at its full {} epochs; early stopping (patience {}) may end \
             it sooner",
            sweep.probe.epochs, sweep.probe.patience
        ));
    }
    if let Some(check) = sweep.label_check_spec() {
        let kinds = check.cells().len() + 1;
        // One kind of view per oracle step in turn: a supervised step costs about half a
        // SimCLR step (one view batch instead of two) at that kind's size.
        let mut per_image = whole.step_ms / 2.0 / sweep.batch as f64;
        for (_, crop, _) in check.cells() {
            per_image += timing(crop)?.step_ms / 2.0 / sweep.batch as f64;
        }
        per_image /= kinds as f64;
        let oracle_images = check.oracle.epochs * train_images;
        parts.push(ProjectedPart {
            what: format!(
                "label check: the oracle ({} epochs, {})",
                check.oracle.epochs,
                check.oracle.model.name()
            ),
            runs: 1,
            seconds: oracle_images as f64 * per_image / 1e3,
        });
        let mut labelling = forward_seconds(test_images, whole.forward_images_per_second);
        for (_, crop, _) in check.cells() {
            let views = test_images * check.views * 2;
            labelling += forward_seconds(views, timing(crop)?.forward_images_per_second);
        }
        parts.push(ProjectedPart {
            what: format!(
                "label check: labelling {} view pairs per test image in {} cells",
                check.views,
                check.cells().len()
            ),
            runs: 1,
            seconds: labelling,
        });
        caveats.push(format!(
            "the oracle's step is estimated as half a SimCLR step at each view size, at the \
             benchmark's batch of {} (its own is {})",
            sweep.batch, check.oracle.batch
        ));
        if check.oracle.model != sweep.model {
            caveats.push(format!(
                "the oracle is a {} but its cost is that of the benchmark's {}",
                check.oracle.model.name(),
                sweep.model.name()
            ));
        }
    }
    caveats.push(
        "not counted: loading the data, checkpoints, the kNN monitor where it is on, kernel \
         compilation at the start of every run (seconds)"
            .into(),
    );
    let total_seconds = parts.iter().map(|p| p.seconds).sum();
    Ok(Projection {
        runs: runs.len(),
        parts,
        total_seconds,
        caveats,
    })
}

/// A run's linear probe: the frozen features of every training image per probe epoch (paper
/// protocol: augmented views, so recomputed each epoch) or once (fast protocol), and of the
/// test images once; the linear layer's own steps are negligible beside the encoder.
fn probe_seconds(
    sweep: &SweepSpec,
    train_images: usize,
    test_images: usize,
    whole: &SizeTiming,
) -> f64 {
    let passes = match sweep.probe.protocol {
        ProbeProtocol::Paper => sweep.probe.epochs,
        ProbeProtocol::Fast => 1,
    };
    (passes * train_images + test_images) as f64 / whole.forward_images_per_second
}
