//! 2-D batch normalisation (`shaders/batchnorm.wgsl`), PyTorch semantics: batch statistics and
//! a momentum update of the running statistics in training mode, running statistics in eval.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        n: u32,
        c: u32,
        hw: u32,
        training: u32,
        momentum: f32,
        eps: f32,
        /// Lanes of a reduction workgroup that share one image (a power of 2 dividing WG).
        lanes_per_image: u32,
        _pad: u32,
    }
}

/// The running statistics and hyper-parameters of one batch-norm layer.
pub struct BatchNormState {
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f32,
    pub eps: f32,
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(Shader::BatchNorm, entry).with("WG", WG)
}

/// The largest power of 2 not above WG / n (at least 1): with few images, several lanes share
/// an image's pixels; with many, each lane takes whole images.
fn lanes_per_image(n: usize) -> u32 {
    let share = (WG as usize / n.max(1)).max(1);
    1 << share.ilog2()
}

fn params(x: &Tensor, c: usize, state: &BatchNormState, training: bool) -> Result<Params> {
    let s = x.shape();
    if s.len() != 4 || s[1] != c {
        return Err(Error::shape(
            "batch_norm",
            format!("input {s:?} must be NCHW with {c} channels"),
        ));
    }
    if state.running_mean.shape() != [c] || state.running_var.shape() != [c] {
        return Err(Error::shape(
            "batch_norm",
            format!(
                "running statistics {:?} / {:?} must be [{c}]",
                state.running_mean.shape(),
                state.running_var.shape()
            ),
        ));
    }
    if training && s[0] * s[2] * s[3] < 2 {
        return Err(Error::shape(
            "batch_norm",
            format!("training needs more than one value per channel, input is {s:?}"),
        ));
    }
    Ok(Params {
        n: s[0] as u32,
        c: c as u32,
        hw: (s[2] * s[3]) as u32,
        training: training as u32,
        momentum: state.momentum,
        eps: state.eps,
        lanes_per_image: lanes_per_image(s[0]),
        _pad: 0,
    })
}

/// Returns `(y, stats)` where `stats` = [mean; invstd] (2C) as used, for the backward pass.
/// In training mode the running statistics are updated in place.
pub fn batch_norm_forward(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    state: &BatchNormState,
    training: bool,
) -> Result<(Tensor, Tensor)> {
    let c = gamma.numel();
    if beta.numel() != c {
        return Err(Error::shape(
            "batch_norm",
            format!(
                "gamma {:?} and beta {:?} differ",
                gamma.shape(),
                beta.shape()
            ),
        ));
    }
    let p = params(x, c, state, training)?;
    let gpu = x.gpu();
    let stats = Tensor::uninit(gpu, &[2 * c], "batch-norm statistics")?;
    if training {
        let bufs = [
            Access::Read(x.buffer()),
            Access::Write(stats.buffer()),
            Access::Write(state.running_mean.buffer()),
            Access::Write(state.running_var.buffer()),
        ];
        gpu.dispatch(&kernel("bn_stats"), &p, &bufs, p.c)?;
    } else {
        let bufs = [
            Access::Read(state.running_mean.buffer()),
            Access::Read(state.running_var.buffer()),
            Access::Write(stats.buffer()),
        ];
        gpu.dispatch(&kernel("bn_eval_stats"), &p, &bufs, p.c.div_ceil(WG))?;
    }
    let y = x.like("batch-norm output")?;
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(stats.buffer()),
        Access::Read(gamma.buffer()),
        Access::Read(beta.buffer()),
        Access::Write(y.buffer()),
    ];
    gpu.dispatch(&kernel("bn_apply"), &p, &bufs, (p.n * p.c).div_ceil(WG))?;
    Ok((y, stats))
}

/// Returns `(dx, dgamma, dbeta)`.
pub fn batch_norm_backward(
    x: &Tensor,
    dy: &Tensor,
    gamma: &Tensor,
    stats: &Tensor,
    state: &BatchNormState,
    training: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let c = gamma.numel();
    let p = params(x, c, state, training)?;
    if dy.shape() != x.shape() {
        return Err(Error::shape(
            "batch_norm_backward",
            format!("gradient {:?} must match input {:?}", dy.shape(), x.shape()),
        ));
    }
    let gpu = x.gpu();
    let sums = Tensor::uninit(gpu, &[2 * c], "batch-norm gradient sums")?;
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(dy.buffer()),
        Access::Read(stats.buffer()),
        Access::Write(sums.buffer()),
    ];
    gpu.dispatch(&kernel("bn_backward_reduce"), &p, &bufs, p.c)?;
    let dx = x.like("batch-norm input gradient")?;
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(dy.buffer()),
        Access::Read(stats.buffer()),
        Access::Read(gamma.buffer()),
        Access::Read(sums.buffer()),
        Access::Write(dx.buffer()),
    ];
    gpu.dispatch(
        &kernel("bn_backward_input"),
        &p,
        &bufs,
        (p.n * p.c).div_ceil(WG),
    )?;
    let halves = split_halves(&sums, c)?;
    Ok((dx, halves.0, halves.1))
}

/// [dgamma; dbeta] (2C) -> (dgamma, dbeta), copied into tensors of their own.
fn split_halves(sums: &Tensor, c: usize) -> Result<(Tensor, Tensor)> {
    let gpu = sums.gpu();
    let (a, b) = (
        Tensor::uninit(gpu, &[c], "dgamma")?,
        Tensor::uninit(gpu, &[c], "dbeta")?,
    );
    gpu.copy(sums.buffer(), 0, a.buffer(), 0, 4 * c as u64);
    gpu.copy(sums.buffer(), 4 * c as u64, b.buffer(), 0, 4 * c as u64);
    Ok((a, b))
}

/// Records batch norm on the tape. `state` is shared with the layer that owns it.
pub fn batch_norm(
    g: &Graph,
    x: Var,
    gamma: Var,
    beta: Var,
    state: &std::rc::Rc<BatchNormState>,
    training: bool,
) -> Result<Var> {
    let (xv, gv) = (g.value(x), g.value(gamma));
    let (y, stats) = batch_norm_forward(&xv, &gv, &g.value(beta), state, training)?;
    let state = std::rc::Rc::clone(state);
    Ok(g.record("batch_norm", y, &[x, gamma, beta], move |dy, _| {
        let (dx, dgamma, dbeta) = batch_norm_backward(&xv, dy, &gv, &stats, &state, training)?;
        Ok(vec![Some(dx), Some(dgamma), Some(dbeta)])
    }))
}
