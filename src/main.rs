//! The `taming` command line.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use taming::augment::ViewPipeline;
use taming::crop::{CropSpec, Method, PadMode};
use taming::data::fetch::fetch_cifar10;
use taming::data::translate::{translate, TranslateSpec};
use taming::data::{idx, load_dir, load_splits, subset::balanced_subset, Split};
use taming::experiment::crop_preview;
use taming::experiment::label_report::{self, write_label_check};
use taming::experiment::preset::paper_alphas_for;
use taming::experiment::preset::{Overrides, Preset, SweepSpec};
use taming::experiment::run::{encoder_to_evaluate, EncoderSource};
use taming::experiment::slurm::slurm_script;
use taming::experiment::smoke::smoke;
use taming::experiment::sweep::{check_sweep_folder, run_shard, Shard, SweepOptions};
use taming::experiment::{write_report, REPORT_MD};
use taming::gpu::{list_adapters, Gpu};
use taming::io::write_atomically;
use taming::label_check::{label_check, LabelCheckSpec, OracleSpec};
use taming::nn::ModelKind;
use taming::simclr::{
    linear_eval, pretrain, trained_config, BackboneBn, LinearEvalConfig, OptimizerKind,
    PretrainConfig, ProbeProtocol, RunOptions,
};

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
    Reproduce(ReproduceArgs),
    /// Merge the results in --out (of every shard) into results.json/.csv, report.md and the
    /// figure.
    Report {
        #[arg(long, default_value = "reproduction")]
        out: PathBuf,
    },
    /// List the GPU adapters this machine offers, best first.
    Devices,
    /// Train a model on one fixed random batch and check that the loss falls.
    Smoke {
        #[arg(long, value_enum, default_value = "small-cnn")]
        model: ModelKind,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 20)]
        size: usize,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Pictures of a cropping strategy: a contact sheet of images, their two crop boxes and the
    /// two views the GPU makes (--out), and optionally a heat map of where the crop centres of
    /// every strategy fall (--heatmap).
    Crops {
        /// A data set folder (Fashion-MNIST IDX, CIFAR-10 binary, or PNG folders); default: the
        /// shipped Fashion-MNIST sample.
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        crop: CropArgs,
        /// How many images the contact sheet shows.
        #[arg(long, default_value_t = 8)]
        images: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "views.png")]
        out: PathBuf,
        /// Also write a heat map of crop centres of every strategy to this PNG.
        #[arg(long)]
        heatmap: Option<PathBuf>,
        /// Images drawn for the heat map (two views each).
        #[arg(long, default_value_t = 100_000)]
        draws: usize,
    },
    /// SimCLR pre-training with one cropping strategy; checkpoints after every epoch into --out.
    Pretrain {
        #[command(flatten)]
        crop: CropArgs,
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[arg(long, value_enum, default_value = "small-cnn")]
        model: ModelKind,
        /// A data set folder; default: the shipped Fashion-MNIST sample.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Continue the run checkpointed in --out (same settings); start it if there is none.
        #[arg(long)]
        resume: bool,
        #[arg(long, value_enum, default_value = "adam")]
        optimizer: OptimizerKind,
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.01)]
        lr: f64,
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.1)]
        temperature: f64,
        /// Run the kNN monitor (k = 200 on the test split) every N epochs; 0 = never.
        #[arg(long, default_value_t = 0)]
        knn_every: usize,
        /// Read the loss back every K steps (the GPU runs ahead in between).
        #[arg(long, default_value_t = 10)]
        loss_every: usize,
        /// Train on the first N training images only.
        #[arg(long)]
        train_limit: Option<usize>,
        /// Stop after this many epochs in total (continue later with --resume).
        #[arg(long)]
        stop_after: Option<usize>,
    },
    /// Linear evaluation of a pre-trained (or randomly initialised) frozen encoder; prints
    /// `test accuracy: NN.NN`.
    LinearEval {
        /// A folder written by `taming pretrain`.
        #[arg(
            long,
            required_unless_present = "random_init",
            conflicts_with = "random_init"
        )]
        checkpoint: Option<PathBuf>,
        /// Evaluate a randomly initialised encoder instead (the baseline).
        #[arg(long)]
        random_init: bool,
        /// A data set folder; default: the checkpoint's (or the shipped sample).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The model for --random-init.
        #[arg(long, value_enum, default_value = "small-cnn")]
        model: ModelKind,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        epochs: usize,
        /// fast: whole-image features computed once; paper: RandomCrop(pad 4) + flip views
        /// through the frozen encoder at every step (about 10x slower on a CPU device).
        #[arg(long, value_enum, default_value = "fast")]
        protocol: ProbeProtocol,
        /// The frozen encoder's batch norm while the probe trains (paper protocol); default:
        /// train with --protocol paper, as the authors' code does.
        #[arg(long, value_enum)]
        backbone_bn: Option<BackboneBn>,
        /// Feed the probe the raw features instead of standardised ones.
        #[arg(long)]
        no_standardize: bool,
    },
    /// Label preservation: an oracle (a classifier trained with the labels on whole images and
    /// on views of every strategy) labels the views each strategy draws on the test split;
    /// writes label_check.json/.csv/.md/.svg/.png into --out, and caches the oracle there.
    LabelCheck(LabelCheckArgs),
    /// Data set tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

