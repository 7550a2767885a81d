//! The tape: a define-by-run list of nodes in creation order. Each op appends its output with a
//! closure that turns the output's gradient into its inputs' gradients; `backward()` walks the
//! list in reverse, which is a valid reverse topological order because inputs precede outputs.
//! [`Graph::backward_into`] back-propagates into a chosen set of parameters and keeps the
//! closures, so that two losses of one forward pass can train two models (the learnt crops:
//! the encoder on NT-Xent, the localiser on its own loss).

use std::cell::RefCell;
use std::rc::Rc;

use crate::autograd::Param;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::tensor::{Precision, Tensor};

/// Maps the output gradient to one gradient per input (`None` where not needed); the flags say
/// which inputs need one, so an op can skip work (the stem convolution's input gradient).
/// Shared, so that a pass that keeps the tape can call it while the tape still holds it.
pub type BackwardFn = Rc<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

/// A value on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(usize);

struct Node {
    /// The op that made it ("input" and "param" for leaves); for debugging and tests.
    op: &'static str,
    value: Tensor,
    inputs: Vec<usize>,
    backward: Option<BackwardFn>,
    param: Option<Rc<Param>>,
    requires_grad: bool,
}

pub struct Graph {
    gpu: Gpu,
    nodes: RefCell<Vec<Node>>,
    grad_enabled: bool,
    /// What layers store their convolutions' operands in (`Conv2d::forward`).
    precision: Precision,
}

impl Graph {
    /// A graph that records backward closures.
    pub fn new(gpu: &Gpu) -> Graph {
        Graph {
            gpu: gpu.clone(),
            nodes: RefCell::new(Vec::new()),
            grad_enabled: true,
            precision: Precision::F32,
        }
    }

    /// The same graph, its layers storing their convolutions' operands in `precision`.
    pub fn with_precision(self, precision: Precision) -> Graph {
        Graph { precision, ..self }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A graph for evaluation: ops run their forward only and keep nothing for backward.
    pub fn no_grad(gpu: &Gpu) -> Graph {
        Graph {
            grad_enabled: false,
            ..Graph::new(gpu)
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn push(&self, node: Node) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        Var(nodes.len() - 1)
    }

    /// A constant input (images, labels): no gradient flows into it.
    pub fn input(&self, value: Tensor) -> Var {
        self.push(Node {
            op: "input",
            value,
            inputs: vec![],
            backward: None,
            param: None,
            requires_grad: false,
        })
    }

    /// A parameter leaf: `backward()` accumulates its gradient into `param`.
    pub fn param(&self, param: &Rc<Param>) -> Var {
        let requires_grad = self.grad_enabled && param.trainable();
        self.push(Node {
            op: "param",
            value: param.value.clone(),
            inputs: vec![],
            backward: None,
            param: Some(Rc::clone(param)),
            requires_grad,
        })
    }

    pub fn value(&self, v: Var) -> Tensor {
        self.nodes.borrow()[v.0].value.clone()
    }

    /// The outputs of every node of one of `ops`, in creation order (to inspect activations).
    pub fn values_of(&self, ops: &[&str]) -> Vec<Tensor> {
        self.nodes
            .borrow()
            .iter()
            .filter(|n| ops.contains(&n.op))
            .map(|n| n.value.clone())
            .collect()
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes.borrow()[v.0].requires_grad
    }

    /// Appends an op's output. The closure is kept only if some input needs a gradient.
    pub fn record(
        &self,
        op: &'static str,
        value: Tensor,
        inputs: &[Var],
        backward: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + 'static,
    ) -> Var {
        let requires_grad = self.grad_enabled && inputs.iter().any(|&v| self.requires_grad(v));
        let backward: Option<BackwardFn> = if requires_grad {
            Some(Rc::new(backward))
        } else {
            None
        };
        self.push(Node {
            op,
            value,
            inputs: inputs.iter().map(|v| v.0).collect(),
            backward,
            param: None,
            requires_grad,
        })
    }

    /// Back-propagates from a one-element `loss`, accumulating into every parameter's gradient.
    /// Consumes the recorded closures: call it once per graph.
    pub fn backward(&self, loss: Var) -> Result<()> {
        if !self.requires_grad(loss) {
            return Err(Error::InvalidArgument(
                "backward: the loss does not depend on any trainable parameter".into(),
            ));
        }
        let reaches = self
            .nodes
            .borrow()
            .iter()
            .map(|n| n.requires_grad)
            .collect();
        self.propagate(loss, reaches, true)
    }

    /// Back-propagates from a one-element `loss` into `params` only: every other parameter is
    /// a constant for this pass, and ops whose inputs lead to none of `params` are skipped
    /// (the encoder's weight gradients in the localiser's pass). The closures are kept, so the
    /// graph can be back-propagated again from another loss.
    pub fn backward_into(&self, loss: Var, params: &[Rc<Param>]) -> Result<()> {
        let reaches: Vec<bool> = {
            let nodes = self.nodes.borrow();
            let mut reaches = Vec::with_capacity(nodes.len());
            for node in nodes.iter() {
                let r = node.requires_grad
                    && match &node.param {
                        Some(p) => params.iter().any(|q| Rc::ptr_eq(p, q)),
                        None => node.inputs.iter().any(|&j| reaches[j]),
                    };
                reaches.push(r);
            }
            reaches
        };
        if !reaches[loss.0] {
            return Err(Error::InvalidArgument(
                "backward_into: the loss does not depend on any of the given trainable \
                 parameters"
                    .into(),
            ));
        }
        self.propagate(loss, reaches, false)
    }

    /// The reverse walk: `reaches[i]` says whether node i leads to a parameter of this pass;
    /// `consume` drops each closure after its call.
    fn propagate(&self, loss: Var, reaches: Vec<bool>, consume: bool) -> Result<()> {
        let loss_value = self.value(loss);
        if loss_value.numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!(
                    "the loss must have one element, got {:?}",
                    loss_value.shape()
                ),
            ));
        }
        let n = self.nodes.borrow().len();
        let mut grads: Vec<Option<Tensor>> = vec![None; n];
        grads[loss.0] = Some(Tensor::full(&self.gpu, loss_value.shape(), 1.0)?);
        for i in (0..=loss.0).rev() {
            let Some(grad) = grads[i].take() else {
                continue;
            };
            let (backward, inputs, param) = {
                let mut nodes = self.nodes.borrow_mut();
                let node = &mut nodes[i];
                let backward = match consume {
                    true => node.backward.take(),
                    false => node.backward.clone(),
                };
                (backward, node.inputs.clone(), node.param.clone())
            };
            if let Some(p) = param {
                p.accumulate_grad(grad)?;
                continue;
            }
            let Some(backward) = backward else {
                if inputs.is_empty() {
                    continue;
                }
                return Err(Error::InvalidArgument(
                    "backward: called twice on the same graph".into(),
                ));
            };
            let needs: Vec<bool> = inputs.iter().map(|&j| reaches[j]).collect();
            let input_grads = backward(&grad, &needs)?;
            if input_grads.len() != inputs.len() {
                let op = self.nodes.borrow()[i].op;
                return Err(Error::InvalidArgument(format!(
                    "backward of {op}: {} gradients for its {} inputs; an op's backward returns \
                     one (or None) per input",
                    input_grads.len(),
                    inputs.len()
                )));
            }
            for ((&j, g), need) in inputs.iter().zip(input_grads).zip(needs) {
                let (Some(g), true) = (g, need) else { continue };
                grads[j] = Some(match grads[j].take() {
                    None => g,
                    Some(old) => old.add(&g)?,
                });
            }
        }
        Ok(())
    }
}
