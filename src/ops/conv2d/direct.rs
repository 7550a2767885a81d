//! The direct convolution kernels of `shaders/conv2d.wgsl` over an NCHW input padded with
//! vec4-aligned rows: forward (invocation -> 8 output channels x 2 rows x 4 pixels; with
//! subgroups and channels in sixteens, 16 channels x 1 row x 4 pixels), the input
//! gradient as the same kernel over the dilated gradient with flipped weights (or, at stride
//! 2, per phase; with subgroups, a 3x3 pad-1 kernel's four phases in one kernel), and the
//! weight gradient (invocation -> 4 output channels x one input channel
//! x all taps, the N*Ho rows cut into slices).

use super::ConvShape;
use crate::error::Result;
use crate::gpu::{uniform_struct, Access, Kernel, Shader};
use crate::ops::reduce::sum_splits;
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct PadParams {
        planes: u32,
        h: u32,
        w: u32,
        hp: u32,
        wq: u32,
        top: u32,
        left: u32,
        dil: u32,
    }
}

uniform_struct! {
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct PackParams {
        cout: u32,
        cin: u32,
        kh: u32,
        kw: u32,
        cpad: u32,
        _pad: [u32; 3],
    }
}

uniform_struct! {
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct ConvParams {
        n: u32,
        cin: u32,
        hp: u32,
        wq: u32,
        cout: u32,
        ho: u32,
        wo: u32,
        kh: u32,
        cpad: u32,
        has_bias: u32,
        rows_per_split: u32,
        /// The rows' length in the row-padded dy (read by the subgroup weight gradient only).
        dyq: u32,
    }
}

impl ConvParams {
    /// What both convolution kernels read: the padded input [N, Cin, Hp, Wq], the output
    /// channels and size, the kernel height; the pass-specific fields stay zero.
    fn over(xp: &Tensor, cout: usize, (ho, wo): (usize, usize), kh: usize) -> ConvParams {
        let xs = xp.shape();
        ConvParams {
            n: xs[0] as u32,
            cin: xs[1] as u32,
            hp: xs[2] as u32,
            wq: xs[3] as u32,
            cout: cout as u32,
            ho: ho as u32,
            wo: wo as u32,
            kh: kh as u32,
            ..Default::default()
        }
    }
}

/// Workgroup size of every convolution kernel.
const CONV_WG: u32 = 64;

pub(super) fn kernel(entry: &'static str, (kh, kw): (usize, usize), stride: usize) -> Kernel {
    Kernel::new(Shader::Conv2d, entry)
        .with("WG", CONV_WG)
        .with("KH", kh as u32)
        .with("KW", kw as u32)
        .with("STRIDE", stride as u32)
}

pub(super) fn helper(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Conv2d, entry).with("WG", CONV_WG)
}

pub(super) fn groups(invocations: usize) -> u32 {
    invocations.div_ceil(CONV_WG as usize) as u32
}

/// Length of a padded input row: a whole number of vec4s, long enough for the row window of
/// the last block of 4 outputs (`window_vec4s` in the shader, at least 2).
pub(super) fn padded_row(wp: usize, wo: usize, kw: usize, stride: usize) -> usize {
    let window = ((3 * stride + kw - 1) / 4 + 1).max(2);
    4 * wp.div_ceil(4).max((wo.div_ceil(4) - 1) * stride + window)
}

/// `x` [N, C, H, W] spread `dil` (1 or 2: the shader divides by shifting) apart into a zero
/// [N, C, hp, wq] at offset (top, left).
pub(super) fn pad_dilate(
    x: &Tensor,
    top: usize,
    left: usize,
    hp: usize,
    wq: usize,
    dil: usize,
) -> Result<Tensor> {
    let s = x.shape();
    if top == 0 && left == 0 && hp == s[2] && wq == s[3] && dil == 1 {
        return Ok(x.clone());
    }
    let out = Tensor::uninit(x.gpu(), &[s[0], s[1], hp, wq], "padded conv input")?;
    let p = PadParams {
        planes: (s[0] * s[1]) as u32,
        h: s[2] as u32,
        w: s[3] as u32,
        hp: hp as u32,
        wq: wq as u32,
        top: top as u32,
        left: left as u32,
        dil: dil as u32,
    };
    let bufs = [Access::Read(x.buffer()), Access::Write(out.buffer())];
    x.gpu()
        .dispatch(&helper("pad_dilate"), &p, &bufs, groups(s[0] * s[1] * hp))?;
    Ok(out)
}

