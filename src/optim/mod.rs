//! Layer 5: optimisers (their updates are GPU kernels) and learning-rate schedules.

mod adam;
mod schedule;
mod sgd;
pub(crate) mod update;

pub use adam::Adam;
pub use schedule::cosine_lr;
pub use sgd::Sgd;

use crate::error::Result;
use crate::tensor::Tensor;

/// Either optimiser, for loops that let the user choose.
pub enum Optimizer {
    Adam(Adam),
    Sgd(Sgd),
}

impl Optimizer {
    pub fn step(&mut self) -> Result<()> {
        match self {
            Optimizer::Adam(a) => a.step(),
            Optimizer::Sgd(s) => s.step(),
        }
    }

    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Optimizer::Adam(a) => a.lr = lr,
            Optimizer::Sgd(s) => s.lr = lr,
        }
    }

    /// Named state tensors and step counters (empty for SGD), for checkpoints.
    pub fn state(&self) -> (Vec<(String, Tensor)>, Vec<u32>) {
        match self {
            Optimizer::Adam(a) => a.state(),
            Optimizer::Sgd(s) => (s.state(), Vec::new()),
        }
    }

    /// Restores what [`Optimizer::state`] returned.
    pub fn load_state(
        &mut self,
        find: &dyn Fn(&str) -> Option<Tensor>,
        counters: &[u32],
    ) -> Result<()> {
        match self {
            Optimizer::Adam(a) => a.load_state(find, counters),
            Optimizer::Sgd(s) => {
                s.load_state(find);
                Ok(())
            }
        }
    }
}
