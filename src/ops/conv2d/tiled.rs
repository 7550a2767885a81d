//! Convolutions as an implicit GEMM with 64 x 64 workgroup-memory tiles
//! (`shaders/conv2d_tiled.wgsl`), the shape of a discrete GPU's convolution: the forward pass
//! (rows cout, columns the output pixels), the input gradient by stride phases (rows cin,
//! columns one phase's input pixels), the weight gradient with its long depth split over
//! workgroups and summed afterwards. Chosen when the adapter is not a CPU; on lavapipe it is
//! correct but slow (barriers are coroutine switches there), and tested there at every case.
//! The only convolution that reads f16 operands (x and the weights; dy is f32 always).

use super::ConvShape;
use crate::error::Result;
use crate::gpu::{uniform_struct, Access, Gpu, Kernel, Shader};
use crate::ops::reduce::sum_splits;
use crate::tensor::{DType, Tensor};

uniform_struct! {
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct TiledParams {
        n: u32,
        cin: u32,
        h: u32,
        w: u32,
        cout: u32,
        ho: u32,
        wo: u32,
        pad: u32,
        kh: u32,
        kw: u32,
        has_bias: u32,
        k_per_split: u32,
        m: u32,
        cols: u32,
        depth: u32,
        _pad0: u32,
        py: u32,
        px: u32,
        ry: u32,
        rx: u32,
        ph: u32,
        pw: u32,
        _pad1: u32,
        _pad2: u32,
    }
}

/// The side of the kernel's square tile of C, and its step along the depth.
const TILE: usize = 64;
const DEPTH: usize = 16;

/// The shader's values of PASS.
const FORWARD: u32 = 0;
const INPUT_GRADIENT: u32 = 1;
const WEIGHT_GRADIENT: u32 = 2;

/// The kernel of `pass`, reading its operands `lhs` and `rhs` in their storage types.
fn kernel(pass: u32, taps: (usize, usize), stride: usize, lhs: &Tensor, rhs: &Tensor) -> Kernel {
    Kernel::new(Shader::Conv2dTiled, "conv2d_tiled")
        .with("PASS", pass)
        .with("KH", taps.0 as u32)
        .with("KW", taps.1 as u32)
        .with("STRIDE", stride as u32)
        .storing("Lhs", lhs.dtype().storage())
        .storing("Rhs", rhs.dtype().storage())
}

fn base_params(s: &ConvShape) -> TiledParams {
    TiledParams {
        n: s.n as u32,
        cin: s.cin as u32,
        h: s.h as u32,
        w: s.w as u32,
        cout: s.cout as u32,
        ho: s.ho as u32,
        wo: s.wo as u32,
        pad: s.cfg.pad as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        ..Default::default()
    }
}

fn tiles(m: usize, cols: usize) -> usize {
    m.div_ceil(TILE) * cols.div_ceil(TILE)
}

/// y stored as `output` (f16: where batch norm reads it under `--precision f16`).
pub(super) fn forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: &ConvShape,
    output: DType,
) -> Result<Tensor> {
    let gpu = x.gpu();
    let y = Tensor::uninit_typed(gpu, &s.output(), output, "conv2d output")?;
    let depth = s.cin * s.kh * s.kw;
    let p = TiledParams {
        has_bias: bias.is_some() as u32,
        k_per_split: depth as u32,
        m: s.cout as u32,
        cols: (s.n * s.ho * s.wo) as u32,
        depth: depth as u32,
        ..base_params(s)
    };
    let bufs = [
        Access::Read(w.buffer()),
        Access::Read(x.buffer()),
        Access::Read(bias.unwrap_or(w).buffer()),
        Access::Write(y.buffer()),
    ];
    let k = kernel(FORWARD, (s.kh, s.kw), s.cfg.stride, w, x).storing("Res", output.storage());
    let groups = tiles(s.cout, s.n * s.ho * s.wo);
    gpu.dispatch(&k, &p, &bufs, groups as u32)?;
    Ok(y)
}

/// One stride phase of the input positions along one axis: positions `stride * i + p`
/// (`len` of them), reached by the taps `r + stride * t` (`taps` of them).
#[derive(Clone, Copy, Debug)]
struct Phase {
    p: usize,
    r: usize,
    taps: usize,
    len: usize,
}

/// The phases along an axis of `size` input positions, kernel `k`, padding `pad`: input
/// position `y` receives `dy[(y + pad - ky) / stride]` from the taps with
/// `ky = (y + pad) mod stride` (mod stride), so each phase's taps are one residue class.
fn phases(size: usize, k: usize, pad: usize, stride: usize) -> Vec<Phase> {
    (0..stride.min(size))
        .map(|p| {
            let r = (p + pad) % stride;
            Phase {
                p,
                r,
                taps: k.saturating_sub(r).div_ceil(stride),
                len: (size - p).div_ceil(stride),
            }
        })
        .collect()
}

