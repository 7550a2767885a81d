//! `taming crops`: a contact sheet of a strategy's boxes and views, and a heat map of crop
//! centres.

use std::path::{Path, PathBuf};

use clap::Args;
use taming::crop::CropSpec;
use taming::data::{load_dir, Split};
use taming::experiment::crop_preview::{self, LearntSource, SaliencySource};
use taming::gpu::Gpu;
use taming::io::check_output_file;
use taming::simclr::{load_placement, load_trained};

use crate::CropArgs;

#[derive(Args)]
pub struct CropsArgs {
    /// A data set folder (Fashion-MNIST IDX, CIFAR-10 binary, or PNG folders); default: the
    /// shipped Fashion-MNIST sample.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub crop: CropArgs,
    /// How many images the contact sheet shows.
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "views.png")]
    pub out: PathBuf,
    /// Also write a heat map of crop centres of every strategy to this PNG.
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
    /// Images drawn for the heat map (two views each).
    #[arg(long, default_value_t = 100_000)]
    pub draws: usize,
    /// A trained run's folder: its strategy (method, crop, alpha, padding, guide settings) and
    /// data replace the flags; a guided method (saliency, ccrop) places its crops by the run's
    /// encoder, its heat maps drawn beside the images, and the learnt placement (stn) by the
    /// run's localiser, its Gaussian drawn over the images.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

pub fn run(device: Option<&str>, args: CropsArgs) -> taming::Result<()> {
    let CropsArgs {
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
        checkpoint,
    } = args;
    if heatmap.is_some() {
        crop_preview::check_heatmap_draws(draws)?;
    }
    // Both pictures are checked before the first is written, so that neither is left alone.
    for path in std::iter::once(&out).chain(heatmap.as_ref()) {
        check_png_path(path)?;
    }
    let gpu = Gpu::new(device)?;
    let trained = match &checkpoint {
        Some(dir) => Some(load_trained(&gpu, dir)?),
        None if method.follows_training() => {
            return Err(taming::Error::InvalidArgument(format!(
                "--method {method} places its crops by a trained run ({}): pass --checkpoint \
                 DIR of a run (e.g. taming pretrain --method {method} --out DIR)",
                match method.is_learnt() {
                    true => "its localiser",
                    false => "its encoder's saliency",
                }
            )))
        }
        None => None,
    };
    let (spec, data) = match &trained {
        Some(t) => (t.config.crop_spec()?, data.or(t.config.data.clone())),
        None => {
            let mut spec = CropSpec::new(method, crop, alpha)?;
            spec.pad = pad;
            (spec, data)
        }
    };
    let dataset = load_dir(data.as_deref(), Split::Train)?;
    let [_, h, w] = dataset.shape();
    if let Some(warning) = taming::crop::degenerate_warning(&spec, w, h)? {
        eprintln!("warning: {warning}");
    }
    let alpha_text = match spec.method.uses_alpha() {
        true => format!(" alpha {}", spec.alpha),
        false => String::new(),
    };
    let trained_text = match &trained {
        Some(t) => format!(", run of {} epochs", t.history.len()),
        None => String::new(),
    };
    let title = format!(
        "{} crop {}{alpha_text}, pad {}{trained_text}",
        spec.method,
        spec.crop,
        // The learnt placement reads continuous positions with zeros outside the image.
        match spec.method.is_learnt() {
            true => "window",
            false => spec.pad.name(),
        }
    );
    let saliency = trained
        .as_ref()
        .filter(|t| t.config.method.is_guided())
        .map(|t| SaliencySource {
            encoder: t.encoder.as_ref(),
            normalization: t.normalization.clone(),
            threshold: t.config.guide.threshold,
        });
    let learnt = match (&trained, &checkpoint) {
        (Some(t), Some(dir)) if t.config.method.is_learnt() => Some(LearntSource {
            learnt: load_placement(&gpu, dir, [w, h])?,
            normalization: t.normalization.clone(),
        }),
        _ => None,
    };
    let sheet = crop_preview::contact_sheet(
        &gpu,
        &dataset,
        &spec,
        images,
        seed,
        &title,
        saliency.as_ref(),
        learnt.as_ref(),
    )?;
    sheet.save_png(&out)?;
    println!(
        "contact sheet ({images} images, {title}) -> {}",
        out.display()
    );
    if let Some(path) = heatmap {
        let [_, h, w] = dataset.shape();
        let map = crop_preview::centre_heatmap([w, h], spec.crop, spec.alpha, draws, seed)?;
        map.save_png(&path)?;
        println!(
            "crop-centre heat map ({draws} draws per strategy) -> {}",
            path.display()
        );
    }
    Ok(())
}

/// A picture's path: a `.png` file (what is written) in a folder that exists.
fn check_png_path(path: &Path) -> taming::Result<()> {
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        return Err(taming::Error::File {
            path: path.to_path_buf(),
            detail: "the pictures are PNG files: name it NAME.png".into(),
        });
    }
    check_output_file(path)
}
