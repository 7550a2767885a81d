//! Adam (PyTorch's `torch.optim.Adam`: bias correction, L2 weight decay added to the gradient).

use std::rc::Rc;

use crate::autograd::Param;
use crate::error::Result;
use crate::optim::update::{update, UpdateParams};
use crate::tensor::Tensor;

pub struct Adam {
    params: Vec<Rc<Param>>,
    /// First and second moments, zero until a parameter's first step.
    moments: Vec<Option<(Tensor, Tensor)>>,
    steps: Vec<u32>,
    pub lr: f32,
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
}

impl Adam {
    pub fn new(params: Vec<Rc<Param>>, lr: f32) -> Adam {
        let n = params.len();
        Adam {
            params,
            moments: vec![None; n],
            steps: vec![0; n],
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Updates every parameter that has a gradient, then clears the gradients.
    pub fn step(&mut self) -> Result<()> {
        for ((p, moments), t) in self
            .params
            .iter()
            .zip(&mut self.moments)
            .zip(&mut self.steps)
        {
            let Some(g) = p.grad() else { continue };
            let (m, v) = match moments {
                Some(mv) => mv.clone(),
                None => {
                    let gpu = p.value.gpu();
                    moments
                        .insert((
                            Tensor::zeros(gpu, p.value.shape())?,
                            Tensor::zeros(gpu, p.value.shape())?,
                        ))
                        .clone()
                }
            };
            *t += 1;
            let up = UpdateParams {
                lr: self.lr,
                weight_decay: self.weight_decay,
                eps: self.eps,
                beta1: self.betas.0,
                beta2: self.betas.1,
                bc1: 1.0 - self.betas.0.powi(*t as i32),
                bc2: 1.0 - self.betas.1.powi(*t as i32),
                ..Default::default()
            };
            update("adam_step", up, &p.value, &g, &[&m, &v])?;
            p.zero_grad();
        }
        Ok(())
    }
}