/// dx, one product per (row, column) phase (one in all at stride 1). A phase no tap reaches
/// (the odd positions of a 1x1 stride-2 convolution) keeps the zeros it starts with.
pub(super) fn backward_input(dy: &Tensor, w: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let gpu = dy.gpu();
    let stride = s.cfg.stride;
    let rows = phases(s.h, s.kh, s.cfg.pad, stride);
    let columns = phases(s.w, s.kw, s.cfg.pad, stride);
    let shape = [s.n, s.cin, s.h, s.w];
    let unreached = rows.iter().any(|r| r.taps == 0) || columns.iter().any(|c| c.taps == 0);
    let dx = match unreached {
        true => Tensor::zeros(gpu, &shape)?,
        false => Tensor::uninit(gpu, &shape, "conv2d input gradient")?,
    };
    for py in &rows {
        for px in &columns {
            if py.taps == 0 || px.taps == 0 {
                continue;
            }
            let depth = s.cout * py.taps * px.taps;
            let cols = s.n * py.len * px.len;
            let p = TiledParams {
                k_per_split: depth as u32,
                m: s.cin as u32,
                cols: cols as u32,
                depth: depth as u32,
                py: py.p as u32,
                px: px.p as u32,
                ry: py.r as u32,
                rx: px.r as u32,
                ph: py.len as u32,
                pw: px.len as u32,
                ..base_params(s)
            };
            let bufs = [
                Access::Read(w.buffer()),
                Access::Read(dy.buffer()),
                Access::Read(w.buffer()),
                Access::Write(dx.buffer()),
            ];
            let k = kernel(INPUT_GRADIENT, (py.taps, px.taps), stride, w, dy);
            gpu.dispatch(&k, &p, &bufs, tiles(s.cin, cols) as u32)?;
        }
    }
    Ok(dx)
}

/// How many slices the weight gradient's depth is cut into: enough workgroups to fill the
/// device several times over (a GPU runs thousands at once), each slice still many steps long.
fn depth_splits(gpu: &Gpu, tiles: usize, depth: usize) -> usize {
    let target = if gpu.is_cpu() { 32 } else { 2048 };
    let most = depth.div_ceil(DEPTH * 8).max(1);
    (target / tiles).clamp(1, most)
}

/// dW[co, (ci, ky, kx)], the depth (images x output pixels) split over workgroups.
pub(super) fn backward_weight(x: &Tensor, dy: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let gpu = x.gpu();
    let depth = s.n * s.ho * s.wo;
    let cols = s.cin * s.kh * s.kw;
    let tiles = tiles(s.cout, cols);
    let splits = depth_splits(gpu, tiles, depth);
    // Slices a whole number of steps long, the last one shorter.
    let k_per_split = depth.div_ceil(splits).div_ceil(DEPTH) * DEPTH;
    let splits = depth.div_ceil(k_per_split);
    let w_shape = [s.cout, s.cin, s.kh, s.kw];
    let partial = Tensor::uninit(
        gpu,
        &[splits * s.cout * cols],
        "conv2d weight gradient parts",
    )?;
    let p = TiledParams {
        k_per_split: k_per_split as u32,
        m: s.cout as u32,
        cols: cols as u32,
        depth: depth as u32,
        ..base_params(s)
    };
    let bufs = [
        Access::Read(dy.buffer()),
        Access::Read(x.buffer()),
        Access::Read(dy.buffer()),
        Access::Write(partial.buffer()),
    ];
    let k = kernel(WEIGHT_GRADIENT, (s.kh, s.kw), s.cfg.stride, dy, x);
    gpu.dispatch(&k, &p, &bufs, (tiles * splits) as u32)?;
    match splits {
        1 => partial.reshape(&w_shape),
        _ => sum_splits(&partial, splits, &w_shape),
    }
}

#[cfg(test)]
mod tests {
    use super::phases;

    /// Every input position is in exactly one phase, and each phase's taps are exactly those
    /// kernel taps whose output row is a whole number.
    #[test]
    fn phases_cover_every_position_and_tap() {
        for stride in 1..=2 {
            for k in 1..=7 {
                for pad in 0..k {
                    for size in 1..=9 {
                        let ph = phases(size, k, pad, stride);
                        let mut seen = vec![0; size];
                        for p in &ph {
                            for i in 0..p.len {
                                seen[stride * i + p.p] += 1;
                            }
                            let reaching: Vec<usize> = (0..k)
                                .filter(|ky| (p.p + pad + stride - ky % stride) % stride == 0)
                                .collect();
                            let taps: Vec<usize> = (0..p.taps).map(|t| p.r + stride * t).collect();
                            assert_eq!(
                                taps, reaching,
                                "stride {stride} k {k} pad {pad} size {size}"
                            );
                        }
                        assert!(
                            seen.iter().all(|&c| c == 1),
                            "stride {stride} size {size}: {seen:?}"
                        );
                    }
                }
            }
        }
    }
}
