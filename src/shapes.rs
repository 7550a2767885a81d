//! Shape arithmetic shared by the ops and their CPU references (no GPU, no tensors): what a
//! convolution's dimensions are, checked once.

use crate::error::{Error, Result};

/// A pass of a convolution or a product: the forward pass or one of the two gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    InputGradient,
    WeightGradient,
}

/// Square stride and zero padding, as in `torch.nn.Conv2d(stride=s, padding=p)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: usize,
    pub pad: usize,
}

/// The largest kernel side the convolution kernels handle (`window` in `shaders/conv2d.wgsl`).
pub const MAX_KW: usize = 5;

/// The dimensions of one convolution, checked once and shared by its passes.
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
        if !(1..=2).contains(&cfg.stride) || w[2] > MAX_KW || w[3] > MAX_KW {
            return bad(format!(
                "weight {w:?} with stride {}: supported are kernels up to {MAX_KW} x {MAX_KW} and strides 1 and 2",
                cfg.stride
            ));
        }
        if x.contains(&0) || w.contains(&0) {
            return bad(format!(
                "input {x:?} and weight {w:?} must have no zero dimension"
            ));
        }
        if cfg.pad >= w[2] || cfg.pad >= w[3] {
            return bad(format!(
                "padding {} must be smaller than the kernel {w:?}",
                cfg.pad
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

    /// Multiply-adds of the forward pass, 2 flops each (each backward pass does as many).
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.cout * self.ho * self.wo * self.cin * self.kh * self.kw) as f64
    }
}
