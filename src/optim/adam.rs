//! Adam (PyTorch's `torch.optim.Adam`: bias correction, L2 weight decay added to the gradient).

use std::rc::Rc;

use crate::autograd::Param;
use crate::error::{Error, Result};
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

    /// The state to checkpoint: moments as named tensors (`m/<param>`, `v/<param>`, only for
    /// parameters that have taken a step) and every parameter's step count.
    pub fn state(&self) -> (Vec<(String, Tensor)>, Vec<u32>) {
        let mut tensors = Vec::new();
        for (p, moments) in self.params.iter().zip(&self.moments) {
            if let Some((m, v)) = moments {
                tensors.push((format!("m/{}", p.name), m.clone()));
                tensors.push((format!("v/{}", p.name), v.clone()));
            }
        }
        (tensors, self.steps.clone())
    }

    /// Restores what [`Adam::state`] returned (`find` looks a tensor up by name).
    pub fn load_state(
        &mut self,
        find: &dyn Fn(&str) -> Option<Tensor>,
        steps: &[u32],
    ) -> Result<()> {
        if steps.len() != self.params.len() {
            return Err(Error::InvalidArgument(format!(
                "Adam state has {} step counts for {} parameters",
                steps.len(),
                self.params.len()
            )));
        }
        for ((p, moments), (t, &saved)) in self
            .params
            .iter()
            .zip(&mut self.moments)
            .zip(self.steps.iter_mut().zip(steps))
        {
            *t = saved;
            *moments = match (
                find(&format!("m/{}", p.name)),
                find(&format!("v/{}", p.name)),
            ) {
                (Some(m), Some(v)) => Some((m, v)),
                _ if saved == 0 => None,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "Adam state lacks the moments of {}",
                        p.name
                    )))
                }
            };
        }
        Ok(())
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
