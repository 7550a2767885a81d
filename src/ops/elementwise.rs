//! ReLU, the residual addition and scaling (`shaders/elementwise.wgsl`).

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::{require_f16, DType, Precision, Tensor};

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        n: u32,
        bits: u32,
        alpha: f32,
        _pad: u32,
    }
}

fn launch(
    entry: &'static str,
    n: usize,
    alpha: f32,
    buffers: &[Access],
    gpu: &crate::Gpu,
) -> Result<()> {
    launch_with_bits(entry, n, 0, alpha, buffers, gpu)
}

/// `launch` with the parameters' `bits` word set (transpose: the row length).
fn launch_with_bits(
    entry: &'static str,
    n: usize,
    bits: u32,
    alpha: f32,
    buffers: &[Access],
    gpu: &crate::Gpu,
) -> Result<()> {
    let kernel = Kernel::new(Shader::Elementwise, entry);
    dispatch(kernel, n, (bits, alpha), buffers, gpu)
}

/// Dispatches `kernel`, an entry point of this shader that reads no parameter but the count
/// (its storage aliases set), over `n` elements.
pub(crate) fn launch_counted(
    kernel: Kernel,
    n: usize,
    buffers: &[Access],
    gpu: &crate::Gpu,
) -> Result<()> {
    dispatch(kernel, n, (0, 0.0), buffers, gpu)
}

fn dispatch(
    kernel: Kernel,
    n: usize,
    (bits, alpha): (u32, f32),
    buffers: &[Access],
    gpu: &crate::Gpu,
) -> Result<()> {
    let entry = kernel.entry;
    let n = u32::try_from(n)
        .map_err(|_| Error::InvalidArgument(format!("{entry}: {n} elements exceed u32")))?;
    let params = Params {
        n,
        bits,
        alpha,
        _pad: 0,
    };
    gpu.dispatch(&kernel.with("WG", WG), &params, buffers, n.div_ceil(4 * WG))
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("shapes differ: {:?} and {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(())
}

pub fn relu_forward(x: &Tensor) -> Result<Tensor> {
    let y = x.like("relu output")?;
    launch(
        "relu_forward",
        x.numel(),
        0.0,
        &[Access::Read(x.buffer()), Access::Write(y.buffer())],
        x.gpu(),
    )?;
    Ok(y)
}

/// `dx = dy` where the forward output `y` (f32, or f16: a residual block's under
/// `--precision f16`) was positive, else 0.
pub fn relu_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    same_shape("relu_backward", y, dy)?;
    let dx = dy.like("relu input gradient")?;
    let kernel =
        Kernel::new(Shader::Elementwise, "relu_backward").storing("Act", y.dtype().storage());
    let bufs = [
        Access::Read(y.buffer()),
        Access::Read(dy.buffer()),
        Access::Write(dx.buffer()),
    ];
    launch_counted(kernel, y.numel(), &bufs, y.gpu())?;
    Ok(dx)
}

pub fn add_forward(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.add(b)
}

/// `acc += src`, in place. `acc` and `src` must be different buffers (a kernel cannot read and
/// write one buffer through two bindings).
pub fn accumulate(acc: &Tensor, src: &Tensor) -> Result<()> {
    same_shape("accumulate", acc, src)?;
    if acc.same_buffer(src) {
        return Err(Error::InvalidArgument(
            "accumulate: acc and src share a buffer; use scale_forward(x, 2.0)".into(),
        ));
    }
    launch(
        "accumulate",
        acc.numel(),
        0.0,
        &[Access::Write(acc.buffer()), Access::Read(src.buffer())],
        acc.gpu(),
    )
}

pub fn scale_forward(x: &Tensor, alpha: f32) -> Result<Tensor> {
    let y = x.like("scale output")?;
    launch(
        "scale",
        x.numel(),
        alpha,
        &[Access::Read(x.buffer()), Access::Write(y.buffer())],
        x.gpu(),
    )?;
    Ok(y)
}

/// `x^T`: the transpose `[C, R]` of a matrix `[R, C]`.
pub fn transpose(x: &Tensor) -> Result<Tensor> {
    let &[rows, cols] = x.shape() else {
        return Err(Error::shape(
            "transpose",
            format!("{:?} is not a matrix [rows, columns]", x.shape()),
        ));
    };
    let y = Tensor::uninit(x.gpu(), &[cols, rows], "transpose")?;
    if y.numel() > 0 {
        launch_with_bits(
            "transpose",
            y.numel(),
            cols as u32,
            0.0,
            &[Access::Read(x.buffer()), Access::Write(y.buffer())],
            x.gpu(),
        )?;
    }
    Ok(y)
}

pub fn relu(g: &Graph, x: Var) -> Result<Var> {
    let y = relu_forward(&g.value(x))?;
    let saved = y.clone();
    Ok(g.record("relu", y, &[x], move |dy, _| {
        Ok(vec![Some(relu_backward(&saved, dy)?)])
    }))
}

/// `relu(h + shortcut)`, the end of a residual block, stored as `output`: one pass, and the
/// one output both the next block and the backward mask read (`relu_backward` on it gives
/// both inputs' gradient). The shortcut may be f16 (the
/// previous block's output under `--precision f16`), h is f32.
pub fn add_relu_forward(h: &Tensor, shortcut: &Tensor, output: Precision) -> Result<Tensor> {
    same_shape("add_relu", h, shortcut)?;
    if h.dtype() != DType::F32 || shortcut.dtype() == DType::U32 {
        return Err(Error::InvalidArgument(format!(
            "add_relu: {:?} and {:?} tensors; h must be f32, the shortcut f32 or f16",
            h.dtype(),
            shortcut.dtype()
        )));
    }
    if output == Precision::F16 || shortcut.dtype() == DType::F16 {
        require_f16(h.gpu())?;
    }
    let y = Tensor::uninit_typed(h.gpu(), h.shape(), output.dtype(), "add_relu output")?;
    let kernel = Kernel::new(Shader::Elementwise, "add_relu_forward")
        .storing("Shortcut", shortcut.dtype().storage())
        .storing("Act", output.dtype().storage());
    let bufs = [
        Access::Read(h.buffer()),
        Access::Read(shortcut.buffer()),
        Access::Write(y.buffer()),
    ];
    launch_counted(kernel, h.numel(), &bufs, h.gpu())?;
    Ok(y)
}

/// Records `relu(h + shortcut)` on the tape as one operation, its output stored as `output`.
pub fn add_relu(g: &Graph, h: Var, shortcut: Var, output: Precision) -> Result<Var> {
    let y = add_relu_forward(&g.value(h), &g.value(shortcut), output)?;
    let saved = y.clone();
    Ok(g.record("add_relu", y, &[h, shortcut], move |dy, _| {
        let dx = relu_backward(&saved, dy)?;
        Ok(vec![Some(dx.clone()), Some(dx)])
    }))
}

pub fn add(g: &Graph, a: Var, b: Var) -> Result<Var> {
    let c = add_forward(&g.value(a), &g.value(b))?;
    Ok(g.record("add", c, &[a, b], |dc, _| {
        Ok(vec![Some(dc.clone()), Some(dc.clone())])
    }))
}

pub fn scale(g: &Graph, x: Var, alpha: f32) -> Result<Var> {
    let y = scale_forward(&g.value(x), alpha)?;
    Ok(g.record("scale", y, &[x], move |dy, _| {
        Ok(vec![Some(scale_forward(dy, alpha)?)])
    }))
}
