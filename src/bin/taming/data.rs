//! `taming data`: fetch CIFAR-10, make a class-balanced subset or a translated copy of a
//! data set.

use std::path::PathBuf;

use clap::Subcommand;
use taming::data::fetch::fetch_cifar10;
use taming::data::translate::{translate, TranslateSpec};
use taming::data::{idx, load_dir, subset::balanced_subset, Split};
use taming::io::write_atomically;

#[derive(Subcommand)]
pub enum DataCommand {
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
pub enum MakeCommand {
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

pub fn run(command: DataCommand) -> taming::Result<()> {
    match command {
        DataCommand::Fetch { dataset: _, to } => {
            fetch_cifar10(&to)?;
            Ok(())
        }
        DataCommand::Make { kind } => make_data(kind),
        DataCommand::Subset {
            from,
            to,
            train_per_class,
            test_per_class,
            seed,
        } => subset(from, to, train_per_class, test_per_class, seed),
    }
}

fn subset(
    from: PathBuf,
    to: PathBuf,
    train_per_class: usize,
    test_per_class: usize,
    seed: u64,
) -> taming::Result<()> {
    if train_per_class == 0 || test_per_class == 0 {
        return Err(taming::Error::InvalidArgument(format!(
            "--train-per-class {train_per_class} --test-per-class {test_per_class}: each split \
             needs at least 1 image per class"
        )));
    }
    if idx::idx_paths(&to, Split::Train).is_ok() || idx::idx_paths(&to, Split::Test).is_ok() {
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
