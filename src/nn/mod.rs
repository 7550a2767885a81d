//! Layer 5: layers and the two encoders (ResNet-18 CIFAR variant, a small CNN).

pub mod layers;
pub mod localiser;
pub mod resnet;
pub mod small_cnn;

use crate::names::string_enum;
use std::rc::Rc;

use crate::autograd::{Graph, Param, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::pool::global_avg_pool;
use crate::tensor::Tensor;

pub use resnet::ResNet18;
pub use small_cnn::SmallCnn;

string_enum! {
    /// Which encoder to build.
    pub enum ModelKind {
        /// Three conv-bn-relu stages (32/64/128 channels): the model for CPU devices.
        SmallCnn = "small-cnn",
        /// ResNet-18, CIFAR variant (the paper's encoder).
        Resnet18 = "resnet18",
    }
}

impl ModelKind {
    /// A freshly initialised encoder for `in_channels` images and `embedding` outputs.
    pub fn build(
        self,
        gpu: &Gpu,
        rng: &mut impl rand::Rng,
        in_channels: usize,
        embedding: usize,
    ) -> Result<Box<dyn Encoder>> {
        Ok(match self {
            ModelKind::SmallCnn => Box::new(SmallCnn::new(gpu, rng, in_channels, embedding)?),
            ModelKind::Resnet18 => Box::new(ResNet18::new(gpu, rng, in_channels, embedding)?),
        })
    }
}

/// An encoder: a convolutional backbone (`feature_map`), global average pooling (`features`),
/// then a linear head whose output is the embedding fed to the contrastive loss.
pub trait Encoder {
    /// The backbone's last feature map `[N, feature_dim, h, w]`, before pooling (the saliency
    /// of the guided crops is computed from it).
    fn feature_map(&self, g: &Graph, x: Var, training: bool) -> Result<Var>;
    /// The head applied to pooled features.
    fn head(&self, g: &Graph, features: Var) -> Result<Var>;
    fn feature_dim(&self) -> usize;
    /// Trainable parameters, in a fixed order, with PyTorch-style names.
    fn params(&self) -> Vec<Rc<Param>>;
    /// Non-trainable state (batch-norm running statistics), with PyTorch-style names.
    fn buffers(&self) -> Vec<(String, Tensor)>;

    /// Pooled backbone features `[N, feature_dim]`.
    fn features(&self, g: &Graph, x: Var, training: bool) -> Result<Var> {
        global_avg_pool(g, self.feature_map(g, x, training)?)
    }

    /// The embedding: `head(features(x))`.
    fn forward(&self, g: &Graph, x: Var, training: bool) -> Result<Var> {
        let f = self.features(g, x, training)?;
        self.head(g, f)
    }
}
