//! The `taming` command line: one file per command, each holding its arguments, the call into
//! the library and the printing of what it did.

mod bench_train;
mod crops;
mod data;
mod label_check;
mod linear_eval;
mod pretrain;
mod reproduce;
mod selftest;
mod smoke;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use taming::crop::{Method, PadMode};
use taming::gpu::list_adapters;
use taming::simclr::{GuideConfig, StnObjective, StnOverrides};

#[derive(Parser)]
#[command(
    name = "taming",
    version,
    about = "Label-preserving cropping for contrastive learning, on a wgpu engine"
)]
struct Cli {
    /// Use the adapter whose name contains this text (default: the best one; also TAMING_DEVICE).
    #[arg(long, global = true)]
    device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the paper's experiment (a preset sweep of crop strategies x crop sizes x seeds, plus
    /// the random-encoder baseline) and write results.json, results.csv, report.md and
    /// accuracy_vs_crop.svg/.png into --out. Finished runs in --out are skipped.
    Reproduce(reproduce::ReproduceArgs),
    /// Merge the results in --out (of every shard) into results.json/.csv, report.md and the
    /// figure.
    Report(reproduce::ReportArgs),
    /// List the GPU adapters this machine offers, best first.
    Devices,
    /// Train a model on one fixed random batch and check that the loss falls.
    Smoke(smoke::SmokeArgs),
    /// Pictures of a cropping strategy: a contact sheet of images, their two crop boxes and the
    /// two views the GPU makes (--out), and optionally a heat map of where the crop centres of
    /// every strategy fall (--heatmap).
    Crops(crops::CropsArgs),
    /// SimCLR pre-training with one cropping strategy; checkpoints after every epoch into --out.
    Pretrain(pretrain::PretrainArgs),
    /// Linear evaluation of a pre-trained (or randomly initialised) frozen encoder; prints
    /// `test accuracy: NN.NN`.
    LinearEval(linear_eval::LinearEvalArgs),
    /// Label preservation: an oracle (a classifier trained with the labels on whole images and
    /// on views of every strategy) labels the views each strategy draws on the test split;
    /// writes label_check.json/.csv/.md/.svg/.png into --out, and caches the oracle there.
    LabelCheck(label_check::LabelCheckArgs),
    /// Time the SimCLR step of a sweep's model and batch on random images (no data needed), per
    /// crop size, and project the sweep's wall time on this adapter.
    BenchTrain(bench_train::BenchTrainArgs),
    /// Check every kernel, and every convolution and product algorithm the adapter accepts,
    /// against the CPU references; exits non-zero if any check fails.
    Selftest(selftest::SelftestArgs),
    /// Data set tools.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
}

/// The cropping options every command that crops takes.
#[derive(clap::Args)]
pub(crate) struct CropArgs {
    #[arg(long, default_value = "gcc", value_parser = parse::<Method>)]
    pub method: Method,
    /// Crop size as a fraction of the image area, in (0, 1].
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.4)]
    pub crop: f64,
    /// Variance scale of the GCC family (ignored by rc and rrc).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.5)]
    pub alpha: f64,
    /// Where a box leaves the image: centre (the authors' code) or window.
    #[arg(long, default_value = "centre", value_parser = parse::<PadMode>)]
    pub pad: PadMode,
}

/// The guided methods' schedule and ContrastiveCrop's settings (`--method saliency|ccrop`).
#[derive(Args)]
pub(crate) struct GuideArgs {
    /// Epochs of the unguided strategy (GCC; for ccrop RandomResizedCrop, or RC at fixed area)
    /// before the guides are first computed [default: a fifth of the epochs].
    #[arg(long)]
    pub saliency_warmup: Option<usize>,
    /// Recompute the guides every K epochs after the warm-up [default: a fifth of the epochs].
    #[arg(long)]
    pub saliency_every: Option<usize>,
    /// A heat-map row or column is hot above this, in (0, 1) [default: 0.1, ContrastiveCrop's].
    #[arg(long, allow_negative_numbers = true)]
    pub ccrop_threshold: Option<f64>,
    /// ContrastiveCrop's Beta(a, a) of the crop centre in the hot box [default: 0.1, theirs for
    /// small data sets].
    #[arg(long, allow_negative_numbers = true)]
    pub ccrop_beta: Option<f64>,
}

