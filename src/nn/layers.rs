//! Layers: parameters plus a forward pass recorded on the tape. Initialisation follows
//! torchvision's ResNet: convolutions Kaiming-normal (fan_out, ReLU gain), batch norm gamma 1 and
//! beta 0, linear layers PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

use std::rc::Rc;

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::autograd::{Graph, Param, Var};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::batchnorm::{batch_norm, batch_norm_relu, BatchNormState};
use crate::ops::conv2d::{conv2d_stored, Conv2dConfig};
use crate::ops::linear::linear;
use crate::ops::precision::store_as;
use crate::tensor::{Precision, Tensor};

fn param(gpu: &Gpu, name: String, shape: &[usize], values: Vec<f32>) -> Result<Rc<Param>> {
    Ok(Rc::new(Param::new(
        name,
        Tensor::from_slice(gpu, shape, &values)?,
    )))
}

pub struct Conv2d {
    pub weight: Rc<Param>,
    pub bias: Option<Rc<Param>>,
    pub cfg: Conv2dConfig,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Conv2d> {
        let std = (2.0 / (cout * k * k) as f64).sqrt();
        let normal = Normal::new(0.0, std).expect("a positive standard deviation");
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| normal.sample(rng) as f32)
            .collect();
        Ok(Conv2d {
            weight: param(gpu, format!("{name}.weight"), &[cout, cin, k, k], w)?,
            bias: None,
            cfg: Conv2dConfig { stride, pad },
        })
    }

    /// The convolution of `x`, its input and weights stored in the graph's precision (f16: the
    /// copies are what the backward pass keeps; the gradients reach x and the f32 weights).
    pub fn forward(&self, g: &Graph, x: Var) -> Result<Var> {
        self.forward_stored(g, x, Precision::F32)
    }

    /// [`Self::forward`] for an output that only batch norm reads: stored in the graph's
    /// precision too.
    pub fn forward_into_bn(&self, g: &Graph, x: Var) -> Result<Var> {
        self.forward_stored(g, x, g.precision())
    }

    fn forward_stored(&self, g: &Graph, x: Var, output: Precision) -> Result<Var> {
        conv2d_stored(
            g,
            store_as(g, x, g.precision())?,
            store_as(g, g.param(&self.weight), g.precision())?,
            self.bias.as_ref().map(|b| g.param(b)),
            self.cfg,
            output,
        )
    }

    pub fn params(&self) -> Vec<Rc<Param>> {
        std::iter::once(self.weight.clone())
            .chain(self.bias.clone())
            .collect()
    }
}

pub struct BatchNorm2d {
    pub gamma: Rc<Param>,
    pub beta: Rc<Param>,
    pub state: Rc<BatchNormState>,
}

impl BatchNorm2d {
    pub fn new(gpu: &Gpu, name: &str, c: usize) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d {
            gamma: param(gpu, format!("{name}.weight"), &[c], vec![1.0; c])?,
            beta: param(gpu, format!("{name}.bias"), &[c], vec![0.0; c])?,
            state: Rc::new(BatchNormState {
                running_mean: Tensor::zeros(gpu, &[c])?,
                running_var: Tensor::full(gpu, &[c], 1.0)?,
                momentum: 0.1,
                eps: 1e-5,
            }),
        })
    }

    pub fn forward(&self, g: &Graph, x: Var, training: bool) -> Result<Var> {
        batch_norm(
            g,
            x,
            g.param(&self.gamma),
            g.param(&self.beta),
            &self.state,
            training,
        )
    }

    /// `relu(self.forward(x))` as one fused operation (no pass or stored output for the ReLU).
    pub fn forward_relu(&self, g: &Graph, x: Var, training: bool) -> Result<Var> {
        self.forward_relu_as(g, x, training, Precision::F32)
    }

    /// [`Self::forward_relu`] with the output stored as `output`: the graph's precision where
    /// only kernels that read f16 read it (convolutions, the residual add), so that under f16
    /// they take it as it is (no cast pass, no f32 copy kept).
    pub fn forward_relu_as(
        &self,
        g: &Graph,
        x: Var,
        training: bool,
        output: Precision,
    ) -> Result<Var> {
        let (gamma, beta) = (g.param(&self.gamma), g.param(&self.beta));
        batch_norm_relu(g, x, gamma, beta, &self.state, training, output)
    }

    pub fn params(&self) -> Vec<Rc<Param>> {
        vec![self.gamma.clone(), self.beta.clone()]
    }

    /// Running mean and variance, for checkpoints (they are state, not parameters).
    pub fn buffers(&self, name: &str) -> Vec<(String, Tensor)> {
        vec![
            (
                format!("{name}.running_mean"),
                self.state.running_mean.clone(),
            ),
            (
                format!("{name}.running_var"),
                self.state.running_var.clone(),
            ),
        ]
    }
}

pub struct Linear {
    pub weight: Rc<Param>,
    pub bias: Rc<Param>,
}

impl Linear {
    pub fn new(
        gpu: &Gpu,
        rng: &mut impl Rng,
        name: &str,
        fin: usize,
        fout: usize,
    ) -> Result<Linear> {
        let bound = 1.0 / (fin as f32).sqrt();
        let mut draw = |n: usize| {
            (0..n)
                .map(|_| rng.random_range(-bound..bound))
                .collect::<Vec<f32>>()
        };
        let w = draw(fout * fin);
        let b = draw(fout);
        Ok(Linear {
            weight: param(gpu, format!("{name}.weight"), &[fout, fin], w)?,
            bias: param(gpu, format!("{name}.bias"), &[fout], b)?,
        })
    }

    pub fn forward(&self, g: &Graph, x: Var) -> Result<Var> {
        linear(g, x, g.param(&self.weight), Some(g.param(&self.bias)))
    }

    pub fn params(&self) -> Vec<Rc<Param>> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}
