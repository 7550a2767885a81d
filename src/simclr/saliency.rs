//! The guides of the saliency-guided crops: every training image, whole, through the encoder
//! being trained (batch norm in evaluation mode, no gradient), its last feature map summarised
//! on the device (`ops::saliency`); only the summaries come back, once per refresh.

use serde::{Deserialize, Serialize};

use crate::augment::ViewPipeline;
use crate::autograd::Graph;
use crate::crop::ImageGuide;
use crate::error::Result;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;
use crate::ops::saliency::{saliency_summary, SUMMARY_WORDS};
use crate::simclr::features::{copy_rows, for_whole_image_batches};
use crate::tensor::Tensor;

/// Images per forward pass of a refresh.
const REFRESH_BATCH: usize = 256;

/// What one refresh found, averaged over the images (for the run's history).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The epoch (1-based) before which the guides were computed.
    pub epoch: usize,
    /// Mean distance of the centroid from the image centre, as a fraction of the side.
    pub centroid_offset: f64,
    /// Mean area of the hot box as a fraction of the image.
    pub hot_box_area: f64,
    /// Mean share of pixels above the threshold.
    pub hot_share: f64,
    pub seconds: f64,
}

/// One image's summary as the kernel writes it (see [`SUMMARY_WORDS`]).
pub type Summary = [f32; SUMMARY_WORDS];

/// The saliency of some images.
pub struct Saliency {
    pub summaries: Vec<Summary>,
    /// The upsampled heat maps `[images, H, W]`, when asked for.
    pub heat: Option<Vec<f32>>,
}

/// The saliency of the images `indices`: per image the kernel's summary (centroid, hot box,
/// hot share, range), and with `with_heat` the upsampled heat maps.
pub fn saliency_of(
    encoder: &dyn Encoder,
    images: &PackedImages,
    indices: &[u32],
    pipeline: &ViewPipeline,
    threshold: f64,
    with_heat: bool,
) -> Result<Saliency> {
    let [_, _, h, w] = images.shape();
    let gpu = images.gpu();
    let n = indices.len();
    let summaries = Tensor::uninit(gpu, &[n.max(1), SUMMARY_WORDS], "saliency summaries")?;
    let heat = match with_heat {
        true => Some(Tensor::uninit(
            gpu,
            &[n.max(1), h, w],
            "saliency heat maps",
        )?),
        false => None,
    };
    for_whole_image_batches(
        images,
        indices,
        pipeline,
        REFRESH_BATCH,
        |first, chunk, x| {
            let g = Graph::no_grad(gpu);
            let map = g.value(encoder.feature_map(&g, g.input(x), false)?);
            let (s, hm) = saliency_summary(&map, [h, w], threshold as f32, with_heat)?;
            copy_rows(&s, &summaries, first, chunk.len(), SUMMARY_WORDS);
            if let (Some(all), Some(hm)) = (&heat, hm) {
                copy_rows(&hm, all, first, chunk.len(), h * w);
            }
            Ok(())
        },
    )?;
    let flat = summaries.to_vec()?;
    let summaries = flat
        .chunks_exact(SUMMARY_WORDS)
        .take(n)
        .map(|r| std::array::from_fn(|i| r[i]))
        .collect();
    let heat = match heat {
        Some(t) => Some(t.to_vec()?),
        None => None,
    };
    Ok(Saliency { summaries, heat })
}

/// The guides of every resident image, in order, and what they look like on average.
pub fn refresh_guides(
    encoder: &dyn Encoder,
    images: &PackedImages,
    pipeline: &ViewPipeline,
    threshold: f64,
    epoch: usize,
) -> Result<(Vec<ImageGuide>, RefreshRecord)> {
    let start = std::time::Instant::now();
    let [n, _, h, w] = images.shape();
    let indices: Vec<u32> = (0..n as u32).collect();
    let rows = saliency_of(encoder, images, &indices, pipeline, threshold, false)?.summaries;
    let guides: Vec<ImageGuide> = rows.iter().map(|r| ImageGuide::from_words(r)).collect();
    let mean =
        |f: &dyn Fn(&Summary) -> f64| rows.iter().map(f).sum::<f64>() / rows.len().max(1) as f64;
    let (wf, hf) = (w as f64, h as f64);
    let record = RefreshRecord {
        epoch,
        centroid_offset: mean(&|r| {
            ((r[0] as f64 / wf - 0.5).powi(2) + (r[1] as f64 / hf - 0.5).powi(2)).sqrt()
        }),
        hot_box_area: mean(&|r| ((r[4] - r[2]) as f64) * ((r[5] - r[3]) as f64)),
        hot_share: mean(&|r| r[6] as f64),
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((guides, record))
}
