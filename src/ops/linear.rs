//! Fully connected layer `y = x W^T + b` (PyTorch layout: W is [out, in]) on the strided
//! matmul kernel of `shaders/matmul.wgsl`, which serves the forward pass and both gradients.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader};
use crate::ops::reduce::sum_channels;
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        m: u32,
        n: u32,
        k: u32,
        has_bias: u32,
        a_sm: u32,
        a_sk: u32,
        b_sk: u32,
        b_sn: u32,
    }
}

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct BroadcastParams {
        m: u32,
        n: u32,
        k: u32,
        a_sk: u32,
        b_sk: u32,
        c_sm: u32,
        c_sn: u32,
        _pad: u32,
    }
}

const MATMUL_WG: u32 = 64;
/// Lanes of `matmul_broadcast` on a CPU device: 16 lanes x 4 rows = 64 rows per workgroup, so
/// that a weight gradient's small dimension (e.g. 288 taps) leaves few lanes idle. On lavapipe
/// 16 and 32 measured alike on large products and 64 was slower on weight-gradient shapes; a
/// real GPU gets MATMUL_WG (16 would leave half of each 32-wide warp empty).
const CPU_BROADCAST_WG: u32 = 16;

/// A matrix operand: its buffer and the strides of its logical (row, column) indices.
struct Operand<'a> {
    t: &'a Tensor,
    row_stride: usize,
    col_stride: usize,
}

/// `[m, n] = A[m, k] * B[k, n] (+ bias)`.
fn matmul(
    a: Operand,
    b: Operand,
    bias: Option<&Tensor>,
    m: usize,
    n: usize,
    k: usize,
    what: &str,
) -> Result<Tensor> {
    let c = Tensor::uninit(a.t.gpu(), &[m, n], what)?;
    let bias_buf = bias.unwrap_or(b.t);
    let contiguous = bias.is_none()
        && a.row_stride == 1
        && b.col_stride == 1
        && [m, n, a.col_stride, b.row_stride]
            .iter()
            .all(|v| v % 4 == 0);
    if contiguous {
        matmul_broadcast(a, b, &c, (m, n, k))?;
        return Ok(c);
    }
    let p = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        has_bias: bias.is_some() as u32,
        a_sm: a.row_stride as u32,
        a_sk: a.col_stride as u32,
        b_sk: b.row_stride as u32,
        b_sn: b.col_stride as u32,
    };
    let bufs = [
        Access::Read(a.t.buffer()),
        Access::Read(b.t.buffer()),
        Access::Read(bias_buf.buffer()),
        Access::Write(c.buffer()),
    ];
    let blocks = m.div_ceil(4) * n.div_ceil(4);
    let k = Kernel::new(Shader::Matmul, "matmul").with("WG", MATMUL_WG);
    c.gpu()
        .dispatch(&k, &p, &bufs, (blocks as u32).div_ceil(MATMUL_WG))?;
    Ok(c)
}

/// `matmul_broadcast`, for operands contiguous along m (A) and n (B) and no bias: the lanes
/// take the larger of m and n (4 per lane), the workgroups the other (16 per workgroup); when
/// n is the larger the kernel computes C^T = B^T A^T and writes it transposed.
fn matmul_broadcast(
    a: Operand,
    b: Operand,
    c: &Tensor,
    (m, n, k): (usize, usize, usize),
) -> Result<()> {
    let swap = n > m;
    let (lane_op, shared_op) = if swap { (b, a) } else { (a, b) };
    let (rows, cols) = if swap { (n, m) } else { (m, n) };
    let q = BroadcastParams {
        m: rows as u32,
        n: cols as u32,
        k: k as u32,
        // The lane operand's step along k is its stride along k whichever side it came from.
        a_sk: if swap {
            lane_op.row_stride
        } else {
            lane_op.col_stride
        } as u32,
        b_sk: if swap {
            shared_op.col_stride
        } else {
            shared_op.row_stride
        } as u32,
        c_sm: if swap { 1 } else { n as u32 },
        c_sn: if swap { n as u32 } else { 1 },
        _pad: 0,
    };
    // Binding 3 (the bias of `matmul`) is not read; it still needs a buffer.
    let bufs = [
        Access::Read(lane_op.t.buffer()),
        Access::Read(shared_op.t.buffer()),
        Access::Read(shared_op.t.buffer()),
        Access::Write(c.buffer()),
    ];
    let gpu = c.gpu();
    let wg = if gpu.is_cpu() {
        CPU_BROADCAST_WG
    } else {
        MATMUL_WG
    };
    let kernel = Kernel::new(Shader::Matmul, "matmul_broadcast").with("WG", wg);
    let groups = rows.div_ceil(4 * wg as usize) * cols.div_ceil(16);
    gpu.dispatch(&kernel, &q, &bufs, groups as u32)
}

