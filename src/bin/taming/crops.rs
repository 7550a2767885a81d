//! `taming crops`: a contact sheet of a strategy's boxes and views, and a heat map of crop
//! centres.

use std::path::PathBuf;

use clap::Args;
use taming::crop::CropSpec;
use taming::data::{load_dir, Split};
use taming::experiment::crop_preview;
use taming::gpu::Gpu;

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
    } = args;
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
    let gpu = Gpu::new(device)?;
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