/// The channels of packed weights: `channels` rounded up to whole blocks of 8.
pub(super) fn packed_channels(channels: usize) -> usize {
    channels.div_ceil(8) * 8
}

/// Packs `w` for the forward kernel (`backward`: for the input-gradient convolution), output
/// channels padded to a multiple of 8.
pub(super) fn pack(w: &Tensor, s: &ConvShape, backward: bool) -> Result<(Tensor, usize)> {
    let (rows, channels) = if backward {
        (s.cout * s.kh * s.kw, s.cin)
    } else {
        (s.cin * s.kh * s.kw, s.cout)
    };
    let cpad = packed_channels(channels);
    let packed = Tensor::uninit(w.gpu(), &[rows * cpad], "packed conv weight")?;
    let p = PackParams {
        cout: s.cout as u32,
        cin: s.cin as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        cpad: cpad as u32,
        _pad: [0; 3],
    };
    let entry = if backward {
        "pack_backward"
    } else {
        "pack_forward"
    };
    let bufs = [Access::Read(w.buffer()), Access::Write(packed.buffer())];
    // One invocation per packed row.
    w.gpu().dispatch(&helper(entry), &p, &bufs, groups(rows))?;
    Ok((packed, cpad))
}

/// How the kernels get the operand every lane of a workgroup shares (the weights of the forward
/// kernel, dy in the weight gradient): every lane loads it, or each subgroup loads it once and
/// broadcasts it (`shaders/conv2d_subgroup.wgsl`; needs `subgroup_weights_fit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Weights {
    PerLane,
    Subgroup,
}

/// Whether the subgroup kernels can run on `gpu`: subgroups of at least 8 lanes, and (forward
/// kernel, `forward`) the 2 x KW vec4s of a row of taps within 8 lanes.
pub(super) fn subgroup_weights_fit(gpu: &crate::gpu::Gpu, kw: usize, forward: bool) -> bool {
    gpu.has_subgroups_of(8) && (!forward || kw <= 4)
}

/// The convolution kernel over a padded input `xp` [N, Cin, Hp, Wq]: `cout` output channels of
/// `ho` x `wo` with a `kh` x `kw` kernel.
#[allow(clippy::too_many_arguments)]
pub(super) fn convolve(
    weights: Weights,
    xp: &Tensor,
    (packed, cpad): (&Tensor, usize),
    bias: Option<&Tensor>,
    cout: usize,
    (kh, kw): (usize, usize),
    stride: usize,
    (ho, wo): (usize, usize),
    what: &str,
) -> Result<Tensor> {
    let xs = xp.shape();
    let y = Tensor::uninit(xp.gpu(), &[xs[0], cout, ho, wo], what)?;
    let p = ConvParams {
        cpad: cpad as u32,
        has_bias: bias.is_some() as u32,
        ..ConvParams::over(xp, cout, (ho, wo), kh)
    };
    // Without a bias the binding still needs a buffer; the kernel does not read it.
    let b = bias.unwrap_or(packed);
    let bufs = [
        Access::Read(xp.buffer()),
        Access::Read(packed.buffer()),
        Access::Read(b.buffer()),
        Access::Write(y.buffer()),
    ];
    let positions = xs[0] * ho.div_ceil(2) * wo.div_ceil(4);
    match weights {
        Weights::PerLane => xp.gpu().dispatch(
            &kernel("conv2d_forward", (kh, kw), stride),
            &p,
            &bufs,
            groups(positions * (cpad / 8)),
        )?,
        // 16 channels per lane where they come in sixteens: twice the multiply-adds per
        // input load (1.2-1.4x faster on the small CNN's and the label check's maps).
        Weights::Subgroup if cpad % 16 == 0 => {
            let k = Kernel {
                shader: Shader::Conv2dSubgroup,
                ..kernel("conv2d_forward_shared16", (kh, kw), stride)
            };
            let row_positions = xs[0] * ho * wo.div_ceil(4);
            xp.gpu()
                .dispatch(&k, &p, &bufs, groups(row_positions) * (cpad / 16) as u32)?
        }
        Weights::Subgroup => {
            let k = kernel("conv2d_forward_shared", (kh, kw), stride);
            let k = Kernel {
                shader: Shader::Conv2dSubgroup,
                ..k
            };
            xp.gpu()
                .dispatch(&k, &p, &bufs, groups(positions) * (cpad / 8) as u32)?
        }
    }
    Ok(y)
}