/// The cropping options every command that crops takes.
#[derive(clap::Args)]
struct CropArgs {
    #[arg(long, default_value = "gcc", value_parser = parse::<Method>)]
    method: Method,
    /// Crop size as a fraction of the image area, in (0, 1].
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.4)]
    crop: f64,
    /// Variance scale of the GCC family (ignored by rc and rrc).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.5)]
    alpha: f64,
    /// Where a box leaves the image: centre (the authors' code) or window.
    #[arg(long, default_value = "centre", value_parser = parse::<PadMode>)]
    pad: PadMode,
}

#[derive(Args)]
struct ReproduceArgs {
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
    /// Run only slice i of n of the sweep (0 <= i < n), e.g. from a SLURM array task.
    #[arg(long)]
    shard: Option<Shard>,
    /// Write an sbatch array script of N shards into --out instead of running.
    #[arg(long, value_name = "N")]
    emit_slurm: Option<usize>,
}

#[derive(Args)]
struct LabelCheckArgs {
    /// A data set folder; default: the shipped Fashion-MNIST sample.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Crop strategies, e.g. rc,gcc,cgcc,mgcc,rrc.
    #[arg(long, value_delimiter = ',', default_value = "rc,gcc,cgcc,mgcc", value_parser = parse::<Method>)]
    methods: Vec<Method>,
    /// Crop sizes, e.g. 0.2,0.4,0.6,0.8.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_delimiter = ',',
        default_value = "0.2,0.4,0.6,0.8"
    )]
    crops: Vec<f64>,
    /// The GCC family's alpha: one value, or one per crop size (default: the paper's best).
    #[arg(long, allow_negative_numbers = true, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Where a box leaves the image: centre (the authors' code) or window.
    #[arg(long, default_value = "centre", value_parser = parse::<PadMode>)]
    pad: PadMode,
    /// View pairs per test image, strategy and crop size.
    #[arg(long, default_value_t = 4)]
    views: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Check on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Train the oracle on the first N training images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// The oracle's network (resnet18 wants a real GPU).
    #[arg(long, value_enum, default_value = "small-cnn")]
    oracle_model: ModelKind,
    #[arg(long, default_value_t = OracleSpec::default().epochs)]
    oracle_epochs: usize,
    #[arg(long, default_value_t = OracleSpec::default().batch)]
    oracle_batch: usize,
    #[arg(long, allow_negative_numbers = true, default_value_t = OracleSpec::default().lr)]
    oracle_lr: f64,
    /// The folder of the check's files and of its cached oracle.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a data set that cannot ship with the repository (needs internet access).
    Fetch {
        /// The data set: cifar10 (the official binary archive, MD5-checked).
        #[arg(value_parser = ["cifar10"])]
        dataset: String,
        #[arg(long)]
        to: PathBuf,
    },
    /// Make a data set from another one.
    Make {
        #[command(subcommand)]
        kind: MakeCommand,
    },
    /// Write a class-balanced subset of a Fashion-MNIST (IDX) folder as gzip IDX files; this is
    /// how data/fashion-mnist was made from /usr/share/datasets/fashion-mnist.
    Subset {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
        #[arg(long, default_value_t = 1000)]
        train_per_class: usize,
        #[arg(long, default_value_t = 200)]
        test_per_class: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum MakeCommand {
    /// Each image at a seeded random position on a larger zero canvas, optionally with clutter
    /// patches cut from other images, written as IDX files that --data reads (one-channel data).
    Translated {
        #[arg(long)]
        from: PathBuf,
        /// Side of the square canvas in pixels.
        #[arg(long, default_value_t = 48)]
        canvas: usize,
        /// Clutter patches per image.
        #[arg(long, default_value_t = 0)]
        clutter: usize,
        /// Side of a clutter patch (default: 2/7 of the image width).
        #[arg(long)]
        patch: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        to: PathBuf,
    },
}

fn run(cli: Cli) -> taming::Result<()> {
    match cli.command {
        Command::Devices => {
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
        Command::Data {
            command: DataCommand::Fetch { dataset: _, to },
        } => {
            fetch_cifar10(&to)?;
            Ok(())
        }
        Command::Data {
            command: DataCommand::Make { kind },
        } => make_data(kind),
        Command::LabelCheck(args) => run_label_check(cli.device.as_deref(), args),
        Command::Data {
            command:
                DataCommand::Subset {
                    from,
                    to,
                    train_per_class,
                    test_per_class,
                    seed,
                },
        } => {
            if idx::idx_paths(&to, Split::Train).is_ok() || idx::idx_paths(&to, Split::Test).is_ok()
            {
                return Err(taming::Error::File {
                    path: to,
                    detail: "already holds a data set; choose another --to".into(),
                });
            }
            // Both splits are read, and both subsets made, before anything is written.
            let train = idx::load_fashion_mnist(&from, Split::Train)?;
            let test = idx::load_fashion_mnist(&from, Split::Test)?;
            let mut parts = Vec::new();
            for (split, full, per_class) in [
                (Split::Train, train, train_per_class),
                (Split::Test, test, test_per_class),
            ] {
                let part = balanced_subset(&full, per_class, seed)?;
                parts.push((split, per_class, part, full.len()));
            }
            for (split, per_class, part, full) in parts {
                idx::write_idx_gz(&part, &to, split)?;
                println!(
                    "{split:?}: {} of {full} images, {per_class} per class -> {}",
                    part.len(),
                    to.display()
                );
            }
            Ok(())
        }
        Command::Crops {
            data,
            crop:
                CropArgs {
                    method,
                    crop,
                    alpha,
                    pad,
                },
            images,
            seed,
            out,
            heatmap,
            draws,
        } => {
            let mut spec = CropSpec::new(method, crop, alpha)?;
            spec.pad = pad;
            if heatmap.is_some() {
                crop_preview::check_heatmap_draws(draws)?;
            }
            let dataset = load_dir(data.as_deref(), Split::Train)?;
            let [_, h, w] = dataset.shape();
            if let Some(warning) = taming::crop::degenerate_warning(&spec, w, h)? {
                eprintln!("warning: {warning}");
            }
            let gpu = Gpu::new(cli.device.as_deref())?;
            let alpha_text = match method.uses_alpha() {
                true => format!(" alpha {alpha}"),
                false => String::new(),
            };
            let title = format!("{method} crop {crop}{alpha_text}, pad {}", pad.name());
            let sheet = crop_preview::contact_sheet(&gpu, &dataset, &spec, images, seed, &title)?;
            sheet.save_png(&out)?;
            println!(
                "contact sheet ({images} images, {title}) -> {}",
                out.display()
            );
            if let Some(path) = heatmap {
                let [_, h, w] = dataset.shape();
                let map = crop_preview::centre_heatmap([w, h], crop, alpha, draws, seed)?;
                map.save_png(&path)?;
                println!(
                    "crop-centre heat map ({draws} draws per strategy) -> {}",
                    path.display()
                );
            }
            Ok(())
        }
        Command::Pretrain {
            crop:
                CropArgs {
                    method,
                    crop,
                    alpha,
                    pad,
                },
            epochs,
            batch,
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
        } => {
            let mut config = PretrainConfig::new(method, crop, alpha, epochs);
            config.pad = pad;
            config.batch = batch;
            config.model = model;
            config.data = data;
            config.seed = seed;
            config.optimizer = optimizer;
            config.lr = lr;
            config.temperature = temperature;
            config.knn_every = knn_every;
            config.loss_every = loss_every;
            config.train_limit = train_limit;
            let gpu = Gpu::new(cli.device.as_deref())?;
            println!("adapter: {}", gpu.adapter());
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
        Command::LinearEval {
            checkpoint,
            random_init: _,
            data,
            model,
            seed,
            epochs,
            protocol,
            backbone_bn,
            no_standardize,
        } => {
            let gpu = Gpu::new(cli.device.as_deref())?;
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
            let (encoder, normalization, what) =
                (chosen.encoder, chosen.normalization, chosen.description);
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
        Command::Reproduce(args) => reproduce(cli.device.as_deref(), args),
        Command::Report { out } => {
            let results = write_report(&out)?;
            println!(
                "report of {} runs ({} missing) in {}",
                results.runs.len(),
                results.missing.len(),
                out.join(REPORT_MD).display()
            );
            Ok(())
        }
        Command::Smoke {
            model,
            batch,
            size,
            steps,
            seed,
        } => {
            let gpu = Gpu::new(cli.device.as_deref())?;
            println!("adapter: {}", gpu.adapter());
            let report = smoke(&gpu, model, batch, size, steps, seed)?;
            let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
            println!(
                "loss {first:.4} -> {last:.4}; {:.1} images/s (training step, batch {batch})",
                report.images_per_second
            );
            if steps > 1 && last >= first {
                return Err(taming::Error::Gpu(format!(
                    "smoke: the loss did not fall ({first:.4} -> {last:.4})"
                )));
            }
            println!("smoke run passed");
            Ok(())
        }
    }
}

fn reproduce(device: Option<&str>, a: ReproduceArgs) -> taming::Result<()> {
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
        std::fs::create_dir_all(&a.out).map_err(|e| taming::Error::File {
            path: a.out.clone(),
            detail: format!("cannot create the output folder: {e}"),
        })?;
        write_atomically(&path, script.as_bytes())?;
        println!(
            "wrote {} ({runs} runs in {shards} array tasks)",
            path.display()
        );
        return Ok(());
    }
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
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

fn make_data(kind: MakeCommand) -> taming::Result<()> {
    let MakeCommand::Translated {
        from,
        canvas,
        clutter,
        patch,
        seed,
        to,
    } = kind;
    let spec = TranslateSpec {
        canvas,
        clutter,
        patch,
        seed,
    };
    if idx::idx_paths(&to, Split::Train).is_ok() || idx::idx_paths(&to, Split::Test).is_ok() {
        return Err(taming::Error::File {
            path: to,
            detail: "already holds a data set; choose another --to".into(),
        });
    }
    // Both splits are read and checked before anything is written.
    let mut made = Vec::new();
    for split in [Split::Train, Split::Test] {
        let source = load_dir(Some(&from), split)?;
        let [c, _, _] = source.shape();
        if c != 1 {
            return Err(taming::Error::InvalidArgument(format!(
                "{} has {c}-channel images; `data make translated` writes IDX files, which hold                  one-channel images",
                from.display()
            )));
        }
        let (translated, _) = translate(&source, &spec, split)?;
        made.push((split, source.len(), translated));
    }
    for (split, n, translated) in &made {
        idx::write_idx_gz(translated, &to, *split)?;
        println!(
            "{split:?}: {n} images of {} placed on {canvas}x{canvas} canvases{} -> {}",
            from.display(),
            match clutter {
                0 => String::new(),
                k => format!(" with {k} clutter patches each"),
            },
            to.display()
        );
    }
    let record =
        serde_json::json!({ "made_by": "taming data make translated", "from": from, "spec": spec });
    write_atomically(&to.join("translated.json"), record.to_string().as_bytes())
}

fn run_label_check(device: Option<&str>, a: LabelCheckArgs) -> taming::Result<()> {
    // Crop sizes first: the alpha looked up for a crop size outside (0, 1] would hide why.
    for &crop in &a.crops {
        CropSpec::new(Method::Rc, crop, 1.0)?;
    }
    let alphas = match a.alphas {
        Some(v) if v.len() == 1 => vec![v[0]; a.crops.len()],
        Some(v) => v,
        None if a.methods.iter().any(|m| m.uses_alpha()) => paper_alphas_for(&a.crops)?,
        None => vec![1.0; a.crops.len()],
    };
    let mut spec = LabelCheckSpec::new(a.methods, a.crops, alphas);
    spec.data = a.data;
    spec.pad = a.pad;
    spec.views = a.views;
    spec.seed = a.seed;
    spec.test_limit = a.test_limit;
    spec.oracle = OracleSpec {
        model: a.oracle_model,
        epochs: a.oracle_epochs,
        batch: a.oracle_batch,
        lr: a.oracle_lr,
        train_limit: a.train_limit,
    };
    spec.validate()?;
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    let result = label_check(&gpu, &spec, &a.out, true)?;
    write_label_check(&a.out, &result)?;
    print!("{}", label_report::tables_markdown(&result));
    println!(
        "oracle: {:.2} % on whole test images ({}); label check in {:.0} s -> {}",
        result.whole_image_accuracy,
        if result.oracle_reused {
            "from its cache"
        } else {
            "trained now"
        },
        result.seconds,
        a.out.join(label_report::LABEL_MD).display()
    );
    Ok(())
}

/// Parses a value with its own `FromStr`, whose error names the kind of value and lists the
/// accepted names ("unknown crop method \"xyz\": use rc, gcc, ...").
fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
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
