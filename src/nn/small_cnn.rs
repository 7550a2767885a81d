//! A small CNN for runs on a CPU device: three conv-bn-relu stages (32, 64, 128 channels; the
//! last two with stride 2), global average pooling, and a fully connected embedding layer.

use std::rc::Rc;

use rand::Rng;

use crate::autograd::{Graph, Param, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::layers::{BatchNorm2d, Conv2d, Linear};
use crate::nn::Encoder;
use crate::tensor::Tensor;

/// (output channels, stride) of the three stages.
pub const SMALL_CNN_STAGES: [(usize, usize); 3] = [(32, 1), (64, 2), (128, 2)];

pub struct SmallCnn {
    stages: Vec<(Conv2d, BatchNorm2d)>,
    fc: Linear,
}

impl SmallCnn {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        in_channels: usize,
        embedding: usize,
    ) -> Result<SmallCnn> {
        let mut stages = Vec::new();
        let mut cin = in_channels;
        for (i, &(cout, stride)) in SMALL_CNN_STAGES.iter().enumerate() {
            let conv = Conv2d::new(gpu, rng, &format!("conv{}", i + 1), cin, cout, 3, stride, 1)?;
            stages.push((conv, BatchNorm2d::new(gpu, &format!("bn{}", i + 1), cout)?));
            cin = cout;
        }
        let fc = Linear::new(gpu, rng, "fc", cin, embedding)?;
        Ok(SmallCnn { stages, fc })
    }
}

impl Encoder for SmallCnn {
    fn feature_map(&self, g: &Graph, x: Var, training: bool) -> Result<Var> {
        let mut h = x;
        let last = self.stages.len() - 1;
        for (i, (conv, bn)) in self.stages.iter().enumerate() {
            let y = conv.forward_into_bn(g, h)?;
            // Every stage's output but the last (the feature map) goes only into a convolution.
            h = match i < last {
                true => bn.forward_relu_as(g, y, training, g.precision())?,
                false => bn.forward_relu(g, y, training)?,
            };
        }
        Ok(h)
    }

    fn head(&self, g: &Graph, features: Var) -> Result<Var> {
        self.fc.forward(g, features)
    }

    fn feature_dim(&self) -> usize {
        SMALL_CNN_STAGES[2].0
    }

    fn params(&self) -> Vec<Rc<Param>> {
        let mut p: Vec<Rc<Param>> = self
            .stages
            .iter()
            .flat_map(|(c, b)| [c.params(), b.params()].concat())
            .collect();
        p.extend(self.fc.params());
        p
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        self.stages
            .iter()
            .enumerate()
            .flat_map(|(i, (_, bn))| bn.buffers(&format!("bn{}", i + 1)))
            .collect()
    }
}
