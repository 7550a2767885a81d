//! `taming reproduce` and `taming report`: the sweep of the paper's experiment (or its SLURM
//! script), and the report merged from its shards.

use std::path::PathBuf;

use clap::Args;
use taming::crop::Method;
use taming::experiment::preset::{Overrides, Preset, SweepSpec};
use taming::experiment::slurm::slurm_script;
use taming::experiment::sweep::{check_sweep_folder, run_shard, Shard, SweepOptions};
use taming::experiment::{write_report, REPORT_MD};
use taming::gpu::Gpu;
use taming::io::{create_output_folder, write_atomically};
use taming::simclr::ProbeProtocol;
use taming::tensor::Precision;

use crate::{parse, GuideArgs, StnArgs};

#[derive(Args)]
pub struct ReproduceArgs {
    /// quick: the shipped sample, small CNN, smoke scale (under 30 min on a 2-core CPU);
    /// paper: CIFAR-10 and ResNet-18 as published (a real GPU); full-fmnist: the full
    /// Fashion-MNIST (/usr/share/datasets/fashion-mnist).
    #[arg(long, value_enum, default_value = "quick")]
    preset: Preset,
    /// A data set folder instead of the preset's.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The sweep's folder: runs/, results, report and figure (shards share one).
    #[arg(long, default_value = "reproduction")]
    out: PathBuf,
    /// Pre-training epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Pre-training batch size (images; each gives two views).
    #[arg(long)]
    batch: Option<usize>,
    /// What pre-training stores the convolutions' operands in (f16 needs SHADER_F16).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Adam's learning rate (the paper's: 0.01).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Pre-train and probe on the first N training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Crop strategies, e.g. rc,gcc,cgcc,mgcc.
    #[arg(long, value_delimiter = ',', value_parser = parse::<Method>)]
    methods: Option<Vec<Method>>,
    /// Crop sizes, e.g. 0.2,0.4,0.6,0.8.
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    crops: Option<Vec<f64>>,
    /// The GCC family's alpha: one value, or one per crop size (default: the paper's best).
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Seeds, e.g. 0,1,2: every run of the grid once per seed, plus a random baseline each.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Extra seeds of the random-encoder baseline only (a probe each, no pre-training), e.g.
    /// 1,2; the flag alone for none.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    baseline_seeds: Option<Vec<u64>>,
    /// Linear-evaluation epochs (at most; early stopping may end it sooner).
    #[arg(long)]
    probe_epochs: Option<usize>,
    #[arg(long, value_enum)]
    probe_protocol: Option<ProbeProtocol>,
    /// View pairs per test image of the sweep's label check (run after the runs, by the first
    /// shard); 0 for no check.
    #[arg(long)]
    label_views: Option<usize>,
    /// Epochs of the label check's oracle.
    #[arg(long)]
    oracle_epochs: Option<usize>,
    #[command(flatten)]
    guide: GuideArgs,
    #[command(flatten)]
    stn: StnArgs,
    /// Run only slice i of n of the sweep (0 <= i < n), e.g. from a SLURM array task.
    #[arg(long)]
    shard: Option<Shard>,
    /// Write an sbatch array script of N shards into --out instead of running.
    #[arg(long, value_name = "N")]
    emit_slurm: Option<usize>,
}

/// The sweep's folder.
#[derive(Args)]
pub struct ReportArgs {
    #[arg(long, default_value = "reproduction")]
    pub out: PathBuf,
}

pub fn run(device: Option<&str>, a: ReproduceArgs) -> taming::Result<()> {
    let overrides = Overrides {
        data: a.data,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        train_limit: a.train_limit,
        methods: a.methods,
        crops: a.crops,
        alphas: a.alphas,
        seeds: a.seeds,
        baseline_seeds: a.baseline_seeds,
        probe_epochs: a.probe_epochs,
        probe_protocol: a.probe_protocol,
        label_views: a.label_views,
        oracle_epochs: a.oracle_epochs,
        saliency_warmup: a.guide.saliency_warmup,
        saliency_every: a.guide.saliency_every,
        ccrop_threshold: a.guide.ccrop_threshold,
        ccrop_beta: a.guide.ccrop_beta,
        stn: a.stn.overrides(),
        precision: a.precision,
    };
    let spec = SweepSpec::with(a.preset, overrides)?;
    let runs = spec.runs().len();
    if let Some(shards) = a.emit_slurm {
        if shards == 0 || shards > runs {
            return Err(taming::Error::InvalidArgument(format!(
                "--emit-slurm {shards}: give between 1 and {runs} shards (the sweep has {runs} runs)"
            )));
        }
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("taming"));
        let path = a.out.join(format!("{}.sbatch", spec.preset.name()));
        let script = slurm_script(&spec, &a.out, shards, &exe);
        // The folder's sweep, if any, must be this one; another script is never overwritten.
        check_sweep_folder(&a.out, &spec)?;
        if path.is_file() && std::fs::read(&path).ok().as_deref() != Some(script.as_bytes()) {
            return Err(taming::Error::File {
                path,
                detail: "holds another sbatch script (other settings or shards); use another \
                         --out, or remove the script"
                    .into(),
            });
        }
        create_output_folder(&a.out)?;
        write_atomically(&path, script.as_bytes())?;
        println!(
            "wrote {} ({runs} runs in {shards} array tasks)",
            path.display()
        );
        return Ok(());
    }
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    crate::note_precision(&gpu, spec.precision);
    let shard = a.shard.unwrap_or(Shard::ALL);
    println!(
        "{} preset: {runs} runs ({} in this shard) into {}",
        spec.preset.name(),
        shard.select(&spec.runs()).len(),
        a.out.display()
    );
    let options = SweepOptions {
        shard,
        progress: true,
        stop_after_runs: None,
    };
    run_shard(&gpu, &spec, &a.out, &options)?;
    let results = write_report(&a.out)?;
    println!(
        "{} of {runs} runs finished; report in {}",
        results.runs.len(),
        a.out.join(REPORT_MD).display()
    );
    Ok(())
}

pub fn report(args: ReportArgs) -> taming::Result<()> {
    let ReportArgs { out } = args;
    let results = write_report(&out)?;
    println!(
        "report of {} runs ({} missing) in {}",
        results.runs.len(),
        results.missing.len(),
        out.join(REPORT_MD).display()
    );
    Ok(())
}
