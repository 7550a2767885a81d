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
    let [_, _, h, w] = images.shape();
    let gpu = images.gpu();
    let dim = encoder.feature_dim();
    let batch = batch.max(1);
    let out = Tensor::uninit(gpu, &[indices.len(), dim], "frozen features")?;
    for (k, chunk) in indices.chunks(batch).enumerate() {
        let plan = ViewPlan::whole_images(chunk, [w, h]);
        let f = view_features(encoder, images, &plan, pipeline, training)?;
        let offset = (k * batch * dim * 4) as u64;
        gpu.copy(
            f.buffer(),
            0,
            out.buffer(),
            offset,
            (chunk.len() * dim * 4) as u64,
        );
    }
    Ok(out)
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