/// y = conv(pad(x), w) + bias.
pub(super) fn forward(
    weights: Weights,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: &ConvShape,
) -> Result<Tensor> {
    let packed = pack(w, s, false)?;
    let xp = padded_input(x, s)?;
    convolve(
        weights,
        &xp,
        (&packed.0, packed.1),
        bias,
        s.cout,
        (s.kh, s.kw),
        s.cfg.stride,
        (s.ho, s.wo),
        "conv2d output",
    )
}

/// The forward pass's input, zero-padded, rows rounded up to whole vec4s.
fn padded_input(x: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let p = s.cfg.pad;
    pad_dilate(
        x,
        p,
        p,
        s.h + 2 * p,
        padded_row(s.w + 2 * p, s.wo, s.kw, s.cfg.stride),
        1,
    )
}

/// The input gradient as a stride-1 convolution of the dilated, padded output gradient with the
/// flipped weights. Rows the forward windows never reached (when (H + 2 pad - KH) is not a
/// multiple of the stride) get zero gradient from the extra bottom/right padding.
pub(super) fn backward_input_dilated(
    weights: Weights,
    dy: &Tensor,
    w: &Tensor,
    s: &ConvShape,
) -> Result<Tensor> {
    let cfg = s.cfg;
    let (top, left) = (s.kh - 1 - cfg.pad, s.kw - 1 - cfg.pad);
    let hp = s.h + s.kh - 1;
    let wp = s.w + s.kw - 1;
    let dyp = pad_dilate(dy, top, left, hp, padded_row(wp, s.w, s.kw, 1), cfg.stride)?;
    let packed = pack(w, s, true)?;
    convolve(
        weights,
        &dyp,
        (&packed.0, packed.1),
        None,
        s.cin,
        (s.kh, s.kw),
        1,
        (s.h, s.w),
        "conv2d input gradient",
    )
}

/// Whether `backward_input_stride2` computes the input gradient of `s` (with the subgroup
/// kernels, which need subgroups of 8 or more): 3x3 kernels at stride 2 with padding 1
/// (ResNet-18's and the small CNN's downsampling convolutions).
pub(super) fn all_phases_at_once(s: &ConvShape) -> bool {
    s.cfg.stride == 2 && s.cfg.pad == 1 && (s.kh, s.kw) == (3, 3)
}

/// The input gradient of a 3x3 stride-2 pad-1 convolution in one pass over dy, every tap
/// reaching one of a 2 x 2 block's four phases (`conv2d_backward_input_stride2_shared` in
/// `shaders/conv2d_subgroup.wgsl`): no padding copy, sub-kernel packing or interleaving per
/// phase as in `backward_input_by_phases`.
pub(super) fn backward_input_stride2(dy: &Tensor, w: &Tensor, s: &ConvShape) -> Result<Tensor> {
    // A lane covers 8 columns of dx, dy columns 4b..4b+4 (one vec4 and the next one's first):
    // rows of whole vec4s plus one, and a zero row below for dx's last odd row.
    let blocks_wide = s.w.div_ceil(8);
    let dyp = pad_dilate(dy, 0, 0, s.ho + 1, 4 * (blocks_wide + 1), 1)?;
    let (packed, cpad) = pack(w, s, true)?;
    let dx = Tensor::uninit(dy.gpu(), &[s.n, s.cin, s.h, s.w], "conv2d input gradient")?;
    let p = ConvParams {
        cpad: cpad as u32,
        ..ConvParams::over(&dyp, s.cin, (s.h, s.w), s.kh)
    };
    // The bias binding is not read; it still needs a buffer.
    let bufs = [
        Access::Read(dyp.buffer()),
        Access::Read(packed.buffer()),
        Access::Read(packed.buffer()),
        Access::Write(dx.buffer()),
    ];
    let k = Kernel {
        shader: Shader::Conv2dSubgroup,
        ..kernel("conv2d_backward_input_stride2_shared", (s.kh, s.kw), 2)
    };
    let cells = s.n * s.h.div_ceil(2) * blocks_wide;
    dy.gpu()
        .dispatch(&k, &p, &bufs, groups(cells) * (cpad / 4) as u32)?;
    Ok(dx)
}