/// `C[m, n] = A[m, k] B[k, n]` with `A[i, k] = a[i * a_stride.0 + k * a_stride.1]` and
/// `B[k, j] = b[k * b_stride.0 + j * b_stride.1]` (for other ops' products, e.g. convolutions
/// by im2col).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(
    a: &Tensor,
    a_stride: (usize, usize),
    b: &Tensor,
    b_stride: (usize, usize),
    m: usize,
    n: usize,
    k: usize,
    what: &str,
) -> Result<Tensor> {
    let a = Operand {
        t: a,
        row_stride: a_stride.0,
        col_stride: a_stride.1,
    };
    let b = Operand {
        t: b,
        row_stride: b_stride.0,
        col_stride: b_stride.1,
    };
    matmul(a, b, None, m, n, k, what)
}

fn dims(x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
        return Err(Error::shape(
            "linear",
            format!("input {xs:?} must be [N, in] and weight {ws:?} [out, in]"),
        ));
    }
    Ok((xs[0], ws[1], ws[0]))
}

pub fn linear_forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, fin, fout) = dims(x, w)?;
    if let Some(b) = bias {
        if b.shape() != [fout] {
            return Err(Error::shape(
                "linear",
                format!(
                    "bias {:?} must be [{fout}] for weight {:?}",
                    b.shape(),
                    w.shape()
                ),
            ));
        }
    }
    let a = Operand {
        t: x,
        row_stride: fin,
        col_stride: 1,
    };
    let b = Operand {
        t: w,
        row_stride: 1,
        col_stride: fin,
    };
    matmul(a, b, bias, n, fout, fin, "linear output")
}

/// `dx = dy W`.
pub fn linear_backward_input(dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (ds, ws) = (dy.shape(), w.shape());
    if ds.len() != 2 || ws.len() != 2 || ds[1] != ws[0] {
        return Err(Error::shape(
            "linear_backward_input",
            format!("gradient {ds:?} does not fit weight {ws:?}"),
        ));
    }
    let a = Operand {
        t: dy,
        row_stride: ws[0],
        col_stride: 1,
    };
    let b = Operand {
        t: w,
        row_stride: ws[1],
        col_stride: 1,
    };
    matmul(a, b, None, ds[0], ws[1], ws[0], "linear input gradient")
}

/// `dW = dy^T x`.
pub fn linear_backward_weight(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (xs, ds) = (x.shape(), dy.shape());
    if xs.len() != 2 || ds.len() != 2 || xs[0] != ds[0] {
        return Err(Error::shape(
            "linear_backward_weight",
            format!("input {xs:?} and gradient {ds:?} differ in batch"),
        ));
    }
    let a = Operand {
        t: dy,
        row_stride: 1,
        col_stride: ds[1],
    };
    let b = Operand {
        t: x,
        row_stride: xs[1],
        col_stride: 1,
    };
    matmul(a, b, None, ds[1], xs[1], xs[0], "linear weight gradient")
}

pub fn linear_backward_bias(dy: &Tensor) -> Result<Tensor> {
    let d = dy.shape();
    if d.len() != 2 {
        return Err(Error::shape(
            "linear_backward_bias",
            format!("gradient {d:?} must be [N, out]"),
        ));
    }
    sum_channels(dy, d[0], d[1], 1, 1.0)
}

/// Multiply-adds of `[n, fin] x [fin, fout]`, counted as 2 flops each.
pub fn linear_flops(n: usize, fin: usize, fout: usize) -> f64 {
    2.0 * (n * fin * fout) as f64
}

pub fn linear(g: &Graph, x: Var, w: Var, bias: Option<Var>) -> Result<Var> {
    let (xv, wv) = (g.value(x), g.value(w));
    let y = linear_forward(&xv, &wv, bias.map(|b| g.value(b)).as_ref())?;
    let flops = linear_flops(xv.shape()[0], wv.shape()[1], wv.shape()[0]);
    xv.gpu().add_flops(flops);
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(g.record("linear", y, &inputs, move |dy, needs| {
        let passes = needs[..2].iter().filter(|&&n| n).count();
        dy.gpu().add_flops(flops * passes as f64);
        let dx = if needs[0] {
            Some(linear_backward_input(dy, &wv)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(linear_backward_weight(&xv, dy)?)
        } else {
            None
        };
        let mut grads = vec![dx, dw];
        if needs.len() > 2 {
            grads.push(if needs[2] {
                Some(linear_backward_bias(dy)?)
            } else {
                None
            });
        }
        Ok(grads)
    }))
}
