//! `taming pretrain`: SimCLR pre-training of one strategy, checkpointed every epoch.

use std::path::PathBuf;

use clap::Args;
use taming::gpu::Gpu;
use taming::nn::ModelKind;
use taming::simclr::{pretrain, GuideConfig, OptimizerKind, PretrainConfig, RunOptions};
use taming::tensor::Precision;

use crate::{CropArgs, GuideArgs, StnArgs};

#[derive(Args)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub crop: CropArgs,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// What the encoder's convolutions store their operands in (f16 needs SHADER_F16).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    #[arg(long, value_enum, default_value = "small-cnn")]
    pub model: ModelKind,
    /// A data set folder; default: the shipped Fashion-MNIST sample.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run checkpointed in --out (same settings); start it if there is none.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerKind,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.01)]
    pub lr: f64,
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
    pub temperature: f64,
    /// Run the kNN monitor (k = 200 on the test split) every N epochs; 0 = never.
    #[arg(long, default_value_t = 0)]
    pub knn_every: usize,
    /// Read the loss back every K steps (the GPU runs ahead in between).
    #[arg(long, default_value_t = 10)]
    pub loss_every: usize,
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Stop after this many epochs in total (continue later with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
    #[command(flatten)]
    pub guide: GuideArgs,
    #[command(flatten)]
    pub stn: StnArgs,
    /// ContrastiveCrop at the fixed --crop area without resize (as the sweep runs it), instead
    /// of RandomResizedCrop's scale 0.2-1 and ratio 3/4-4/3 with resize (as published).
    #[arg(long)]
    pub ccrop_fixed_area: bool,
}

pub fn run(device: Option<&str>, args: PretrainArgs) -> taming::Result<()> {
    let PretrainArgs {
        crop:
            CropArgs {
                method,
                crop,
                alpha,
                pad,
            },
        epochs,
        batch,
        precision,
        model,
        data,
        seed,
        out,
        resume,
        optimizer,
        lr,
        temperature,
        knn_every,
        loss_every,
        train_limit,
        stop_after,
        guide,
        stn,
        ccrop_fixed_area,
    } = args;
    let mut config = PretrainConfig::new(method, crop, alpha, epochs);
    config.pad = pad;
    config.batch = batch;
    config.precision = precision;
    config.model = model;
    config.data = data;
    config.seed = seed;
    config.optimizer = optimizer;
    config.lr = lr;
    config.temperature = temperature;
    config.knn_every = knn_every;
    config.loss_every = loss_every;
    config.train_limit = train_limit;
    config.guide = guide.apply(GuideConfig {
        ccrop_fixed_area,
        ..GuideConfig::default()
    });
    config.stn = stn.overrides().apply(config.stn);
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    crate::note_precision(&gpu, config.precision);
    let options = RunOptions {
        resume,
        progress: true,
        stop_after,
    };
    let history = pretrain(&gpu, &config, &out, &options)?;
    if let Some(last) = history.last() {
        println!(
            "pre-training: {} of {epochs} epochs done, final loss {:.4}; checkpoint in {}",
            history.len(),
            last.loss,
            out.display()
        );
    }
    Ok(())
}
