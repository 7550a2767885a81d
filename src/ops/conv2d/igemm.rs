//! Convolutions as an implicit product over a channels-last input (`shaders/conv2d_igemm.wgsl`):
//! lane -> one output pixel and CO output channels held in scalar registers (forward, and the
//! input gradient as the forward kernel over the padded, dilated or phase-split gradient), or
//! lane -> one output channel and 4*KV input channels of one tap (weight gradient). Correct on
//! every device and forceable (`ConvAlgo::Igemm`); not chosen automatically, since lavapipe runs
//! every storage load in a loop once per lane and this layout spends one vec4 load of weights
//! per 4 multiply-adds (the shader's header has the measurements).

use super::direct::pad_dilate;
use super::ConvShape;
use crate::error::Result;
use crate::gpu::{uniform_struct, Access, Gpu, Kernel, Shader};
use crate::ops::reduce::sum_splits;
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct NhwcParams {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        hp: u32,
        wp: u32,
        c4: u32,
        top: u32,
        left: u32,
        dil: u32,
        _pad: [u32; 2],
    }
}

uniform_struct! {
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct PackParams {
        cout: u32,
        cin: u32,
        kh: u32,
        kw: u32,
        th: u32,
        tw: u32,
        by: i32,
        bx: i32,
        sy: i32,
        sx: i32,
        c4: u32,
        cpad: u32,
        transposed: u32,
        c_real: u32,
        o_real: u32,
        _pad: u32,
    }
}

uniform_struct! {
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct IgemmParams {
        n: u32,
        hp: u32,
        wp: u32,
        c4: u32,
        cout: u32,
        ho: u32,
        wo: u32,
        cpad: u32,
        has_bias: u32,
        pixels: u32,
        co_blocks: u32,
        dyq: u32,
        rows_per_split: u32,
        k_blocks: u32,
        cin: u32,
        _pad: u32,
    }
}

/// Lanes of a workgroup.
const WG: u32 = 64;

/// The register tiles for this device: output channels per lane of the forward kernel, vec4s
/// of input channels per lane of the weight gradient. On a CPU device every scalar of a lane
/// is one SIMD register: AVX-512 machines have 32 of them, AVX2 machines 16, and each tile
/// leaves room for the 8 registers of its two vec4 operands. A GPU gets the larger tile.
pub(super) fn tiles(gpu: &Gpu) -> (u32, u32) {
    match gpu.vector_registers() {
        Some(r) if r >= 32 => (16, 4),
        Some(_) => (8, 2),
        None => (16, 4),
    }
}

fn kernel(entry: &'static str, gpu: &Gpu, (kh, kw): (usize, usize), stride: usize) -> Kernel {
    let (co, kv) = tiles(gpu);
    Kernel::new(Shader::Conv2dIgemm, entry)
        .with("WG", WG)
        .with("KH", kh as u32)
        .with("KW", kw as u32)
        .with("STRIDE", stride as u32)
        .with("CO", co)
        .with("KV", kv)
}

fn helper(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Conv2dIgemm, entry).with("WG", WG)
}

/// Zero padding before the first row and column (the rest is implied by the padded size), and
/// the spacing of the input's pixels in the padded grid (2: a stride-2 gradient dilated).
#[derive(Clone, Copy, Debug)]
pub(super) struct Padding {
    pub before: (usize, usize),
    pub dilation: usize,
}

/// The taps of `w` a convolution uses: ky = base.0 + step.0 * t for t < size.0 (columns
/// likewise). The forward pass: base 0, step 1; the input gradient: flipped (base K-1, step -1)
/// or one stride-2 phase's taps (step -2).
#[derive(Clone, Copy, Debug)]
pub(super) struct SubKernel {
    pub size: (usize, usize),
    pub base: (i32, i32),
    pub step: (i32, i32),
}

/// `x` [N, C, H, W] into the channels-last padded grid [N, hp, wp, ceil(C/4)] of vec4s.
fn pad_nhwc(x: &Tensor, padding: Padding, (hp, wp): (usize, usize)) -> Result<Tensor> {
    let s = x.shape();
    let c4 = s[1].div_ceil(4);
    let out = Tensor::uninit(
        x.gpu(),
        &[s[0] * hp * wp * c4 * 4],
        "channels-last padded input",
    )?;
    let p = NhwcParams {
        n: s[0] as u32,
        c: s[1] as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        hp: hp as u32,
        wp: wp as u32,
        c4: c4 as u32,
        top: padding.before.0 as u32,
        left: padding.before.1 as u32,
        dil: padding.dilation as u32,
        _pad: [0; 2],
    };
    let rows = s[0] * hp * c4;
    let bufs = [Access::Read(x.buffer()), Access::Write(out.buffer())];
    x.gpu().dispatch(
        &helper("pad_nhwc"),
        &p,
        &bufs,
        rows.div_ceil(WG as usize) as u32,
    )?;
    Ok(out)
}

