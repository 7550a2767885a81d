//! 2-D batch normalisation (`shaders/batchnorm.wgsl`), PyTorch semantics: batch statistics and
//! a momentum update of the running statistics in training mode, running statistics in eval.
//! Optionally with a ReLU fused after it ([`batch_norm_relu`]: no pass and no stored output
//! for the ReLU), and with its per-channel sums in workgroup memory or through subgroup
//! operations ([`BnReduction`]).

use std::sync::OnceLock;

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::Storage;
use crate::gpu::{uniform_struct, Access, Gpu, Kernel, Shader, WG};
use crate::names::string_enum;
use crate::tensor::{require_f16, DType, Precision, Tensor};

string_enum! {
    /// How batch norm's per-channel sums (statistics, gradient sums) are reduced.
    pub enum BnReduction as "batch-norm reduction" {
        /// A tree in workgroup memory: log2(256) = 8 barriers per sum; every device, chosen
        /// where there are no subgroups.
        Workgroup = "workgroup",
        /// One subgroupAdd per subgroup, then the first subgroup sums the subgroups' totals:
        /// 2 barriers per sum. Needs the SUBGROUP feature.
        Subgroup = "subgroup",
    }
}

/// The environment variable that forces a batch-norm reduction for a whole run (where the
/// device has it).
pub const BN_REDUCTION_ENV: &str = "TAMING_BN_REDUCTION";

impl BnReduction {
    /// Whether `gpu` runs this reduction.
    pub fn accepted_by(self, gpu: &Gpu) -> bool {
        match self {
            BnReduction::Workgroup => true,
            BnReduction::Subgroup => gpu.has_subgroups(),
        }
    }

    /// The automatic choice, and why.
    pub fn choose(gpu: &Gpu) -> (BnReduction, &'static str) {
        match gpu.has_subgroups() {
            true => (
                BnReduction::Subgroup,
                "subgroups: 2 barriers per sum instead of 8 (on lavapipe, batch 64 at 64x32x32: \
                 forward 8.5 against 10.0-12.3 ms, backward 13.0 against 13.8 ms)",
            ),
            false => (
                BnReduction::Workgroup,
                "no subgroup operations on this device",
            ),
        }
    }

    /// The reduction a pass runs with: `requested` (an error if `gpu` lacks it), else
    /// `TAMING_BN_REDUCTION` where it applies, else the automatic choice.
    fn pick(gpu: &Gpu, requested: Option<BnReduction>) -> Result<BnReduction> {
        static FORCED: OnceLock<std::result::Result<Option<BnReduction>, String>> = OnceLock::new();
        if let Some(r) = requested {
            if !r.accepted_by(gpu) {
                return Err(Error::InvalidArgument(format!(
                    "the {r} batch-norm reduction needs subgroup operations, which adapter {} \
                     does not offer",
                    gpu.adapter()
                )));
            }
            return Ok(r);
        }
        let forced = FORCED.get_or_init(|| crate::names::from_env(BN_REDUCTION_ENV));
        match forced.clone().map_err(Error::InvalidArgument)? {
            Some(r) if r.accepted_by(gpu) => Ok(r),
            _ => Ok(BnReduction::choose(gpu).0),
        }
    }

    /// The kernel `entry` of this reduction, reading x stored as `input`.
    fn kernel(self, entry: &'static str, relu: bool, input: DType) -> Kernel {
        let (shader, entry) = match self {
            BnReduction::Workgroup => (Shader::BatchNorm, entry),
            BnReduction::Subgroup => (
                Shader::BatchNormSubgroup,
                match entry {
                    "bn_stats" => "bn_stats_subgroup",
                    "bn_backward_reduce" => "bn_backward_reduce_subgroup",
                    other => other,
                },
            ),
        };
        Kernel::new(shader, entry)
            .with("WG", WG)
            .with("RELU", relu as u32)
            .storing("In", input.storage())
    }
}

/// What one batch-norm call runs: a fused ReLU or not, the reduction (None: the usual
/// choice), and what y is stored as (f16 where it goes straight into a convolution under
/// `--precision f16`; the backward pass never reads y).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BnOptions {
    pub relu: bool,
    pub reduction: Option<BnReduction>,
    pub output: Precision,
}

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

/// The largest power of 2 not above WG / n (at least 1): with few images, several lanes share
/// an image's pixels; with many, each lane takes whole images.
fn lanes_per_image(n: usize) -> u32 {
    let share = (WG as usize / n.max(1)).max(1);
    1 << share.ilog2()
}

