//! SGD with momentum and L2 weight decay (PyTorch's `torch.optim.SGD`, dampening 0).

use std::rc::Rc;

use crate::autograd::Param;
use crate::error::Result;
use crate::optim::update::{update, UpdateParams};
use crate::tensor::Tensor;

pub struct Sgd {
    params: Vec<Rc<Param>>,
    momentum_buf: Vec<Option<Tensor>>,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

impl Sgd {
    pub fn new(params: Vec<Rc<Param>>, lr: f32, momentum: f32, weight_decay: f32) -> Sgd {
        let momentum_buf = vec![None; params.len()];
        Sgd {
            params,
            momentum_buf,
            lr,
            momentum,
            weight_decay,
        }
    }

    /// The state to checkpoint: momentum buffers as named tensors (`momentum/<param>`, only for
    /// parameters that have taken a step).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.momentum_buf)
            .filter_map(|(p, b)| {
                b.as_ref()
                    .map(|b| (format!("momentum/{}", p.name), b.clone()))
            })
            .collect()
    }

    /// Restores what [`Sgd::state`] returned.
    pub fn load_state(&mut self, find: &dyn Fn(&str) -> Option<Tensor>) {
        for (p, buf) in self.params.iter().zip(&mut self.momentum_buf) {
            *buf = find(&format!("momentum/{}", p.name));
        }
    }

    /// Updates every parameter that has a gradient, then clears the gradients.
    pub fn step(&mut self) -> Result<()> {
        for (p, buf) in self.params.iter().zip(&mut self.momentum_buf) {
            let Some(g) = p.grad() else { continue };
            let first = buf.is_none();
            let state = match buf {
                Some(b) => b.clone(),
                None => buf.insert(p.value.like("sgd momentum")?).clone(),
            };
            let up = UpdateParams {
                first: first as u32,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                ..Default::default()
            };
            update("sgd_step", up, &p.value, &g, &[&state])?;
            p.zero_grad();
        }
        Ok(())
    }
}
