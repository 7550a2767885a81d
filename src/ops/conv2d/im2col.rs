//! Convolutions as im2col and a product (`shaders/conv2d.wgsl`'s `im2col`, `channels_last`,
//! `channels_first`, then `shaders/matmul.wgsl`): the forward pass, the weight gradient, and
//! the input gradient: at stride 1 and of 1x1 stride-2 shortcuts the forward pass of the
//! transposed convolution, else the product of dy and the weights folded by `col2im` (or, with
//! the 32-column subgroup product, one product per phase of dx reading dy in place).
//! The unfolding writes whole vec4s where the layout allows (`im2col_rows4`, `im2col_taps4`:
//! 1.4-1.7x faster than one float per store on lavapipe, README: Performance). Where the
//! product is the 32-column subgroup kernel with the unfolded side on its lanes, the forward
//! and weight-gradient products read x in place of its unfolding (`ImplicitProduct`; the
//! forward product writes y in NCHW itself): on lavapipe a load costs per float, so the
//! unfolding pass was pure extra work.

use super::direct::{groups, helper, kernel, pack, packed_channels};
use super::phases::{scatter, AxisPhase};
use super::ConvShape;
use crate::error::Result;
use crate::gpu::{uniform_struct, Access};
use crate::ops::linear::{
    conv_forward_implicit, conv_input_grad_implicit, conv_weight_grad_implicit,
    linear_backward_weight, matmul_strided, product_shares_loads, ImplicitProduct,
};
use crate::shapes::Pass;
use crate::tensor::Tensor;

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

impl ColParams {
    /// The convolution `s`'s input, output and kernel; no layout flag, no bias.
    fn of(s: &ConvShape) -> ColParams {
        ColParams {
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
            ..Default::default()
        }
    }
}

/// Whether the unfolded input fits one storage binding.
pub(super) fn fits(s: &ConvShape, gpu: &crate::gpu::Gpu) -> bool {
    let col_bytes = 4 * (s.n * s.ho * s.wo * s.cin * s.kh * s.kw) as u64;
    col_bytes <= gpu.limits().max_storage_buffer_binding_size
}

/// The input gradient of a stride-1 convolution with a square kernel is itself a stride-1
/// convolution: of dy, padded by k - 1 - pad, with the flipped weights and the channel roles
/// swapped (`pack_backward`'s layout is the forward packing of those weights). A 1x1
/// convolution at stride 2 without padding (ResNet-18's shortcut) reads only the even
/// positions of x: its input gradient is zero elsewhere and there that of the same 1x1
/// convolution at stride 1. The shape of that convolution, when `s` has one.
fn transposed_shape(s: &ConvShape) -> Option<ConvShape> {
    let strided_1x1 = s.cfg.stride == 2 && (s.kh, s.kw, s.cfg.pad) == (1, 1, 0);
    if !(s.cfg.stride == 1 && s.kh == s.kw || strided_1x1) {
        return None;
    }
    let cfg = super::Conv2dConfig {
        stride: 1,
        pad: s.kh - 1 - s.cfg.pad,
    };
    ConvShape::new(&s.output(), &[s.cin, s.cout, s.kh, s.kw], cfg).ok()
}

/// Whether im2col computes `pass` of `s` on `gpu`: the forward pass and the weight gradient
/// when the unfolded input fits one binding; the input gradient at stride 1 with a square
/// kernel, or of a 1x1 stride-2 convolution without padding, when the unfolded dy does, and
/// every other one (`backward_input_folded`) when the unfolded input gradient does.
pub(super) fn accepts(pass: Pass, s: &ConvShape, gpu: &crate::gpu::Gpu) -> bool {
    match (pass, transposed_shape(s)) {
        (Pass::InputGradient, Some(t)) => fits(&t, gpu),
        _ => fits(s, gpu),
    }
}

/// Whether `pass`'s product (see `forward` and `backward_weight`) loads its shared operand once
/// per subgroup on `gpu`: with that product im2col measured faster than the direct kernels at
/// stride 2 (README: Performance).
pub(super) fn product_shares_loads_for(pass: Pass, s: &ConvShape, gpu: &crate::gpu::Gpu) -> bool {
    let (rows, taps) = (s.n * s.ho * s.wo, s.cin * s.kh * s.kw);
    match pass {
        Pass::Forward => {
            let cpad = packed_channels(s.cout);
            product_shares_loads((1, rows), (cpad, 1), (rows, cpad, taps), gpu)
        }
        // dW = dy_last^T cols: A = dy_last^T [Cout, rows], B = cols [rows, taps].
        Pass::WeightGradient => {
            product_shares_loads((1, s.cout), (taps, 1), (s.cout, taps, rows), gpu)
        }
        Pass::InputGradient => match transposed_shape(s) {
            Some(t) => product_shares_loads_for(Pass::Forward, &t, gpu),
            // dcols = dy_t^T W: A = dy_t [Cout, rows], B = W [Cout, taps].
            None => product_shares_loads((1, rows), (taps, 1), (rows, taps, s.cout), gpu),
        },
    }
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
        transposed: transposed as u32,
        ..ColParams::of(s)
    };
    let bufs = [Access::Read(x.buffer()), Access::Write(cols.buffer())];
    // vec4 stores where the layout allows them (whole vec4s along the contiguous side).
    let k = |entry| kernel(entry, (s.kh, s.kw), s.cfg.stride);
    let (entry, invocations) = if transposed && rows % 4 == 0 {
        (k("im2col_rows4"), s.cin * rows / 4)
    } else if !transposed && s.cin % 4 == 0 {
        (k("im2col_taps4"), rows * s.cin / 4)
    } else {
        (helper("im2col"), s.n * s.ho * s.cin)
    };
    x.gpu().dispatch(&entry, &p, &bufs, groups(invocations))?;
    Ok(cols)
}

