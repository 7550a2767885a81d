//! Global average pooling (`shaders/pool.wgsl`): [N, C, H, W] -> [N, C].

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        rows: u32,
        hw: u32,
        _pad: [u32; 2],
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Pool, entry).with("WG", WG)
}

pub fn global_avg_pool_forward(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::shape(
            "global_avg_pool",
            format!("input {s:?} must be NCHW"),
        ));
    }
    let p = Params {
        rows: (s[0] * s[1]) as u32,
        hw: (s[2] * s[3]) as u32,
        _pad: [0; 2],
    };
    let y = Tensor::uninit(x.gpu(), &[s[0], s[1]], "pooled features")?;
    x.gpu().dispatch(
        &kernel("gap_forward"),
        &p,
        &[Access::Read(x.buffer()), Access::Write(y.buffer())],
        p.rows.div_ceil(WG),
    )?;
    Ok(y)
}

pub fn global_avg_pool_backward(dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    if x_shape.len() != 4 || dy.shape() != [x_shape[0], x_shape[1]] {
        return Err(Error::shape(
            "global_avg_pool_backward",
            format!("gradient {:?} does not fit input {x_shape:?}", dy.shape()),
        ));
    }
    let p = Params {
        rows: (x_shape[0] * x_shape[1]) as u32,
        hw: (x_shape[2] * x_shape[3]) as u32,
        _pad: [0; 2],
    };
    let dx = Tensor::uninit(dy.gpu(), x_shape, "pooling input gradient")?;
    let groups = (p.rows * p.hw).div_ceil(WG);
    dy.gpu().dispatch(
        &kernel("gap_backward"),
        &p,
        &[Access::Read(dy.buffer()), Access::Write(dx.buffer())],
        groups,
    )?;
    Ok(dx)
}

pub fn global_avg_pool(g: &Graph, x: Var) -> Result<Var> {
    let xv = g.value(x);
    let y = global_avg_pool_forward(&xv)?;
    let shape = xv.shape().to_vec();
    Ok(g.record("global_avg_pool", y, &[x], move |dy, _| {
        Ok(vec![Some(global_avg_pool_backward(dy, &shape)?)])
    }))
}
