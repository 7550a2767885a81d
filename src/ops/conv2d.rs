//! 2-D convolution (`shaders/conv2d.wgsl`): forward, input gradient, weight gradient, bias
//! gradient, and the tape record that ties them together.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{Access, Kernel, Shader};
use crate::ops::reduce::{sum_channels, sum_splits};
use crate::tensor::Tensor;

/// Square stride and zero padding, as in `torch.nn.Conv2d(stride=s, padding=p)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: usize,
    pub pad: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cin: u32,
    h: u32,
    w: u32,
    cout: u32,
    ho: u32,
    wo: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    splits: u32,
    _pad: [u32; 3],
}

/// Workgroup size of the convolution kernels (an `override` constant of the shader).
const CONV_WG: u32 = 64;

/// The dimensions of one convolution, checked once and shared by its three kernels.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
    pub cfg: Conv2dConfig,
}

impl ConvShape {
    pub fn new(x: &[usize], w: &[usize], cfg: Conv2dConfig) -> Result<ConvShape> {
        let bad = |d: String| Err(Error::shape("conv2d", d));
        if x.len() != 4 || w.len() != 4 {
            return bad(format!(
                "input {x:?} and weight {w:?} must both be 4-D (NCHW and [Cout, Cin, KH, KW])"
            ));
        }
        if x[1] != w[1] {
            return bad(format!(
                "input {x:?} has {} channels but weight {w:?} expects {}",
                x[1], w[1]
            ));
        }
        if cfg.stride == 0 {
            return bad("stride must be at least 1".into());
        }
        if x.contains(&0) || w.contains(&0) {
            return bad(format!(
                "input {x:?} and weight {w:?} must have no zero dimension"
            ));
        }
        let (hp, wp) = (x[2] + 2 * cfg.pad, x[3] + 2 * cfg.pad);
        if hp < w[2] || wp < w[3] {
            return bad(format!(
                "kernel {w:?} is larger than the padded input {x:?} (pad {})",
                cfg.pad
            ));
        }
        Ok(ConvShape {
            n: x[0],
            cin: x[1],
            h: x[2],
            w: x[3],
            cout: w[0],
            kh: w[2],
            kw: w[3],
            ho: (hp - w[2]) / cfg.stride + 1,
            wo: (wp - w[3]) / cfg.stride + 1,
            cfg,
        })
    }

    pub fn output(&self) -> [usize; 4] {
        [self.n, self.cout, self.ho, self.wo]
    }

    /// Multiply-adds of the forward pass (each backward pass does as many).
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.cout * self.ho * self.wo * self.cin * self.kh * self.kw) as f64
    }

    fn params(&self, has_bias: bool, splits: usize) -> Params {
        Params {
            n: self.n as u32,
            cin: self.cin as u32,
            h: self.h as u32,
            w: self.w as u32,
            cout: self.cout as u32,
            ho: self.ho as u32,
            wo: self.wo as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            stride: self.cfg.stride as u32,
            pad: self.cfg.pad as u32,
            has_bias: has_bias as u32,
            splits: splits as u32,
            _pad: [0; 3],
        }
    }

    fn taps(&self) -> usize {
        self.cin * self.kh * self.kw
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Conv2d, entry).with("WG", CONV_WG)
}

fn groups(invocations: usize) -> u32 {
    invocations.div_ceil(CONV_WG as usize) as u32
}

/// Re-lays out `w` for one of the two passes that read it (see the shader's header).
fn pack(
    w: &Tensor,
    s: &ConvShape,
    entry: &'static str,
    channels: usize,
    taps: usize,
) -> Result<Tensor> {
    let len = taps * channels.div_ceil(8) * 8;
    let packed = Tensor::uninit(w.gpu(), &[len], "packed conv weight")?;
    w.gpu().dispatch(
        &kernel(entry),
        &s.params(false, 1),
        &[Access::Read(w.buffer()), Access::Write(packed.buffer())],
        groups(len),
    )?;
    Ok(packed)
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
    let packed = pack(w, &s, "conv2d_pack_forward", s.cout, s.taps())?;
    let y = Tensor::uninit(x.gpu(), &s.output(), "conv2d output")?;
    // Without a bias the binding still needs a buffer; the kernel does not read it.
    let b = bias.unwrap_or(w);
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(packed.buffer()),
        Access::Read(b.buffer()),
        Access::Write(y.buffer()),
    ];
    let inv = s.n * s.cout.div_ceil(8) * (s.ho * s.wo).div_ceil(4);
    x.gpu().dispatch(
        &kernel("conv2d_forward"),
        &s.params(bias.is_some(), 1),
        &bufs,
        groups(inv),
    )?;
    Ok(y)
}

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
    let packed = pack(w, &s, "conv2d_pack_backward", s.cin, s.cout * s.kh * s.kw)?;
    let dx = Tensor::uninit(dy.gpu(), x_shape, "conv2d input gradient")?;
    let bufs = [
        Access::Read(dy.buffer()),
        Access::Read(packed.buffer()),
        Access::Write(dx.buffer()),
    ];
    let inv = s.n * s.cin.div_ceil(8) * (s.h * s.w).div_ceil(4);
    dy.gpu().dispatch(
        &kernel("conv2d_backward_input"),
        &s.params(false, 1),
        &bufs,
        groups(inv),
    )?;
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
    let blocks = s.cout.div_ceil(8) * s.taps().div_ceil(4);
    // Cut the long N*Ho*Wo reduction into parts until there are enough invocations to fill the
    // device: a few per core on a CPU device, tens of thousands on a GPU.
    let target = if x.gpu().is_cpu() { 512 } else { 65_536 };
    let positions = s.n * s.ho * s.wo;
    let splits = (target / blocks).clamp(1, (positions / 64).max(1));
    let len = s.cout * s.taps();
    let partial = Tensor::uninit(x.gpu(), &[splits * len], "conv2d weight gradient parts")?;
    let bufs = [
        Access::Read(x.buffer()),
        Access::Read(dy.buffer()),
        Access::Write(partial.buffer()),
    ];
    x.gpu().dispatch(
        &kernel("conv2d_backward_weight"),
        &s.params(false, splits),
        &bufs,
        groups(splits * blocks),
    )?;
    if splits == 1 {
        partial.reshape(w_shape)
    } else {
        sum_splits(&partial, splits, w_shape)
    }
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