/// The weights as rows (tap, input channel) x columns (output channel, padded to the tile),
/// for a convolution with `c` input and `o` output channels (`transposed`: w's Cout are the
/// input channels, as in the input gradient).
fn pack(w: &Tensor, taps: SubKernel, transposed: bool, co_tile: u32) -> Result<(Tensor, usize)> {
    let ws = w.shape();
    let (c, o) = match transposed {
        false => (ws[1], ws[0]),
        true => (ws[0], ws[1]),
    };
    let c4 = c.div_ceil(4);
    let cpad = o.div_ceil(co_tile as usize) * co_tile as usize;
    let len = taps.size.0 * taps.size.1 * c4 * 4 * cpad;
    let packed = Tensor::uninit(w.gpu(), &[len], "packed conv weight (channels last)")?;
    let p = PackParams {
        cout: ws[0] as u32,
        cin: ws[1] as u32,
        kh: ws[2] as u32,
        kw: ws[3] as u32,
        th: taps.size.0 as u32,
        tw: taps.size.1 as u32,
        by: taps.base.0,
        bx: taps.base.1,
        sy: taps.step.0,
        sx: taps.step.1,
        c4: c4 as u32,
        cpad: cpad as u32,
        transposed: transposed as u32,
        c_real: c as u32,
        o_real: o as u32,
        _pad: 0,
    };
    let bufs = [Access::Read(w.buffer()), Access::Write(packed.buffer())];
    w.gpu().dispatch(
        &helper("pack_igemm"),
        &p,
        &bufs,
        len.div_ceil(WG as usize) as u32,
    )?;
    Ok((packed, cpad))
}

/// The kernel proper: `xq` [n, hp, wp, c4] against packed weights, `cout` outputs of ho x wo.
#[allow(clippy::too_many_arguments)]
fn convolve(
    xq: &Tensor,
    (n, hp, wp, c4): (usize, usize, usize, usize),
    (packed, cpad): (&Tensor, usize),
    bias: Option<&Tensor>,
    cout: usize,
    taps: (usize, usize),
    stride: usize,
    (ho, wo): (usize, usize),
    what: &str,
) -> Result<Tensor> {
    let gpu = xq.gpu();
    let (co_tile, _) = tiles(gpu);
    let y = Tensor::uninit(gpu, &[n, cout, ho, wo], what)?;
    let pixels = n * ho * wo;
    let co_blocks = cpad / co_tile as usize;
    let p = IgemmParams {
        n: n as u32,
        hp: hp as u32,
        wp: wp as u32,
        c4: c4 as u32,
        cout: cout as u32,
        ho: ho as u32,
        wo: wo as u32,
        cpad: cpad as u32,
        has_bias: bias.is_some() as u32,
        pixels: pixels as u32,
        co_blocks: co_blocks as u32,
        ..Default::default()
    };
    // Without a bias the binding still needs a buffer; the kernel does not read it.
    let b = bias.unwrap_or(packed);
    let bufs = [
        Access::Read(xq.buffer()),
        Access::Read(packed.buffer()),
        Access::Read(b.buffer()),
        Access::Write(y.buffer()),
    ];
    let groups = pixels.div_ceil(WG as usize) * co_blocks;
    gpu.dispatch(
        &kernel("conv2d_igemm", gpu, taps, stride),
        &p,
        &bufs,
        groups as u32,
    )?;
    Ok(y)
}

/// y = conv(x, w) + bias.
pub(super) fn forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: &ConvShape,
) -> Result<Tensor> {
    let pad = s.cfg.pad;
    let (hp, wp) = (s.h + 2 * pad, s.w + 2 * pad);
    let padding = Padding {
        before: (pad, pad),
        dilation: 1,
    };
    let xq = pad_nhwc(x, padding, (hp, wp))?;
    let taps = SubKernel {
        size: (s.kh, s.kw),
        base: (0, 0),
        step: (1, 1),
    };
    let (co_tile, _) = tiles(x.gpu());
    let packed = pack(w, taps, false, co_tile)?;
    convolve(
        &xq,
        (s.n, hp, wp, s.cin.div_ceil(4)),
        (&packed.0, packed.1),
        bias,
        s.cout,
        (s.kh, s.kw),
        s.cfg.stride,
        (s.ho, s.wo),
        "conv2d output",
    )
}

