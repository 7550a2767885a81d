//! The learnt crop placement's localiser: a small CNN that reads the whole image and outputs,
//! per image, the crop centre's mean offset (2) and log spread (2). Two stride-2 convolutions
//! with biases and ReLU (no batch norm: its outputs must not depend on the batch), global
//! average pooling, and a linear layer that starts at zero, so that the untrained localiser
//! places views exactly as GCC does.

use std::rc::Rc;

use rand::Rng;

use crate::autograd::{Graph, Param, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::layers::{Conv2d, Linear};
use crate::ops::elementwise::relu;
use crate::ops::pool::global_avg_pool;
use crate::ops::stn::PLACEMENT_WORDS;
use crate::tensor::Tensor;

/// Output channels of the two convolutions.
pub const LOCALISER_CHANNELS: [usize; 2] = [16, 32];

pub struct Localiser {
    convs: Vec<Conv2d>,
    out: Linear,
}

impl Localiser {
    pub fn new(gpu: &Gpu, rng: &mut impl Rng, in_channels: usize) -> Result<Localiser> {
        let mut convs = Vec::new();
        let mut cin = in_channels;
        for (i, &cout) in LOCALISER_CHANNELS.iter().enumerate() {
            let mut conv =
                Conv2d::new(gpu, rng, &format!("stn.conv{}", i + 1), cin, cout, 3, 2, 1)?;
            conv.bias = Some(Rc::new(Param::new(
                format!("stn.conv{}.bias", i + 1),
                Tensor::zeros(gpu, &[cout])?,
            )));
            convs.push(conv);
            cin = cout;
        }
        let out = Linear::new(gpu, rng, "stn.fc", cin, PLACEMENT_WORDS)?;
        // The last layer at zero: offset 0 and log spread 0, GCC's placement.
        out.weight.value.write(&vec![0.0; cin * PLACEMENT_WORDS])?;
        out.bias.value.write(&[0.0; PLACEMENT_WORDS])?;
        Ok(Localiser { convs, out })
    }

    /// The placement outputs `[N, 4]` of whole images `[N, C, H, W]`.
    pub fn forward(&self, g: &Graph, images: Var) -> Result<Var> {
        let mut h = images;
        for conv in &self.convs {
            h = relu(g, conv.forward(g, h)?)?;
        }
        self.out.forward(g, global_avg_pool(g, h)?)
    }

    /// Every parameter, in a fixed order, named `stn.*`.
    pub fn params(&self) -> Vec<Rc<Param>> {
        let mut p: Vec<Rc<Param>> = self.convs.iter().flat_map(Conv2d::params).collect();
        p.extend(self.out.params());
        p
    }
}
