//! ResNet-18, CIFAR variant (as in the paper): a 3x3 stride-1 stem with 64 channels and no
//! max-pool, four stages of two basic blocks (64, 128, 256, 512 channels; stride 2 entering
//! stages 2-4, with a 1x1 convolution + batch norm on the shortcut), global average pooling,
//! and a fully connected layer 512 -> embedding (128 in the paper).

use std::rc::Rc;

use rand::Rng;

use crate::autograd::{Graph, Param, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::layers::{BatchNorm2d, Conv2d, Linear};
use crate::nn::Encoder;
use crate::ops::elementwise::add_relu;
use crate::tensor::{Precision, Tensor};

/// (input channels, output channels, stride) of the eight basic blocks.
pub const RESNET18_BLOCKS: [(usize, usize, usize); 8] = [
    (64, 64, 1),
    (64, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
];

/// `layer{stage}.{index}`, the PyTorch name of block `i`.
pub fn block_name(i: usize) -> String {
    format!("layer{}.{}", i / 2 + 1, i % 2)
}

pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
    name: String,
}

impl BasicBlock {
    fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        name: String,
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> Result<BasicBlock> {
        let downsample = if stride != 1 || cin != cout {
            Some((
                Conv2d::new(
                    gpu,
                    rng,
                    &format!("{name}.downsample.0"),
                    cin,
                    cout,
                    1,
                    stride,
                    0,
                )?,
                BatchNorm2d::new(gpu, &format!("{name}.downsample.1"), cout)?,
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: Conv2d::new(gpu, rng, &format!("{name}.conv1"), cin, cout, 3, stride, 1)?,
            bn1: BatchNorm2d::new(gpu, &format!("{name}.bn1"), cout)?,
            conv2: Conv2d::new(gpu, rng, &format!("{name}.conv2"), cout, cout, 3, 1, 1)?,
            bn2: BatchNorm2d::new(gpu, &format!("{name}.bn2"), cout)?,
            downsample,
            name,
        })
    }

    /// The block's output stored as `output` (the graph's precision where the next block reads
    /// it; f32 for the pooling after the last).
    fn forward(&self, g: &Graph, x: Var, training: bool, output: Precision) -> Result<Var> {
        // bn1's output goes only into conv2: stored as conv2 reads it.
        let h = self.bn1.forward_relu_as(
            g,
            self.conv1.forward_into_bn(g, x)?,
            training,
            g.precision(),
        )?;
        let h = self
            .bn2
            .forward(g, self.conv2.forward_into_bn(g, h)?, training)?;
        let shortcut = match &self.downsample {
            Some((conv, bn)) => bn.forward(g, conv.forward_into_bn(g, x)?, training)?,
            None => x,
        };
        add_relu(g, h, shortcut, output)
    }

    fn params(&self) -> Vec<Rc<Param>> {
        let mut p = [
            self.conv1.params(),
            self.bn1.params(),
            self.conv2.params(),
            self.bn2.params(),
        ]
        .concat();
        if let Some((conv, bn)) = &self.downsample {
            p.extend(conv.params());
            p.extend(bn.params());
        }
        p
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        let n = &self.name;
        let mut b = [
            self.bn1.buffers(&format!("{n}.bn1")),
            self.bn2.buffers(&format!("{n}.bn2")),
        ]
        .concat();
        if let Some((_, bn)) = &self.downsample {
            b.extend(bn.buffers(&format!("{n}.downsample.1")));
        }
        b
    }
}

pub struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet18 {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        in_channels: usize,
        embedding: usize,
    ) -> Result<ResNet18> {
        let conv1 = Conv2d::new(gpu, rng, "conv1", in_channels, 64, 3, 1, 1)?;
        let bn1 = BatchNorm2d::new(gpu, "bn1", 64)?;
        let blocks = RESNET18_BLOCKS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, s))| BasicBlock::new(gpu, rng, block_name(i), cin, cout, s))
            .collect::<Result<Vec<_>>>()?;
        let fc = Linear::new(gpu, rng, "fc", 512, embedding)?;
        Ok(ResNet18 {
            conv1,
            bn1,
            blocks,
            fc,
        })
    }
}

impl Encoder for ResNet18 {
    fn feature_map(&self, g: &Graph, x: Var, training: bool) -> Result<Var> {
        // The stem's output and every block's but the last go into convolutions and the
        // residual add only: stored in the graph's precision.
        let stem = self.conv1.forward_into_bn(g, x)?;
        let mut h = self.bn1.forward_relu_as(g, stem, training, g.precision())?;
        let last = self.blocks.len() - 1;
        for (i, b) in self.blocks.iter().enumerate() {
            let output = match i < last {
                true => g.precision(),
                false => Precision::F32,
            };
            h = b.forward(g, h, training, output)?;
        }
        Ok(h)
    }

    fn head(&self, g: &Graph, features: Var) -> Result<Var> {
        self.fc.forward(g, features)
    }

    fn feature_dim(&self) -> usize {
        512
    }

    fn params(&self) -> Vec<Rc<Param>> {
        let mut p = [self.conv1.params(), self.bn1.params()].concat();
        for b in &self.blocks {
            p.extend(b.params());
        }
        p.extend(self.fc.params());
        p
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        let mut b = self.bn1.buffers("bn1");
        for blk in &self.blocks {
            b.extend(blk.buffers());
        }
        b
    }
}
