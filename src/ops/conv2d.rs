//! 2-D convolution (`shaders/conv2d.wgsl`): forward, input gradient, weight gradient, bias
//! gradient, and the tape record that ties them together.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader};
use crate::ops::linear::{linear_backward_weight, matmul_strided};
use crate::ops::reduce::{sum_channels, sum_splits};
use crate::tensor::Tensor;

pub use crate::shapes::{Conv2dConfig, ConvShape};

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

uniform_struct! {
    /// Parameters of `im2col` and `channels_last`.
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct ColParams {
        n: u32,
        cin: u32,
        h: u32,
        w: u32,
        ho: u32,
        wo: u32,
        kh: u32,
        kw: u32,
        stride: u32,
        pad: u32,
        transposed: u32,
        has_bias: u32,
    }
}

/// Workgroup size of every convolution kernel.
const CONV_WG: u32 = 64;

fn kernel(entry: &'static str, (kh, kw): (usize, usize), stride: usize) -> Kernel {
    Kernel::new(Shader::Conv2d, entry)
        .with("WG", CONV_WG)
        .with("KH", kh as u32)
        .with("KW", kw as u32)
        .with("STRIDE", stride as u32)
}

fn helper(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Conv2d, entry).with("WG", CONV_WG)
}

fn groups(invocations: usize) -> u32 {
    invocations.div_ceil(CONV_WG as usize) as u32
}

/// Length of a padded input row: a whole number of vec4s, long enough for the row window of
/// the last block of 4 outputs (`window_vec4s` in the shader, at least 2).
fn padded_row(wp: usize, wo: usize, kw: usize, stride: usize) -> usize {
    let window = ((3 * stride + kw - 1) / 4 + 1).max(2);
    4 * wp.div_ceil(4).max((wo.div_ceil(4) - 1) * stride + window)
}

