//! The `taming` command line.

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use taming::crop::{CropSpec, Method, PadMode};
use taming::data::fetch::fetch_cifar10;
use taming::data::{idx, load_dir, subset::balanced_subset, Split};
use taming::experiment::crop_preview;
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
    /// Pictures of a cropping strategy: a contact sheet of images, their two crop boxes and the
    /// two views the GPU makes (--out), and optionally a heat map of where the crop centres of
    /// every strategy fall (--heatmap).
    Crops {
        /// A data set folder (Fashion-MNIST IDX, CIFAR-10 binary, or PNG folders); default: the
        /// shipped Fashion-MNIST sample.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "gcc")]
        method: Method,
        /// Crop size as a fraction of the image area, in (0, 1].
        #[arg(long, default_value_t = 0.4)]
        crop: f64,
        /// Variance scale of the GCC family (ignored by rc and rrc).
        #[arg(long, default_value_t = 1.5)]
        alpha: f64,
        /// Where a box leaves the image: centre (the authors' code) or window.
        #[arg(long, default_value = "centre")]
        pad: PadMode,
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
    /// Data set tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
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
            command: DataCommand::Fetch { dataset: _, to },
        } => {
            fetch_cifar10(&to)?;
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
        Command::Crops {
            data,
            method,
            crop,
            alpha,
            pad,
            images,
            seed,
            out,
            heatmap,
            draws,
        } => {
            let mut spec = CropSpec::new(method, crop, alpha)?;
            spec.pad = pad;
            let dataset = load_dir(data.as_deref(), Split::Train)?;
            let gpu = Gpu::new(cli.device.as_deref())?;
            let alpha_text = match method.uses_alpha() {
                true => format!(" alpha {alpha}"),
                false => String::new(),
            };
            let title = format!(
                "{method} crop {crop}{alpha_text}, pad {}",
                match pad {
                    PadMode::Centre => "centre",
                    PadMode::Window => "window",
                }
            );
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