fn params(x: &Tensor, c: usize, state: &BatchNormState, training: bool) -> Result<Params> {
    let s = x.shape();
    match x.dtype() {
        DType::F32 => {}
        DType::F16 => require_f16(x.gpu())?,
        DType::U32 => {
            return Err(Error::InvalidArgument(
                "batch_norm: the input is U32; it must be f32 or f16".into(),
            ))
        }
    }
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
    batch_norm_forward_with(x, gamma, beta, state, training, BnOptions::default())
}

/// [`batch_norm_forward`] with `options` (`relu`: y = max(batch_norm(x), 0)).
pub fn batch_norm_forward_with(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    state: &BatchNormState,
    training: bool,
    options: BnOptions,
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
    let reduction = BnReduction::pick(gpu, options.reduction)?;
    let kernel = |entry| reduction.kernel(entry, options.relu, x.dtype());
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
    let (y, apply) = match options.output {
        Precision::F32 => (x.like("batch-norm output")?, kernel("bn_apply")),
        Precision::F16 => {
            require_f16(gpu)?;
            let y = Tensor::uninit_typed(gpu, x.shape(), DType::F16, "batch-norm output")?;
            (y, kernel("bn_apply").storing("Out", Storage::F16))
        }
    };
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(stats.buffer()),
        Access::Read(gamma.buffer()),
        Access::Read(beta.buffer()),
        Access::Write(y.buffer()),
    ];
    gpu.dispatch(&apply, &p, &bufs, (p.n * p.c).div_ceil(WG))?;
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
    let beta = gamma; // read only with a fused ReLU
    batch_norm_backward_with(
        x,
        dy,
        (gamma, beta),
        stats,
        state,
        training,
        BnOptions::default(),
    )
}

/// [`batch_norm_backward`] with `options`; a fused ReLU needs beta to recompute its mask.
pub fn batch_norm_backward_with(
    x: &Tensor,
    dy: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    stats: &Tensor,
    state: &BatchNormState,
    training: bool,
    options: BnOptions,
) -> Result<(Tensor, Tensor, Tensor)> {
    let c = gamma.numel();
    let p = params(x, c, state, training)?;
    if beta.numel() != c {
        return Err(Error::shape(
            "batch_norm_backward",
            format!(
                "gamma {:?} and beta {:?} differ",
                gamma.shape(),
                beta.shape()
            ),
        ));
    }
    if dy.shape() != x.shape() {
        return Err(Error::shape(
            "batch_norm_backward",
            format!("gradient {:?} must match input {:?}", dy.shape(), x.shape()),
        ));
    }
    let gpu = x.gpu();
    let reduction = BnReduction::pick(gpu, options.reduction)?;
    let kernel = |entry| reduction.kernel(entry, options.relu, x.dtype());
    let sums = Tensor::uninit(gpu, &[2 * c], "batch-norm gradient sums")?;
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(dy.buffer()),
        Access::Read(stats.buffer()),
        Access::Write(sums.buffer()),
        Access::Read(gamma.buffer()),
        Access::Read(beta.buffer()),
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
        Access::Read(beta.buffer()),
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
    record(g, x, (gamma, beta), state, training, false, Precision::F32)
}

/// Records `relu(batch_norm(x))` on the tape as one operation: the ReLU costs no pass of its
/// own and keeps no output (its backward mask is recomputed from x and the statistics). The
/// output is stored as `output` (f16: for a convolution that reads it and nothing else, under
/// `--precision f16`).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_relu(
    g: &Graph,
    x: Var,
    gamma: Var,
    beta: Var,
    state: &std::rc::Rc<BatchNormState>,
    training: bool,
    output: Precision,
) -> Result<Var> {
    record(g, x, (gamma, beta), state, training, true, output)
}

fn record(
    g: &Graph,
    x: Var,
    (gamma, beta): (Var, Var),
    state: &std::rc::Rc<BatchNormState>,
    training: bool,
    relu: bool,
    output: Precision,
) -> Result<Var> {
    let (xv, gv, bv) = (g.value(x), g.value(gamma), g.value(beta));
    let options = BnOptions {
        relu,
        reduction: None,
        output,
    };
    let (y, stats) = batch_norm_forward_with(&xv, &gv, &bv, state, training, options)?;
    let state = std::rc::Rc::clone(state);
    let name = if relu {
        "batch_norm_relu"
    } else {
        "batch_norm"
    };
    Ok(g.record(name, y, &[x, gamma, beta], move |dy, _| {
        let (dx, dgamma, dbeta) =
            batch_norm_backward_with(&xv, dy, (&gv, &bv), &stats, &state, training, options)?;
        Ok(vec![Some(dx), Some(dgamma), Some(dbeta)])
    }))
}
