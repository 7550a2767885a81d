//! `taming smoke`: a model memorises one random batch; the loss must fall.

use clap::Args;
use taming::experiment::smoke::smoke;
use taming::gpu::Gpu;
use taming::nn::ModelKind;

#[derive(Args)]
pub struct SmokeArgs {
    #[arg(long, value_enum, default_value = "small-cnn")]
    pub model: ModelKind,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 20)]
    pub size: usize,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(device: Option<&str>, args: SmokeArgs) -> taming::Result<()> {
    let SmokeArgs {
        model,
        batch,
        size,
        steps,
        seed,
    } = args;
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    let report = smoke(&gpu, model, batch, size, steps, seed)?;
    let (first, last) = report.first_and_last();
    println!(
        "loss {first:.4} -> {last:.4}; {:.1} images/s (training step, batch {batch})",
        report.images_per_second
    );
    report.check()?;
    println!("smoke run passed");
    Ok(())
}
