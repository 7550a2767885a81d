//! Saliency summaries of feature maps (`shaders/saliency.wgsl`), for the saliency-guided crops:
//! per image the heat's centroid and its hot box, a few numbers read back once per refresh. No
//! backward: the maps are computed without gradients.

use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::Tensor;

/// Floats per image in a summary: centroid (x, y) in pixels, hot box (x0, y0, x1, y1) as
/// fractions of the side, hot share of the image, range of the map before normalising.
pub const SUMMARY_WORDS: usize = 8;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        images: u32,
        channels: u32,
        fh: u32,
        fw: u32,
        ih: u32,
        iw: u32,
        threshold: f32,
        write_heat: u32,
    }
}

/// The summaries `[N, SUMMARY_WORDS]` of a feature map `[N, C, fh, fw]` upsampled to `[ih, iw]`
/// images, a row or column being hot where its maximum exceeds `threshold`; with `with_heat`,
/// also the upsampled heat maps `[N, ih, iw]` (the previews draw them).
pub fn saliency_summary(
    feature_map: &Tensor,
    image_hw: [usize; 2],
    threshold: f32,
    with_heat: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let s = feature_map.shape();
    let [ih, iw] = image_hw;
    if s.len() != 4 || s.contains(&0) || ih == 0 || iw == 0 {
        return Err(Error::shape(
            "saliency_summary",
            format!("feature map {s:?} must be a non-empty NCHW map, image size {image_hw:?}"),
        ));
    }
    if !(threshold.is_finite() && (0.0..1.0).contains(&threshold)) {
        return Err(Error::InvalidArgument(format!(
            "the saliency threshold {threshold} must lie in [0, 1) (the map is normalised to \
             [0, 1])"
        )));
    }
    let gpu = feature_map.gpu();
    let (n, c, fh, fw) = (s[0], s[1], s[2], s[3]);
    let p = Params {
        images: n as u32,
        channels: c as u32,
        fh: fh as u32,
        fw: fw as u32,
        ih: ih as u32,
        iw: iw as u32,
        threshold,
        write_heat: with_heat as u32,
    };
    let sums = Tensor::uninit(gpu, &[n, fh * fw], "feature map channel sums")?;
    gpu.dispatch(
        &Kernel::new(Shader::Saliency, "channel_sum").with("WG", WG),
        &p,
        &[
            Access::Read(feature_map.buffer()),
            Access::Write(sums.buffer()),
        ],
        ((n * fh * fw) as u32).div_ceil(WG),
    )?;
    let summary = Tensor::uninit(gpu, &[n, SUMMARY_WORDS], "saliency summaries")?;
    let heat = match with_heat {
        true => Tensor::uninit(gpu, &[n, ih, iw], "saliency heat maps")?,
        false => Tensor::uninit(gpu, &[1], "unused heat map")?,
    };
    gpu.dispatch(
        &Kernel::new(Shader::Saliency, "summarise").with("WG", WG),
        &p,
        &[
            Access::Read(sums.buffer()),
            Access::Write(summary.buffer()),
            Access::Write(heat.buffer()),
        ],
        (n as u32).div_ceil(WG),
    )?;
    Ok((summary, with_heat.then_some(heat)))
}
