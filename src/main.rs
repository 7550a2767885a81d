//! The `taming` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use taming::experiment::smoke::{smoke, Model};
use taming::gpu::{list_adapters, Gpu};

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
    /// List the GPU adapters this machine offers, best first.
    Devices,
    /// Train a model on one fixed random batch and check that the loss falls.
    Smoke {
        #[arg(long, value_enum, default_value = "small-cnn")]
        model: Model,
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
