//! Frozen features: whole images through the encoder's backbone in evaluation mode (batch norm
//! with its running statistics), batch by batch, into one tensor on the GPU.

use crate::augment::{ViewPipeline, ViewPlan};
use crate::autograd::Graph;
use crate::error::Result;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;
use crate::tensor::Tensor;

/// Pooled backbone features `[indices.len(), feature_dim]` of images `indices`. `pipeline`
/// supplies the normalisation; its crop is not used (images are taken whole).
pub fn extract_features(
    encoder: &dyn Encoder,
    images: &PackedImages,
    indices: &[u32],
    pipeline: &ViewPipeline,
    batch: usize,
) -> Result<Tensor> {
    let [_, _, h, w] = images.shape();
    let gpu = images.gpu();
    let dim = encoder.feature_dim();
    let out = Tensor::uninit(gpu, &[indices.len(), dim], "frozen features")?;
    for (k, chunk) in indices.chunks(batch.max(1)).enumerate() {
        let plan = ViewPlan::whole_images(chunk, [w, h]);
        let x = pipeline.run_single(images, &plan)?;
        let g = Graph::no_grad(gpu);
        let f = g.value(encoder.features(&g, g.input(x), false)?);
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
