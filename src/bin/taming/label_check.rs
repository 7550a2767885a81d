//! `taming label-check`: how often each strategy's views keep their image's label.

use std::path::PathBuf;

use clap::Args;
use taming::crop::{Method, PadMode};
use taming::experiment::label_report::{self, write_label_check};
use taming::experiment::preset::paper_alphas_for;
use taming::gpu::Gpu;
use taming::label_check::{label_check, LabelCheckSpec, OracleSpec};
use taming::nn::ModelKind;

use crate::parse;

#[derive(Args)]
pub struct LabelCheckArgs {
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

pub fn run(device: Option<&str>, a: LabelCheckArgs) -> taming::Result<()> {
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