/// `x` [N, C, H, W] spread `dil` (1 or 2: the shader divides by shifting) apart into a zero
/// [N, C, hp, wq] at offset (top, left).
fn pad_dilate(
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

/// Packs `w` for the forward kernel (`backward`: for the input-gradient convolution), output
/// channels padded to a multiple of 8.
fn pack(w: &Tensor, s: &ConvShape, backward: bool) -> Result<(Tensor, usize)> {
    let (rows, channels) = if backward {
        (s.cout * s.kh * s.kw, s.cin)
    } else {
        (s.cin * s.kh * s.kw, s.cout)
    };
    let cpad = channels.div_ceil(8) * 8;
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
    w.gpu()
        .dispatch(&helper(entry), &p, &bufs, groups(packed.numel()))?;
    Ok((packed, cpad))
}

/// The convolution kernel over a padded input `xp` [N, Cin, Hp, Wq]: `cout` output channels of
/// `ho` x `wo` with a `kh` x `kw` kernel.
#[allow(clippy::too_many_arguments)]
fn convolve(
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
    let invocations = xs[0] * (cpad / 8) * ho.div_ceil(2) * wo.div_ceil(4);
    xp.gpu().dispatch(
        &kernel("conv2d_forward", (kh, kw), stride),
        &p,
        &bufs,
        groups(invocations),
    )?;
    Ok(y)
}

pub fn conv2d_forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    let s = ConvShape::new(x.shape(), w.shape(), cfg)?;
    if let Some(b) = bias {
        if b.shape() != [s.cout] {
            return Err(Error::shape(
                "conv2d",
                format!(
                    "bias {:?} must be [{}] for weight {:?}",
                    b.shape(),
                    s.cout,
                    w.shape()
                ),
            ));
        }
    }
    let packed = pack(w, &s, false)?;
    if by_matmul(&s, x.gpu()) {
        return forward_by_matmul(x, &packed, bias, &s);
    }
    let xp = padded_input(x, &s)?;
    convolve(
        &xp,
        (&packed.0, packed.1),
        bias,
        s.cout,
        (s.kh, s.kw),
        cfg.stride,
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
pub fn conv2d_backward_input(
    dy: &Tensor,
    w: &Tensor,
    x_shape: &[usize],
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    let s = ConvShape::new(x_shape, w.shape(), cfg)?;
    if dy.shape() != s.output() {
        return Err(Error::shape(
            "conv2d_backward_input",
            format!("gradient {:?} must be {:?}", dy.shape(), s.output()),
        ));
    }
    if cfg.stride == 2 {
        if let Some(phases) = stride2_phases(&s) {
            return backward_input_by_phases(dy, w, &s, &phases);
        }
    }
    let (top, left) = (s.kh - 1 - cfg.pad, s.kw - 1 - cfg.pad);
    let hp = s.h + s.kh - 1;
    let wp = s.w + s.kw - 1;
    let dyp = pad_dilate(dy, top, left, hp, padded_row(wp, s.w, s.kw, 1), cfg.stride)?;
    let packed = pack(w, &s, true)?;
    convolve(
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

/// One of the four output phases of a stride-2 input gradient along one axis: the input
/// positions `2 i + p`, the kernel taps that reach them (`r`, `r + 2`, ...: `a` of them), the
/// number of such positions, and the zero padding the sub-convolution needs before `dy`.
#[derive(Clone, Copy, Debug)]
struct AxisPhase {
    p: usize,
    r: usize,
    a: usize,
    len: usize,
    before: usize,
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
fn stride2_phases(s: &ConvShape) -> Option<[(AxisPhase, AxisPhase); 4]> {
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
fn backward_input_by_phases(
    dy: &Tensor,
    w: &Tensor,
    s: &ConvShape,
    phases: &[(AxisPhase, AxisPhase); 4],
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
        let hp = py.len + py.a - 1;
        let wq = padded_row(px.len + px.a - 1, px.len, px.a, 1);
        let dyp = pad_dilate(dy, py.before, px.before, hp, wq, 1)?;
        let cpad = s.cin.div_ceil(8) * 8;
        let mut p = PhaseParams {
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
        let packed = Tensor::uninit(gpu, &[s.cout * py.a * px.a * cpad], "packed phase weight")?;
        let bufs = [Access::Read(w.buffer()), Access::Write(packed.buffer())];
        gpu.dispatch(&helper("pack_phase"), &p, &bufs, groups(packed.numel()))?;
        let part = convolve(
            &dyp,
            (&packed, cpad),
            None,
            s.cin,
            (py.a, px.a),
            1,
            (py.len, px.len),
            "conv2d input gradient phase",
        )?;
        p.planes = (s.n * s.cin) as u32;
        p.hy = py.len as u32;
        p.wx = px.len as u32;
        p.h = s.h as u32;
        p.w = s.w as u32;
        p.py = py.p as u32;
        p.px = px.p as u32;
        let bufs = [Access::Read(part.buffer()), Access::Write(dx.buffer())];
        gpu.dispatch(
            &helper("scatter_phase"),
            &p,
            &bufs,
            groups(s.n * s.cin * py.len),
        )?;
    }
    Ok(dx)
}

pub fn conv2d_backward_weight(
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    let s = ConvShape::new(x.shape(), w_shape, cfg)?;
    if dy.shape() != s.output() {
        return Err(Error::shape(
            "conv2d_backward_weight",
            format!("gradient {:?} must be {:?}", dy.shape(), s.output()),
        ));
    }
    if by_matmul(&s, x.gpu()) {
        return backward_weight_by_matmul(x, dy, &s);
    }
    let xp = padded_input(x, &s)?;
    let dyq = 4 * s.wo.div_ceil(4);
    let dyp = pad_dilate(dy, 0, 0, s.ho, dyq, 1)?;
    let lanes = s.cout.div_ceil(4) * s.cin;
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
    let k = kernel("conv2d_backward_weight", (s.kh, s.kw), cfg.stride);
    x.gpu().dispatch(&k, &p, &bufs, groups(splits * lanes))?;
    if splits == 1 {
        partial.reshape(w_shape)
    } else {
        sum_splits(&partial, splits, w_shape)
    }
}

/// Whether the forward pass and the weight gradient go through im2col and a matmul: for output
/// rows narrower than 16 and not a multiple of 4, where the direct kernels' blocks of 4 pixels
/// are part empty (a 5-wide row fills 5 of 8 lanes), and when the unfolded input fits one
/// binding.
fn by_matmul(s: &ConvShape, gpu: &crate::gpu::Gpu) -> bool {
    let col_bytes = 4 * (s.n * s.ho * s.wo * s.cin * s.kh * s.kw) as u64;
    s.wo < 16 && s.wo % 4 != 0 && col_bytes <= gpu.limits().max_storage_buffer_binding_size
}

/// The unfolded input: [N*Ho*Wo, Cin*KH*KW], one row per output pixel holding every input
/// value its taps see (zeros in the padding); `transposed`: [Cin*KH*KW, N*Ho*Wo].
fn im2col(x: &Tensor, s: &ConvShape, transposed: bool) -> Result<Tensor> {
    let (rows, taps) = (s.n * s.ho * s.wo, s.cin * s.kh * s.kw);
    let shape = if transposed {
        [taps, rows]
    } else {
        [rows, taps]
    };
    let cols = Tensor::uninit(x.gpu(), &shape, "im2col")?;
    let p = ColParams {
        n: s.n as u32,
        cin: s.cin as u32,
        h: s.h as u32,
        w: s.w as u32,
        ho: s.ho as u32,
        wo: s.wo as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        stride: s.cfg.stride as u32,
        pad: s.cfg.pad as u32,
        transposed: transposed as u32,
        has_bias: 0,
    };
    let bufs = [Access::Read(x.buffer()), Access::Write(cols.buffer())];
    x.gpu()
        .dispatch(&helper("im2col"), &p, &bufs, groups(s.n * s.ho * s.cin))?;
    Ok(cols)
}

/// y = im2col(x) W^T: the transposed unfolded input [Cin*KH*KW, N*Ho*Wo] times the packed
/// weights [Cin*KH*KW, Cpad] gives channels-last y [N*Ho*Wo, Cpad] (contiguous operands: the
/// vec4 matmul when N*Ho*Wo is a multiple of 4), turned back to NCHW with the bias added.
fn forward_by_matmul(
    x: &Tensor,
    (packed, cpad): &(Tensor, usize),
    bias: Option<&Tensor>,
    s: &ConvShape,
) -> Result<Tensor> {
    let gpu = x.gpu();
    let rows = s.n * s.ho * s.wo;
    let taps = s.cin * s.kh * s.kw;
    let cols = im2col(x, s, true)?;
    let y_last = matmul_strided(
        &cols,
        (1, rows),
        packed,
        (*cpad, 1),
        rows,
        *cpad,
        taps,
        "channels-last conv2d output",
    )?;
    let y = Tensor::uninit(gpu, &[s.n, s.cout, s.ho, s.wo], "conv2d output")?;
    let q = ColParams {
        n: s.n as u32,
        cin: s.cout as u32,
        h: s.ho as u32,
        w: s.wo as u32,
        kw: *cpad as u32,
        has_bias: bias.is_some() as u32,
        ..Default::default()
    };
    let b = bias.unwrap_or(&y_last);
    let bufs = [
        Access::Read(y_last.buffer()),
        Access::Write(y.buffer()),
        Access::Read(b.buffer()),
    ];
    gpu.dispatch(&helper("channels_first"), &q, &bufs, groups(s.n * s.cout))?;
    Ok(y)
}

/// dW [Cout, Cin*KH*KW] = dy_last^T im2col(x), with dy_last the output gradient channels-last
/// [N*Ho*Wo, Cout]: the linear layer's weight gradient.
fn backward_weight_by_matmul(x: &Tensor, dy: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let gpu = x.gpu();
    let rows = s.n * s.ho * s.wo;
    let cols = im2col(x, s, false)?;
    let dy_last = Tensor::uninit(gpu, &[rows, s.cout], "channels-last gradient")?;
    let q = ColParams {
        n: s.n as u32,
        cin: s.cout as u32,
        h: s.ho as u32,
        w: s.wo as u32,
        ..Default::default()
    };
    let bufs = [Access::Read(dy.buffer()), Access::Write(dy_last.buffer())];
    gpu.dispatch(&helper("channels_last"), &q, &bufs, groups(s.n * s.cout))?;
    linear_backward_weight(&cols, &dy_last)?.reshape(&[s.cout, s.cin, s.kh, s.kw])
}

/// The bias gradient: `dy` summed over the batch and the pixels.
pub fn conv2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    let d = dy.shape();
    if d.len() != 4 {
        return Err(Error::shape(
            "conv2d_backward_bias",
            format!("gradient {d:?} must be 4-D"),
        ));
    }
    sum_channels(dy, d[0], d[1], d[2] * d[3], 1.0)
}

/// Records `conv2d(x, w) + bias` on the tape.
pub fn conv2d(g: &Graph, x: Var, w: Var, bias: Option<Var>, cfg: Conv2dConfig) -> Result<Var> {
    let (xv, wv) = (g.value(x), g.value(w));
    let bv = bias.map(|b| g.value(b));
    let y = conv2d_forward(&xv, &wv, bv.as_ref(), cfg)?;
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(g.record("conv2d", y, &inputs, move |dy, needs| {
        let dx = if needs[0] {
            Some(conv2d_backward_input(dy, &wv, xv.shape(), cfg)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(conv2d_backward_weight(&xv, dy, wv.shape(), cfg)?)
        } else {
            None
        };
        let mut grads = vec![dx, dw];
        if needs.len() > 2 {
            grads.push(if needs[2] {
                Some(conv2d_backward_bias(dy)?)
            } else {
                None
            });
        }
        Ok(grads)
    }))
}
