//! A run of a sweep: its identity (method, crop size, alpha, seed, and the id made of them),
//! its folder and its files; and the encoder a linear probe evaluates, chosen in one place for
//! `taming linear-eval` and for the sweep's runs: a trained one read from a checkpoint folder,
//! or the random initialisation of a model at a seed (the random-encoder baseline), each with
//! the normalisation it expects.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::augment::Normalization;
use crate::crop::Method;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Encoder, ModelKind};
use crate::simclr::{initial_encoder, load_trained, EpochRecord, PretrainConfig};

/// The folder of the runs, inside the output folder.
pub const RUNS_DIR: &str = "runs";
/// A finished run's record, inside its folder.
pub const RESULT_FILE: &str = "result.json";

/// One run of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The crop strategy pre-trained with; None for the random-encoder baseline.
    pub method: Option<Method>,
    pub crop: Option<f64>,
    /// The GCC family's alpha (None for RC and the baseline).
    pub alpha: Option<f64>,
    pub seed: u64,
}

impl RunSpec {
    /// The run's folder name, e.g. `gcc-crop0.4-alpha1.5-seed0`, `random-seed1`.
    pub fn id(&self) -> String {
        let mut id = self.method_name().to_string();
        if let Some(c) = self.crop {
            id += &format!("-crop{c}");
        }
        if let Some(a) = self.alpha {
            id += &format!("-alpha{a}");
        }
        id + &format!("-seed{}", self.seed)
    }

    /// `rc`, `gcc`, ... or `random`.
    pub fn method_name(&self) -> &'static str {
        self.method.map_or("random", |m| m.name())
    }
}

/// The folder of a run.
pub fn run_dir(out: &Path, run: &RunSpec) -> PathBuf {
    out.join(RUNS_DIR).join(run.id())
}

/// Where the encoder comes from.
#[derive(Clone, Copy, Debug)]
pub enum EncoderSource<'a> {
    /// The folder `taming pretrain` wrote.
    Checkpoint(&'a Path),
    /// The weights `model` starts from at `seed`: the baseline of that seed.
    Random { model: ModelKind, seed: u64 },
}

/// An encoder ready to be probed.
pub struct EncoderToEvaluate {
    pub encoder: Box<dyn Encoder>,
    /// The per-channel statistics its inputs are normalised with.
    pub normalization: Normalization,
    /// Its pre-training epochs (none for a random encoder).
    pub history: Vec<EpochRecord>,
    /// What it is, for the user: "small-cnn pre-trained with gcc crop 0.4 for 10 epochs (DIR)".
    pub description: String,
}

/// The encoder of `source` for images like `train`'s: a trained encoder must have been trained
/// on as many channels; a random one is normalised with `train`'s statistics.
pub fn encoder_to_evaluate(
    gpu: &Gpu,
    source: EncoderSource,
    train: &Dataset,
) -> Result<EncoderToEvaluate> {
    let channels = train.shape()[0];
    match source {
        EncoderSource::Checkpoint(dir) => {
            let t = load_trained(gpu, dir)?;
            let trained_on = t.normalization.mean.len();
            if trained_on != channels {
                return Err(Error::InvalidArgument(format!(
                    "the encoder in {} was trained on {trained_on}-channel images, but the data \
                     set has {channels}-channel images; evaluate it on data like its own",
                    dir.display()
                )));
            }
            let description = format!(
                "{} pre-trained with {} crop {} for {} epochs ({})",
                t.config.model.name(),
                t.config.method,
                t.config.crop,
                t.history.len(),
                dir.display()
            );
            Ok(EncoderToEvaluate {
                encoder: t.encoder,
                normalization: t.normalization,
                history: t.history,
                description,
            })
        }
        EncoderSource::Random { model, seed } => {
            let embedding = PretrainConfig::default_embedding();
            Ok(EncoderToEvaluate {
                encoder: initial_encoder(gpu, model, seed, channels, embedding)?,
                normalization: Normalization::of_dataset(train)?,
                history: Vec::new(),
                description: format!("{} with random weights (seed {seed})", model.name()),
            })
        }
    }
}
