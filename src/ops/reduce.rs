//! Sums over axes (`shaders/reduce.wgsl`): bias gradients, split-K partial sums, loss means.

use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        a: u32,
        b: u32,
        c: u32,
        splits: u32,
        len: u32,
        alpha: f32,
        _pad: [u32; 2],
    }
}

fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::shape(op, format!("size {v} exceeds u32")))
}

/// `x` seen as `[a, b, c]`; returns `alpha * sum over a and c`, shape `[b]`.
pub fn sum_channels(x: &Tensor, a: usize, b: usize, c: usize, alpha: f32) -> Result<Tensor> {
    if a * b * c != x.numel() {
        return Err(Error::shape(
            "sum_channels",
            format!("{:?} cannot be seen as [{a}, {b}, {c}]", x.shape()),
        ));
    }
    let out = Tensor::uninit(x.gpu(), &[b], "channel sums")?;
    let p = Params {
        a: u32_of("sum_channels", a)?,
        b: u32_of("sum_channels", b)?,
        c: u32_of("sum_channels", c)?,
        splits: 0,
        len: 0,
        alpha,
        _pad: [0; 2],
    };
    let k = Kernel::new(Shader::Reduce, "sum_channels").with("WG", WG);
    x.gpu().dispatch(
        &k,
        &p,
        &[Access::Read(x.buffer()), Access::Write(out.buffer())],
        p.b,
    )?;
    Ok(out)
}

/// `x` of `splits * len` values; returns the `len` sums over the leading axis, shaped `shape`.
pub fn sum_splits(x: &Tensor, splits: usize, shape: &[usize]) -> Result<Tensor> {
    let len: usize = shape.iter().product();
    if splits * len != x.numel() {
        return Err(Error::shape(
            "sum_splits",
            format!("{:?} is not {splits} x {shape:?}", x.shape()),
        ));
    }
    let out = Tensor::uninit(x.gpu(), shape, "split sums")?;
    let p = Params {
        a: 0,
        b: 0,
        c: 0,
        splits: u32_of("sum_splits", splits)?,
        len: u32_of("sum_splits", len)?,
        alpha: 1.0,
        _pad: [0; 2],
    };
    let k = Kernel::new(Shader::Reduce, "sum_splits").with("WG", WG);
    x.gpu().dispatch(
        &k,
        &p,
        &[Access::Read(x.buffer()), Access::Write(out.buffer())],
        p.len.div_ceil(WG),
    )?;
    Ok(out)
}
