//! A trainable parameter: its value and the gradient the tape accumulates into it.

use std::cell::{Cell, RefCell};

use crate::error::Result;
use crate::tensor::Tensor;

pub struct Param {
    pub name: String,
    pub value: Tensor,
    grad: RefCell<Option<Tensor>>,
    trainable: Cell<bool>,
}

impl Param {
    pub fn new(name: impl Into<String>, value: Tensor) -> Param {
        Param {
            name: name.into(),
            value,
            grad: RefCell::new(None),
            trainable: Cell::new(true),
        }
    }

    /// The gradient summed over every `backward()` since the last `zero_grad()`.
    pub fn grad(&self) -> Option<Tensor> {
        self.grad.borrow().clone()
    }

    /// Replaces the gradient (for optimiser benches and tests that have one at hand).
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.grad.borrow_mut() = g;
    }

    pub fn zero_grad(&self) {
        *self.grad.borrow_mut() = None;
    }

    /// A frozen parameter gets no gradient (the encoder during linear evaluation).
    pub fn set_trainable(&self, on: bool) {
        self.trainable.set(on);
    }

    pub fn trainable(&self) -> bool {
        self.trainable.get()
    }

    /// Adds `g` to the gradient. Never in place: `g` may share its buffer with another
    /// node's gradient (an addition hands the same gradient to both inputs).
    pub(crate) fn accumulate_grad(&self, g: Tensor) -> Result<()> {
        let next = match self.grad.borrow().as_ref() {
            None => g,
            Some(old) => old.add(&g)?,
        };
        *self.grad.borrow_mut() = Some(next);
        Ok(())
    }
}