/// A stride-1 convolution of `dy` (padded as `padding` says) with the `taps` of `w`
/// transposed, `out` = (rows, columns) of the result: the whole input gradient, or one phase.
pub(super) fn backward_input_part(
    dy: &Tensor,
    w: &Tensor,
    s: &ConvShape,
    taps: SubKernel,
    padding: Padding,
    out: (usize, usize),
) -> Result<Tensor> {
    let (hp, wp) = (out.0 + taps.size.0 - 1, out.1 + taps.size.1 - 1);
    let dyq = pad_nhwc(dy, padding, (hp, wp))?;
    let (co_tile, _) = tiles(dy.gpu());
    let packed = pack(w, taps, true, co_tile)?;
    convolve(
        &dyq,
        (s.n, hp, wp, s.cout.div_ceil(4)),
        (&packed.0, packed.1),
        None,
        s.cin,
        taps.size,
        1,
        out,
        "conv2d input gradient",
    )
}

/// The input gradient as one stride-1 convolution of the dilated, padded gradient with the
/// flipped weights (stride 1, or stride 2 where the phases do not apply).
pub(super) fn backward_input_dilated(dy: &Tensor, w: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let taps = SubKernel {
        size: (s.kh, s.kw),
        base: (s.kh as i32 - 1, s.kw as i32 - 1),
        step: (-1, -1),
    };
    let padding = Padding {
        before: (s.kh - 1 - s.cfg.pad, s.kw - 1 - s.cfg.pad),
        dilation: s.cfg.stride,
    };
    backward_input_part(dy, w, s, taps, padding, (s.h, s.w))
}

/// dW, the N*Ho rows cut into slices (enough workgroups for the device) summed afterwards.
pub(super) fn backward_weight(x: &Tensor, dy: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let gpu = x.gpu();
    let pad = s.cfg.pad;
    let (hp, wp) = (s.h + 2 * pad, s.w + 2 * pad);
    let padding = Padding {
        before: (pad, pad),
        dilation: 1,
    };
    let xq = pad_nhwc(x, padding, (hp, wp))?;
    let dyq = 4 * s.wo.div_ceil(4);
    let dyp = pad_dilate(dy, 0, 0, s.ho, dyq, 1)?;
    let (_, kv) = tiles(gpu);
    let c4 = s.cin.div_ceil(4);
    let k_blocks = s.kh * s.kw * c4.div_ceil(kv as usize);
    let lanes = (s.cout as u32).div_ceil(8).min(WG / 8) * 8;
    let co_groups = s.cout.div_ceil(lanes as usize);
    // Enough workgroups to keep every core busy for several rounds, each still summing many
    // rows: a CPU device runs a few workgroups per core at a time, a GPU thousands.
    let target = if gpu.is_cpu() { 64 } else { 4096 };
    let rows = s.n * s.ho;
    let splits = (target / (k_blocks * co_groups)).clamp(1, rows);
    let rows_per_split = rows.div_ceil(splits);
    let splits = rows.div_ceil(rows_per_split);
    let len = s.cout * s.cin * s.kh * s.kw;
    let partial = Tensor::uninit(gpu, &[splits * len], "conv2d weight gradient parts")?;
    let p = IgemmParams {
        n: s.n as u32,
        hp: hp as u32,
        wp: wp as u32,
        c4: c4 as u32,
        cout: s.cout as u32,
        ho: s.ho as u32,
        wo: s.wo as u32,
        dyq: dyq as u32,
        rows_per_split: rows_per_split as u32,
        k_blocks: k_blocks as u32,
        cin: s.cin as u32,
        ..Default::default()
    };
    let bufs = [
        Access::Read(xq.buffer()),
        Access::Read(dyp.buffer()),
        Access::Write(partial.buffer()),
    ];
    let k = kernel("conv2d_igemm_weight", gpu, (s.kh, s.kw), s.cfg.stride).with("WG", lanes);
    let groups = splits * k_blocks * co_groups;
    gpu.dispatch(&k, &p, &bufs, groups as u32)?;
    let w_shape = [s.cout, s.cin, s.kh, s.kw];
    if splits == 1 {
        partial.reshape(&w_shape)
    } else {
        sum_splits(&partial, splits, &w_shape)
    }
}
