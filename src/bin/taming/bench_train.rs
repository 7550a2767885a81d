//! `taming bench-train`: a sweep's SimCLR step on random images, timed per crop size, and the
//! sweep's projected wall time on this adapter.

use std::path::PathBuf;

use clap::Args;
use taming::crop::Method;
use taming::experiment::bench_train::{bench_train, project, validate, BenchTrainSpec};
use taming::experiment::preset::{Overrides, Preset, SweepSpec};
use taming::gpu::Gpu;
use taming::io::{check_output_file, write_atomically};
use taming::nn::ModelKind;
use taming::tensor::Precision;

use crate::parse;

#[derive(Args)]
pub struct BenchTrainArgs {
    /// The sweep whose step is timed and whose wall time is projected.
    #[arg(long, value_enum, default_value = "paper")]
    preset: Preset,
    /// The encoder [default: the preset's; paper: resnet18].
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Images per step (two views each) [default: the preset's; paper: 512].
    #[arg(long)]
    batch: Option<usize>,
    /// What the convolutions store their operands in (f16 needs SHADER_F16).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Crop sizes to time, e.g. 0.2,0.4 [default: the preset's]; whole images are timed too.
    #[arg(
        long = "crop",
        alias = "crops",
        allow_negative_numbers = true,
        value_delimiter = ','
    )]
    crops: Option<Vec<f64>>,
    /// The strategies of the projected sweep [default: the preset's].
    #[arg(long, value_delimiter = ',', value_parser = parse::<Method>)]
    methods: Option<Vec<Method>>,
    /// Pre-training epochs of the projected sweep [default: the preset's].
    #[arg(long)]
    epochs: Option<usize>,
    /// Timed steps per crop size (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Random images resident on the device.
    #[arg(long, default_value_t = 4096)]
    images: usize,
    /// Image shape CxHxW (CIFAR-10's by default).
    #[arg(long, default_value = "3x32x32", value_parser = image_shape)]
    image: [usize; 3],
    /// Training and test images of the projected sweep's data (CIFAR-10's by default).
    #[arg(long, default_value_t = 50_000)]
    train_images: usize,
    #[arg(long, default_value_t = 10_000)]
    test_images: usize,
    /// Do not time the learnt placement's step (its runs are then projected too low).
    #[arg(long)]
    no_learnt: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the measurements and the projection to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn image_shape(s: &str) -> Result<[usize; 3], String> {
    let sides: Vec<usize> = s
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("image shape {s:?} must be CxHxW, e.g. 3x32x32"))?;
    match sides[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok([c, h, w]),
        _ => Err(format!(
            "image shape {s:?} must be CxHxW with three positive sides, e.g. 3x32x32"
        )),
    }
}

pub fn run(device: Option<&str>, args: BenchTrainArgs) -> taming::Result<()> {
    let overrides = Overrides {
        // Nothing is read: the paper preset only insists that a folder is named.
        data: Some(PathBuf::from("(random images)")),
        batch: args.batch,
        crops: args.crops,
        methods: args.methods,
        epochs: args.epochs,
        precision: args.precision,
        ..Overrides::default()
    };
    let mut sweep = SweepSpec::with(args.preset, overrides)?;
    if let Some(model) = args.model {
        sweep.model = model;
    }
    let spec = BenchTrainSpec {
        steps: args.steps,
        images: args.images,
        image_shape: args.image,
        learnt: !args.no_learnt,
        seed: args.seed,
    };
    validate(&spec, &sweep)?;
    if let Some(path) = &args.json {
        check_output_file(path)?;
    }
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    crate::note_precision(&gpu, sweep.precision);
    println!(
        "{}, batch {} (2 views each), precision {}, {} random u8 images of {} resident, {} timed steps per \
         size after a warm-up step",
        sweep.model,
        sweep.batch,
        sweep.precision,
        spec.images,
        args.image.map(|s| s.to_string()).join("x"),
        spec.steps
    );
    let report = bench_train(&gpu, &sweep, &spec)?;
    println!(
        "\n| crop | view | ms/step | images/s | GFLOP/step | GFLOP/s | forward images/s | stn ms/step |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &report.sizes {
        println!(
            "| {} | {}x{} | {:.1} | {:.1} | {:.2} | {:.1} | {:.0} | {} |",
            s.crop,
            s.view[0],
            s.view[1],
            s.step_ms,
            s.images_per_second,
            s.gflop_per_step,
            s.gflops,
            s.forward_images_per_second,
            s.learnt_step_ms.map_or("-".into(), |ms| format!("{ms:.1}"))
        );
    }
    println!("(GFLOP counts the convolutions, linear layers and NT-Xent's similarity matrix)");
    let projection = project(&report, &sweep, args.train_images, args.test_images)?;
    println!(
        "\nprojected wall time of `taming reproduce --preset {}` with these settings on this \
         adapter ({} runs, {} epochs of {} training images, batch {}):",
        args.preset, projection.runs, sweep.epochs, args.train_images, sweep.batch
    );
    for part in &projection.parts {
        println!(
            "  {:<70} {:>4} {:<4}  {}",
            part.what,
            part.runs,
            if part.runs == 1 { "run" } else { "runs" },
            duration(part.seconds)
        );
    }
    println!("  total: {}", duration(projection.total_seconds));
    for caveat in &projection.caveats {
        println!("  note: {caveat}");
    }
    if let Some(path) = &args.json {
        let value = serde_json::json!({ "measured": report, "projection": projection });
        write_atomically(path, &taming::json::to_pretty_bytes(&value)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Seconds as "12.3 s", "4.5 min", "6.7 h" or "8.9 days".
fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("{s:.1} s"),
        s if s < 90.0 * 60.0 => format!("{:.1} min", s / 60.0),
        s if s < 48.0 * 3600.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86400.0),
    }
}
