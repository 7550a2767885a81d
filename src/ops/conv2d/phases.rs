//! Stride-2 input gradients by phases: four stride-1 convolutions of the undilated output
//! gradient, one per (row parity, column parity) of the input positions, each with the taps
//! of the kernel that reach that parity, interleaved into dx (`scatter_phase` in
//! `shaders/conv2d.wgsl`). The inner convolutions run with the direct or the implicit-product
//! kernels. (With subgroups, a 3x3 pad-1 kernel's phases go in one kernel instead:
//! `direct::backward_input_stride2`.)

use super::direct::{convolve, groups, helper, packed_channels, pad_dilate, padded_row, Weights};
use super::{igemm, ConvAlgo, ConvShape};
use crate::error::Result;
use crate::gpu::{uniform_struct, Access};
use crate::tensor::Tensor;

uniform_struct! {
    /// Parameters of `pack_phase` and `scatter_phase` (stride-2 input gradients).
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct PhaseParams {
        cout: u32,
        cin: u32,
        kh: u32,
        kw: u32,
        cpad: u32,
        /// Kernel row and column parity of the phase, and its sub-kernel size.
        ry: u32,
        rx: u32,
        ay: u32,
        ax: u32,
        /// scatter: planes, phase output size, full output size, output parity.
        planes: u32,
        hy: u32,
        wx: u32,
        h: u32,
        w: u32,
        py: u32,
        px: u32,
    }
}

/// One of the four output phases of a stride-2 input gradient along one axis: the input
/// positions `2 i + p`, the kernel taps that reach them (`r`, `r + 2`, ...: `a` of them), the
/// number of such positions, and the zero padding the sub-convolution needs before `dy`.
#[derive(Clone, Copy, Debug)]
pub(super) struct AxisPhase {
    pub p: usize,
    pub r: usize,
    pub a: usize,
    pub len: usize,
    pub before: usize,
}

/// Position `y = 2 i + p` receives `dy[(y + pad - k) / 2]` from the taps `k` of parity
/// `r = (p + pad) mod 2`, i.e. `k = r + 2 a'`, at `dy` row `i + c - a'` with
/// `c = (p + pad - r) / 2`. Flipping `a'` makes that a stride-1 correlation over `dy` padded
/// by `a - 1 - c` rows. None when that padding would be negative (not for pad < kernel / 2 + 1).
fn axis_phases(size: usize, k: usize, pad: usize) -> Option<[AxisPhase; 2]> {
    let phase = |p: usize| {
        let r = (p + pad) % 2;
        let a = (k.saturating_sub(r)).div_ceil(2);
        let len = size.saturating_sub(p).div_ceil(2);
        let c = (p + pad - r) / 2;
        let before = match a {
            0 => Some(0),
            _ => (a - 1).checked_sub(c),
        }?;
        Some(AxisPhase {
            p,
            r,
            a,
            len,
            before,
        })
    };
    Some([phase(0)?, phase(1)?])
}

/// The (row, column) phases of a stride-2 convolution's input gradient.
pub(super) fn stride2_phases(s: &ConvShape) -> Option<[(AxisPhase, AxisPhase); 4]> {
    let ys = axis_phases(s.h, s.kh, s.cfg.pad)?;
    let xs = axis_phases(s.w, s.kw, s.cfg.pad)?;
    Some([
        (ys[0], xs[0]),
        (ys[0], xs[1]),
        (ys[1], xs[0]),
        (ys[1], xs[1]),
    ])
}

/// The stride-2 input gradient as four stride-1 convolutions of the undilated `dy`, one per
/// (row parity, column parity) of the input positions, each with the sub-kernel of the taps
/// that reach that parity; their outputs are interleaved into dx. No multiply-add is by an
/// inserted zero (the dilated form wastes three in four).
pub(super) fn backward_input_by_phases(
    dy: &Tensor,
    w: &Tensor,
    s: &ConvShape,
    phases: &[(AxisPhase, AxisPhase); 4],
    algo: ConvAlgo,
) -> Result<Tensor> {
    let gpu = dy.gpu();
    let shape = [s.n, s.cin, s.h, s.w];
    // A phase without taps (1x1 kernels: odd positions) leaves zeros.
    let empty = phases
        .iter()
        .any(|(y, x)| (y.a == 0 || x.a == 0) && y.len > 0 && x.len > 0);
    let dx = match empty {
        true => Tensor::zeros(gpu, &shape)?,
        false => Tensor::uninit(gpu, &shape, "conv2d input gradient")?,
    };
    for &(py, px) in phases {
        if py.a == 0 || px.a == 0 || py.len == 0 || px.len == 0 {
            continue;
        }
        let cpad = packed_channels(s.cin);
        let p = PhaseParams {
            cout: s.cout as u32,
            cin: s.cin as u32,
            kh: s.kh as u32,
            kw: s.kw as u32,
            cpad: cpad as u32,
            ry: py.r as u32,
            rx: px.r as u32,
            ay: py.a as u32,
            ax: px.a as u32,
            ..Default::default()
        };
        let part = match algo {
            ConvAlgo::Igemm => {
                // The phase's taps ky = r + 2 (a - 1 - t), flipped: base r + 2 (a - 1), step -2.
                let taps = igemm::SubKernel {
                    size: (py.a, px.a),
                    base: (
                        (py.r + 2 * (py.a - 1)) as i32,
                        (px.r + 2 * (px.a - 1)) as i32,
                    ),
                    step: (-2, -2),
                };
                let padding = igemm::Padding {
                    before: (py.before, px.before),
                    dilation: 1,
                };
                igemm::backward_input_part(dy, w, s, taps, padding, (py.len, px.len))?
            }
            _ => {
                let hp = py.len + py.a - 1;
                let wq = padded_row(px.len + px.a - 1, px.len, px.a, 1);
                let dyp = pad_dilate(dy, py.before, px.before, hp, wq, 1)?;
                let packed =
                    Tensor::uninit(gpu, &[s.cout * py.a * px.a * cpad], "packed phase weight")?;
                let bufs = [Access::Read(w.buffer()), Access::Write(packed.buffer())];
                gpu.dispatch(&helper("pack_phase"), &p, &bufs, groups(packed.numel()))?;
                let weights = match algo {
                    ConvAlgo::DirectSubgroup => Weights::Subgroup,
                    _ => Weights::PerLane,
                };
                convolve(
                    weights,
                    &dyp,
                    (&packed, cpad),
                    None,
                    s.cin,
                    (py.a, px.a),
                    1,
                    (py.len, px.len),
                    "conv2d input gradient phase",
                )?
            }
        };
        scatter(&part, &dx, s, (py, px))?;
    }
    Ok(dx)
}

/// Writes `part` [N, Cin, phase rows, phase columns], the input gradient at the positions of
/// one phase, into those positions of `dx` [N, Cin, H, W] (`scatter_phase`).
pub(super) fn scatter(
    part: &Tensor,
    dx: &Tensor,
    s: &ConvShape,
    (py, px): (AxisPhase, AxisPhase),
) -> Result<()> {
    let p = PhaseParams {
        planes: (s.n * s.cin) as u32,
        hy: py.len as u32,
        wx: px.len as u32,
        h: s.h as u32,
        w: s.w as u32,
        py: py.p as u32,
        px: px.p as u32,
        ..Default::default()
    };
    let bufs = [Access::Read(part.buffer()), Access::Write(dx.buffer())];
    dx.gpu().dispatch(
        &helper("scatter_phase"),
        &p,
        &bufs,
        groups(s.n * s.cin * py.len),
    )
}