impl GuideArgs {
    /// `base` with the given flags applied.
    pub fn apply(&self, base: GuideConfig) -> GuideConfig {
        GuideConfig {
            warmup: self.saliency_warmup.or(base.warmup),
            every: self.saliency_every.or(base.every),
            threshold: self.ccrop_threshold.unwrap_or(base.threshold),
            ccrop_beta: self.ccrop_beta.unwrap_or(base.ccrop_beta),
            ..base
        }
    }
}

/// The learnt placement's settings (`--method stn`).
#[derive(Args)]
pub(crate) struct StnArgs {
    /// What the localiser learns: consistency (views that still look like their image) or
    /// adversarial (gradient reversal on NT-Xent, held by the overlap hinge) [default:
    /// consistency].
    #[arg(long, value_enum)]
    pub stn_objective: Option<StnObjective>,
    /// Floor on the views' spread, as the GCC alpha whose std it is [default: 0.5, or the
    /// run's alpha if smaller].
    #[arg(long, allow_negative_numbers = true)]
    pub stn_min_spread: Option<f64>,
    /// The adversarial objective keeps the two views' IoU above this [default: 0.2].
    #[arg(long, allow_negative_numbers = true)]
    pub stn_min_iou: Option<f64>,
    /// Weight of the overlap hinge against NT-Xent [default: 100].
    #[arg(long, allow_negative_numbers = true)]
    pub stn_hinge_weight: Option<f64>,
    /// Epochs of GCC before the localiser trains [default: a quarter of the epochs].
    #[arg(long)]
    pub stn_warmup: Option<usize>,
    /// The localiser's Adam learning rate [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    pub stn_lr: Option<f64>,
    /// The localiser learns on every K-th step (it places every step's views); K > 1 lowers
    /// the cost of its extra passes [default: 1].
    #[arg(long)]
    pub stn_every: Option<usize>,
}

impl StnArgs {
    pub fn overrides(&self) -> StnOverrides {
        StnOverrides {
            objective: self.stn_objective,
            min_spread: self.stn_min_spread,
            min_iou: self.stn_min_iou,
            hinge_weight: self.stn_hinge_weight,
            warmup: self.stn_warmup,
            lr: self.stn_lr,
            every: self.stn_every,
        }
    }
}

fn run(cli: Cli) -> taming::Result<()> {
    let device = cli.device.as_deref();
    match cli.command {
        Command::Reproduce(args) => reproduce::run(device, args),
        Command::Report(args) => reproduce::report(args),
        Command::Devices => devices(),
        Command::Smoke(args) => smoke::run(device, args),
        Command::Crops(args) => crops::run(device, args),
        Command::Pretrain(args) => pretrain::run(device, args),
        Command::LinearEval(args) => linear_eval::run(device, args),
        Command::LabelCheck(args) => label_check::run(device, args),
        Command::BenchTrain(args) => bench_train::run(device, args),
        Command::Selftest(args) => selftest::run(device, args),
        Command::Data { command } => data::run(command),
    }
}

/// Says, before a run in f16 on a CPU adapter, that it will be slower, not faster: f16 takes
/// the tiled convolution, which is shaped for GPUs.
fn note_precision(gpu: &taming::Gpu, precision: taming::tensor::Precision) {
    if precision == taming::tensor::Precision::F16 && gpu.is_cpu() {
        println!(
            "note: --precision f16 runs the tiled convolution, the GPUs' kernel; on this CPU \
             adapter it is slower than the kernels f32 uses"
        );
    }
}

fn devices() -> taming::Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        return Err(taming::Error::NoAdapter);
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("{}{a}", if i == 0 { "* " } else { "  " });
    }
    println!("(* = chosen by default; pick another with --device NAME or TAMING_DEVICE)");
    Ok(())
}

/// Parses a value with its own `FromStr`, whose error names the kind of value and lists the
/// accepted names ("unknown crop method \"xyz\": use rc, gcc, ...").
pub(crate) fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