/// The weight gradient, the N*Ho rows cut into slices summed afterwards.
pub(super) fn backward_weight(
    weights: Weights,
    x: &Tensor,
    dy: &Tensor,
    s: &ConvShape,
) -> Result<Tensor> {
    let cfg = s.cfg;
    let w_shape = [s.cout, s.cin, s.kh, s.kw];
    let xp = padded_input(x, s)?;
    // The subgroup kernel reads dy's rows as whole vec4s (rows padded to a multiple of 4); the
    // per-lane kernel reads them as they are, without the padding pass (ResNet-18's stem's
    // weight gradient 16.5-17.7 -> 12.0-12.3 ms, README: Performance).
    let dyq = 4 * s.wo.div_ceil(4);
    let dyp = match weights {
        Weights::PerLane => dy.clone(),
        Weights::Subgroup => pad_dilate(dy, 0, 0, s.ho, dyq, 1)?,
    };
    // Subgroup kernel: workgroups of up to 64 input channels, all of one block of 4 outputs.
    let lanes_per_group = (s.cin.div_ceil(8) * 8).min(CONV_WG as usize);
    let lanes = match weights {
        Weights::PerLane => s.cout.div_ceil(4) * s.cin,
        Weights::Subgroup => s.cout.div_ceil(4) * s.cin.div_ceil(lanes_per_group) * lanes_per_group,
    };
    // Cut the long N*Ho reduction into slices until there are enough invocations to fill the
    // device: a few workgroups per core on a CPU device, many thousands of lanes on a GPU.
    let target = if x.gpu().is_cpu() { 4096 } else { 262_144 };
    let rows = s.n * s.ho;
    let splits = (target / lanes).clamp(1, rows);
    let rows_per_split = rows.div_ceil(splits);
    let splits = rows.div_ceil(rows_per_split);
    let len = s.cout * s.cin * s.kh * s.kw;
    let partial = Tensor::uninit(x.gpu(), &[splits * len], "conv2d weight gradient parts")?;
    let p = ConvParams {
        rows_per_split: rows_per_split as u32,
        dyq: dyq as u32,
        ..ConvParams::over(&xp, s.cout, (s.ho, s.wo), s.kh)
    };
    let bufs = [
        Access::Read(xp.buffer()),
        Access::Read(dyp.buffer()),
        Access::Write(partial.buffer()),
    ];
    match weights {
        Weights::PerLane => {
            let k = kernel("conv2d_backward_weight", (s.kh, s.kw), cfg.stride);
            x.gpu().dispatch(&k, &p, &bufs, groups(splits * lanes))?;
        }
        Weights::Subgroup => {
            let k = Kernel {
                shader: Shader::Conv2dSubgroup,
                ..kernel("conv2d_backward_weight_shared", (s.kh, s.kw), cfg.stride)
            }
            .with("WG", lanes_per_group as u32);
            let workgroups = splits * lanes / lanes_per_group;
            x.gpu().dispatch(&k, &p, &bufs, workgroups as u32)?;
        }
    }
    if splits == 1 {
        partial.reshape(&w_shape)
    } else {
        sum_splits(&partial, splits, &w_shape)
    }
}
