//! Layer 2: the autograd tape and trainable parameters.

mod param;
mod tape;

pub use param::Param;
pub use tape::{BackwardFn, Graph, Var};