/// y = im2col(x) W^T: the transposed unfolded input [Cin*KH*KW, N*Ho*Wo] times the packed
/// weights [Cin*KH*KW, Cpad] gives channels-last y [N*Ho*Wo, Cpad] (contiguous operands: the
/// vec4 matmul when N*Ho*Wo is a multiple of 4), turned back to NCHW with the bias added.
pub(super) fn forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: &ConvShape,
) -> Result<Tensor> {
    forward_packed(x, &pack(w, s, false)?, bias, s)
}

/// The input gradient as the forward pass of the transposed convolution (see
/// `transposed_shape`); for a 1x1 stride-2 convolution, written into the even positions of a
/// zero dx. Other shapes: `backward_input_folded`.
pub(super) fn backward_input(dy: &Tensor, w: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let Some(t) = transposed_shape(s) else {
        // Where the fold's product would be the 32-column subgroup kernel on dx's channels,
        // each phase of dx is a product that reads dy in place and writes dx itself.
        let cpad = packed_channels(s.cin);
        if (ImplicitProduct::InputGradient { cpad }).fits(s, dy.gpu()) {
            return conv_input_grad_implicit(dy, s, &pack(w, s, true)?.0, cpad);
        }
        return backward_input_folded(dy, w, s);
    };
    let part = forward_packed(dy, &pack(w, s, true)?, None, &t)?;
    if s.cfg.stride == 1 {
        return Ok(part);
    }
    let dx = Tensor::zeros(dy.gpu(), &[s.n, s.cin, s.h, s.w])?;
    let even = |size: usize| AxisPhase {
        p: 0,
        r: 0,
        a: 1,
        len: size.div_ceil(2),
        before: 0,
    };
    scatter(&part, &dx, s, (even(s.h), even(s.w)))?;
    Ok(dx)
}

/// The input gradient as the gradient of the unfolded input and its fold: dcols [N*Ho*Wo,
/// Cin*KH*KW] = dy_t^T W, with dy_t the output gradient as [Cout, N*Ho*Wo] (dy's own
/// unfolding with a 1x1 kernel) and W the weights as they are ([Cout, Cin*KH*KW]); then
/// `col2im` sums, for every input pixel, the entries of the taps that saw it. Any stride and
/// padding; the stride-2 convolutions have no transposed convolution of stride 1.
fn backward_input_folded(dy: &Tensor, w: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let gpu = dy.gpu();
    let (rows, taps) = (s.n * s.ho * s.wo, s.cin * s.kh * s.kw);
    let one_by_one = super::Conv2dConfig { stride: 1, pad: 0 };
    let dy_shape = ConvShape::new(&s.output(), &[1, s.cout, 1, 1], one_by_one)?;
    let dy_t = im2col(dy, &dy_shape, true)?;
    let dcols = matmul_strided(
        &dy_t,
        (1, rows),
        w,
        (taps, 1),
        rows,
        taps,
        s.cout,
        "unfolded conv2d input gradient",
    )?;
    let dx = Tensor::uninit(gpu, &[s.n, s.cin, s.h, s.w], "conv2d input gradient")?;
    let p = ColParams::of(s);
    let stride = s.cfg.stride;
    let k = kernel("col2im", (s.kh, s.kw), stride).with("PAD", s.cfg.pad as u32);
    let bufs = [Access::Read(dcols.buffer()), Access::Write(dx.buffer())];
    let blocks = s.n * s.cin * s.h.div_ceil(stride) * s.w.div_ceil(stride);
    gpu.dispatch(&k, &p, &bufs, groups(blocks))?;
    Ok(dx)
}

/// The forward pass with the weights already packed ([Cin*KH*KW, Cpad]).
fn forward_packed(
    x: &Tensor,
    (packed, cpad): &(Tensor, usize),
    bias: Option<&Tensor>,
    s: &ConvShape,
) -> Result<Tensor> {
    let gpu = x.gpu();
    let rows = s.n * s.ho * s.wo;
    let taps = s.cin * s.kh * s.kw;
    // Where the product is the 32-column subgroup kernel, it reads x itself and writes y
    // (1.1-1.2x faster than unfolding first, README: Performance).
    if (ImplicitProduct::Forward { cpad: *cpad }).fits(s, gpu) {
        return conv_forward_implicit(x, s, packed, *cpad, bias);
    }
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
pub(super) fn backward_weight(x: &Tensor, dy: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let gpu = x.gpu();
    let rows = s.n * s.ho * s.wo;
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
    // Where the product is the 32-column subgroup kernel, it reads x itself.
    let dw = if ImplicitProduct::WeightGradient.fits(s, gpu) {
        conv_weight_grad_implicit(x, s, &dy_last)?
    } else {
        linear_backward_weight(&im2col(x, s, false)?, &dy_last)?
    };
    dw.reshape(&[s.cout, s.cin, s.kh, s.kw])
}
