//! `taming linear-eval`: the linear probe of a pre-trained or a random encoder.

use std::path::PathBuf;

use clap::Args;
use taming::augment::ViewPipeline;
use taming::data::load_splits;
use taming::experiment::run::{encoder_to_evaluate, EncoderSource};
use taming::gpu::Gpu;
use taming::nn::ModelKind;
use taming::simclr::{linear_eval, trained_config, BackboneBn, LinearEvalConfig, ProbeProtocol};

#[derive(Args)]
pub struct LinearEvalArgs {
    /// A folder written by `taming pretrain`.
    #[arg(
        long,
        required_unless_present = "random_init",
        conflicts_with = "random_init"
    )]
    pub checkpoint: Option<PathBuf>,
    /// Evaluate a randomly initialised encoder instead (the baseline).
    #[arg(long)]
    pub random_init: bool,
    /// A data set folder; default: the checkpoint's (or the shipped sample).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The model for --random-init.
    #[arg(long, value_enum, default_value = "small-cnn")]
    pub model: ModelKind,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// fast: whole-image features computed once; paper: RandomCrop(pad 4) + flip views
    /// through the frozen encoder at every step (about 10x slower on a CPU device).
    #[arg(long, value_enum, default_value = "fast")]
    pub protocol: ProbeProtocol,
    /// The frozen encoder's batch norm while the probe trains (paper protocol); default:
    /// train with --protocol paper, as the authors' code does.
    #[arg(long, value_enum)]
    pub backbone_bn: Option<BackboneBn>,
    /// Feed the probe the raw features instead of standardised ones.
    #[arg(long)]
    pub no_standardize: bool,
}

pub fn run(device: Option<&str>, args: LinearEvalArgs) -> taming::Result<()> {
    let LinearEvalArgs {
        checkpoint,
        random_init: _,
        data,
        model,
        seed,
        epochs,
        protocol,
        backbone_bn,
        no_standardize,
    } = args;
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    let probe = LinearEvalConfig {
        epochs,
        seed,
        protocol,
        backbone_bn: backbone_bn.unwrap_or(match protocol {
            ProbeProtocol::Paper => BackboneBn::Train,
            ProbeProtocol::Fast => BackboneBn::Eval,
        }),
        standardize: !no_standardize,
        ..LinearEvalConfig::default()
    };
    // The folder `taming pretrain` wrote; its checkpoint file names it too.
    let checkpoint = checkpoint.map(|p| match p.file_name() {
        Some(n) if p.is_file() && n == taming::simclr::checkpoint::CHECKPOINT_FILE => {
            p.parent().map(PathBuf::from).unwrap_or(p)
        }
        _ => p,
    });
    // With no checkpoint, --random-init (clap requires one of the two).
    let source = match &checkpoint {
        Some(dir) => EncoderSource::Checkpoint(dir),
        None => EncoderSource::Random { model, seed },
    };
    // The checkpoint's data set unless --data says otherwise.
    let data = match (data, &checkpoint) {
        (Some(d), _) => Some(d),
        (None, Some(dir)) => trained_config(dir)?.data,
        (None, None) => None,
    };
    let (train, test) = load_splits(data.as_deref(), None)?;
    let chosen = encoder_to_evaluate(&gpu, source, &train)?;
    let (encoder, normalization, what) = (chosen.encoder, chosen.normalization, chosen.description);
    let pipeline = ViewPipeline::evaluation(normalization);
    println!(
        "linear evaluation of {what}; {} protocol, backbone batch norm {}, {} features",
        probe.protocol.name(),
        probe.backbone_bn.name(),
        if probe.standardize {
            "standardised"
        } else {
            "raw"
        }
    );
    let result = linear_eval(
        &gpu,
        encoder.as_ref(),
        &train,
        &test,
        &pipeline,
        &probe,
        true,
    )?;
    println!(
        "probe: {} train / {} validation images, best validation loss {:.4} at epoch {} of {}",
        result.train_images,
        result.val_images,
        result.best_val_loss,
        result.best_epoch,
        result.epochs_run
    );
    println!("test accuracy: {:.2}", 100.0 * result.test_accuracy);
    Ok(())
}
