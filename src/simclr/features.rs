//! Frozen features: views through the encoder's backbone, no gradients. Whole images with batch
//! norm in evaluation mode for the probe's fixed inputs and the kNN monitor; augmented views,
//! batch norm in either mode, for the paper's probe protocol.

use crate::augment::{ViewPipeline, ViewPlan};
use crate::autograd::Graph;
use crate::error::Result;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;
use crate::tensor::Tensor;

/// Pooled backbone features `[views, feature_dim]` of the views of `plan`, one batch. With
/// `training`, batch norm uses the batch's statistics and updates its running statistics.
pub fn view_features(
    encoder: &dyn Encoder,
    images: &PackedImages,
    plan: &ViewPlan,
    pipeline: &ViewPipeline,
    training: bool,
) -> Result<Tensor> {
    let x = pipeline.run_single(images, plan)?;
    let g = Graph::no_grad(images.gpu());
    let f = encoder.features(&g, g.input(x), training)?;
    Ok(g.value(f))
}

/// Pooled backbone features `[indices.len(), feature_dim]` of whole images `indices`, `batch`
/// images per pass; `training` as in [`view_features`]. `pipeline` supplies the normalisation;
/// its crop is not used.
pub fn extract_features(
    encoder: &dyn Encoder,
    images: &PackedImages,
    indices: &[u32],
    pipeline: &ViewPipeline,
    batch: usize,
    training: bool,
) -> Result<Tensor> {
    let dim = encoder.feature_dim();
    let out = Tensor::uninit(images.gpu(), &[indices.len(), dim], "frozen features")?;
    for_whole_image_batches(images, indices, pipeline, batch, |first, chunk, x| {
        let g = Graph::no_grad(images.gpu());
        let f = encoder.features(&g, g.input(x), training)?;
        copy_rows(&g.value(f), &out, first, chunk.len(), dim);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(first, chunk, x)` for each run of `batch` images of `indices`, `x` the chunk's
/// whole images `[chunk.len(), C, H, W]` normalised by `pipeline` (its crop is not used) and
/// `first` the chunk's position in `indices`.
pub(crate) fn for_whole_image_batches(
    images: &PackedImages,
    indices: &[u32],
    pipeline: &ViewPipeline,
    batch: usize,
    mut f: impl FnMut(usize, &[u32], Tensor) -> Result<()>,
) -> Result<()> {
    let [_, _, h, w] = images.shape();
    let batch = batch.max(1);
    for (k, chunk) in indices.chunks(batch).enumerate() {
        let plan = ViewPlan::whole_images(chunk, [w, h]);
        f(k * batch, chunk, pipeline.run_single(images, &plan)?)?;
    }
    Ok(())
}

/// Records a copy of the first `rows` rows of `row_floats` floats of `src` into `dst` from row
/// `first` on (the per-batch results of a pass gathered into one tensor).
pub(crate) fn copy_rows(src: &Tensor, dst: &Tensor, first: usize, rows: usize, row_floats: usize) {
    let row_bytes = (row_floats * 4) as u64;
    src.gpu().copy(
        src.buffer(),
        0,
        dst.buffer(),
        first as u64 * row_bytes,
        rows as u64 * row_bytes,
    );
}

/// [`extract_features`] of every image of `images`, in order.
pub fn all_image_features(
    encoder: &dyn Encoder,
    images: &PackedImages,
    pipeline: &ViewPipeline,
    batch: usize,
    training: bool,
) -> Result<Tensor> {
    let indices: Vec<u32> = (0..images.shape()[0] as u32).collect();
    extract_features(encoder, images, &indices, pipeline, batch, training)
}
