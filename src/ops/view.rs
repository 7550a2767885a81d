//! Views that change only the shape: no kernel, the gradient is reshaped back.

use crate::autograd::{Graph, Var};
use crate::error::Result;

pub fn reshape(g: &Graph, x: Var, shape: &[usize]) -> Result<Var> {
    let xv = g.value(x);
    let y = xv.reshape(shape)?;
    let back = xv.shape().to_vec();
    Ok(g.record("reshape", y, &[x], move |dy, _| {
        Ok(vec![Some(dy.reshape(&back)?)])
    }))
}
