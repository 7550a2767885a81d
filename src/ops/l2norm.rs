//! Row-wise L2 normalisation (`shaders/l2norm.wgsl`), as `F.normalize(x, dim=1)`.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        rows: u32,
        d: u32,
        eps: f32,
        _pad: u32,
    }
}

/// PyTorch's default: rows with a smaller norm are divided by this instead.
pub const L2NORM_EPS: f32 = 1e-12;
const L2_WG: u32 = 64;

fn params(x: &Tensor) -> Result<Params> {
    let s = x.shape();
    if s.len() != 2 {
        return Err(Error::shape(
            "l2_normalize",
            format!("input {s:?} must be [rows, features]"),
        ));
    }
    Ok(Params {
        rows: s[0] as u32,
        d: s[1] as u32,
        eps: L2NORM_EPS,
        _pad: 0,
    })
}

pub fn l2_normalize_forward(x: &Tensor) -> Result<Tensor> {
    let p = params(x)?;
    let y = x.like("normalised rows")?;
    let k = Kernel::new(Shader::L2Norm, "l2norm_forward").with("WG", L2_WG);
    x.gpu().dispatch(
        &k,
        &p,
        &[Access::Read(x.buffer()), Access::Write(y.buffer())],
        p.rows.div_ceil(L2_WG),
    )?;
    Ok(y)
}

pub fn l2_normalize_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let p = params(x)?;
    if dy.shape() != x.shape() {
        return Err(Error::shape(
            "l2_normalize_backward",
            format!("gradient {:?} must match input {:?}", dy.shape(), x.shape()),
        ));
    }
    let dx = x.like("normalisation input gradient")?;
    let k = Kernel::new(Shader::L2Norm, "l2norm_backward").with("WG", L2_WG);
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(dy.buffer()),
        Access::Write(dx.buffer()),
    ];
    x.gpu().dispatch(&k, &p, &bufs, p.rows.div_ceil(L2_WG))?;
    Ok(dx)
}

pub fn l2_normalize(g: &Graph, x: Var) -> Result<Var> {
    let xv = g.value(x);
    let y = l2_normalize_forward(&xv)?;
    Ok(g.record("l2_normalize", y, &[x], move |dy, _| {
        Ok(vec![Some(l2_normalize_backward(&xv, dy)?)])
    }))
}
