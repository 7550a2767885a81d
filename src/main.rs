//! The `taming` command line.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use taming::data::{idx, subset::balanced_subset, Split};
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
    /// Data set tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
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
            command:
                DataCommand::Subset {
                    from,
                    to,
                    train_per_class,
                    test_per_class,
                    seed,
                },
        } => {
            for (split, per_class) in [
                (Split::Train, train_per_class),
                (Split::Test, test_per_class),
            ] {
                let full = idx::load_fashion_mnist(&from, split)?;
                let part = balanced_subset(&full, per_class, seed)?;
                idx::write_idx_gz(&part, &to, split)?;
                println!(
                    "{split:?}: {} of {} images, {per_class} per class -> {}",
                    part.len(),
                    full.len(),
                    to.display()
                );
            }
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
