//! 2-D convolution: forward, input gradient, weight gradient, bias gradient, and the tape
//! record that ties them together. Several algorithms compute the same convolution; each lives
//! in its own file, [`ConvAlgo`] names them, and [`choose`] is the one place that picks one
//! for a pass on a device (`TAMING_CONV_ALGO` or the `_with` functions force one).
//!
//! - `direct.rs`: NCHW kernels over vec4 row windows (8 channels x 2 rows x 4 pixels per
//!   invocation).
//! - `im2col.rs`: the unfolded input and a product (forward, weight gradient; the input
//!   gradient as the transposed convolution at stride 1, as a product folded by col2im at
//!   stride 2).
//! - `igemm.rs`: implicit products over a channels-last input, one output pixel per lane with
//!   its output channels in registers (the shape a GPU's implicit GEMM starts from).
//! - `phases.rs`: stride-2 input gradients as four stride-1 convolutions, with the direct or
//!   the implicit-product kernel inside.
//! - `tiled.rs`: an implicit GEMM with 64 x 64 workgroup-memory tiles for discrete GPUs (all
//!   three passes; split-K weight gradients, stride phases inside its input gradient).

pub(crate) mod direct;
pub(crate) mod igemm;
pub(crate) mod im2col;
pub(crate) mod phases;
pub(crate) mod tiled;

use std::sync::OnceLock;

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::names::string_enum;
use crate::ops::reduce::sum_channels;
use crate::tensor::{require_f16, DType, Precision, Tensor};

pub use crate::shapes::{Conv2dConfig, ConvShape, Pass};

string_enum! {
    /// An algorithm for the convolution's passes.
    pub enum ConvAlgo as "convolution algorithm" {
        /// NCHW kernels over vec4 row windows, 8 output channels x 2 rows x 4 pixels per
        /// invocation (all three passes).
        Direct = "direct",
        /// The direct kernels with each subgroup loading what all its lanes share once and
        /// broadcasting it: the weights (forward pass, input gradient; kernels up to 4 wide;
        /// 16 channels per lane where they come in sixteens, else 8; a 3x3 stride-2 pad-1
        /// input gradient's four phases in one kernel), dy (weight gradient). Needs subgroups
        /// of 8 lanes or more.
        DirectSubgroup = "direct-subgroup",
        /// im2col and a product (forward pass and weight gradient; the input gradient at
        /// stride 1 with a square kernel and of 1x1 stride-2 kernels without padding as the
        /// forward pass of the transposed convolution, any other as the product of dy and the
        /// weights folded by col2im). With the 32-column subgroup product the unfolding is
        /// implicit: the product reads x itself (and a strided input gradient is one product
        /// per phase of dx that reads dy itself and writes dx, no fold).
        Im2col = "im2col",
        /// Implicit product over a channels-last input, one output pixel x 8-16 channels in
        /// registers per lane (all three passes).
        Igemm = "igemm",
        /// An implicit GEMM with 64 x 64 workgroup-memory tiles, 4 x 4 outputs per thread (all
        /// three passes): the discrete GPUs' kernel, chosen when the adapter is not a CPU.
        Tiled = "tiled",
    }
}

/// The environment variable that forces an algorithm for a whole run (where it applies).
pub const CONV_ALGO_ENV: &str = "TAMING_CONV_ALGO";

impl ConvAlgo {
    /// Whether this algorithm computes `pass` of `s` on `gpu`.
    pub fn accepts(self, pass: Pass, s: &ConvShape, gpu: &Gpu) -> bool {
        match self {
            ConvAlgo::Direct | ConvAlgo::Igemm | ConvAlgo::Tiled => true,
            ConvAlgo::DirectSubgroup => {
                direct::subgroup_weights_fit(gpu, s.kw, pass != Pass::WeightGradient)
            }
            ConvAlgo::Im2col => im2col::accepts(pass, s, gpu),
        }
    }
}

/// The automatic choice of an algorithm for `pass` of `s` on `gpu`, and why (each reason on a
/// CPU device a measurement on lavapipe, README: Performance; no GPU has run any of them yet).
pub fn choose(pass: Pass, s: &ConvShape, gpu: &Gpu) -> (ConvAlgo, &'static str) {
    if !gpu.is_cpu() {
        return (
            ConvAlgo::Tiled,
            "not a CPU device: the workgroup-tiled implicit GEMM, the shape of a discrete GPU's \
             convolution (the lavapipe kernels keep each operand in one invocation's registers \
             and share nothing through workgroup memory)",
        );
    }
    let subgroup = ConvAlgo::DirectSubgroup.accepts(pass, s, gpu);
    let narrow = s.wo < 16 && s.wo % 4 != 0 && im2col::fits(s, gpu);
    // The subgroup kernel's 16-channel form (channels in sixteens) holds twice the outputs per
    // input load of its 8-channel form.
    let sixteens = |channels: usize| subgroup && channels % 16 == 0;
    // im2col whose product loads its shared operand once per subgroup (broadcast-subgroup).
    let shared_product =
        im2col::accepts(pass, s, gpu) && im2col::product_shares_loads_for(pass, s, gpu);
    match pass {
        // At stride 2 a direct lane's row window serves 4 pixels per 3 loads (6 at stride 1).
        Pass::Forward if shared_product && s.cfg.stride == 2 => (
            ConvAlgo::Im2col,
            "stride 2, with a product that shares its loads through the subgroup: im2col \
             measured faster than the subgroup kernel at every stride-2 shape tried, 1.0-1.8x \
             (the small CNN's 64->128 on 9x9 maps, 500 views: 67 against 124 ms; ResNet-18's \
             128->256 16->8 at batch 64: 103 against 131 ms)",
        ),
        // The stems (1-3 input channels) stay direct: their products are too shallow (the
        // ResNet-18 stem's forward pass: 21.3 against 11.5 ms).
        Pass::Forward if shared_product && s.wo <= 16 && s.cin >= 8 => (
            ConvAlgo::Im2col,
            "maps up to 16 wide, with the 32-column subgroup product: im2col measured faster \
             than the subgroup kernel on ResNet-18's stride-1 maps of 16, 8 and 4 (118.7 \
             against 138.0, 106.0 against 134.3, 118.3 against 141.0 ms at batch 64; equal \
             at 32 wide), and the ResNet-18 step at 20x20 views, where maps are 10, 5 and 3 \
             wide, 1.1x faster",
        ),
        // At stride 2 the input gradient is the product of dy and the weights, folded.
        Pass::InputGradient if shared_product && s.cfg.stride == 2 => (
            ConvAlgo::Im2col,
            "stride 2, with a product that shares its loads through the subgroup: the product \
             of dy and the weights, folded by col2im, measured faster than the subgroup \
             kernel's four phases at once on the small CNN's conv3 (28-29 against 41 ms) and \
             ResNet-18's 16- and 8-wide maps (58 against 64-66, 50 against 64-65 ms at batch \
             64), equal on 18 and 32 wide maps, and with 32 or more input channels the phases \
             as products reading dy in place faster again (the small CNN's conv2 and conv3: \
             22.5-23.9 against 33-40, 19-23 against 30 ms); and the 1x1 shortcut's one phase \
             faster than the subgroup kernel's 1x1 sub-convolution (ResNet-18's 64->128: \
             15.7-18.9 against 13.4-13.8 GFLOP/s)",
        ),
        // At stride 1 the input gradient is the forward pass of the transposed convolution
        // (dx as wide as x, dy's channels as its input channels).
        Pass::InputGradient if shared_product && s.w <= 16 && s.cout >= 8 => (
            ConvAlgo::Im2col,
            "stride 1, maps up to 16 wide, with the 32-column subgroup product: im2col of the \
             transposed convolution measured faster than the subgroup kernel on ResNet-18's \
             16, 8 and 4 wide maps (118.5/122.5 against 152.1, 107.3/135.6 against 137.1, \
             124.1/119.8 against 147.2 ms at batch 64; equal at 32 wide)",
        ),
        Pass::WeightGradient if shared_product && s.wo < 32 => (
            ConvAlgo::Im2col,
            "maps narrower than 32, with a product that shares its loads through the \
             subgroup: im2col measured faster than the direct subgroup kernel at every \
             stride-2 shape tried (1.3-5.6x) and at stride 1 up to 16 wide (512->512 on 4x4: \
             53 against 105 ms); at 32 wide the direct kernel's blocks are full and it measured \
             faster (64->64 3x3: 34 against 43 ms at batch 16)",
        ),
        Pass::Forward if narrow && sixteens(s.cout) => (
            ConvAlgo::DirectSubgroup,
            "narrow output rows, output channels in sixteens: the 16-channel subgroup kernel \
             measured faster than im2col at 4 of 5 label-check shapes (1,000 views of \
             12-25 pixels; 175 against 201 ms on 17x17 views' 32->64 conv)",
        ),
        // Its lanes are input channels: fewer than 8 leave most of a subgroup idle, and on
        // narrow maps im2col measured faster (the small CNN's conv3: 77 against 158 ms).
        Pass::WeightGradient if subgroup && s.cin >= 8 && !narrow => (
            ConvAlgo::DirectSubgroup,
            "subgroups of 8 or more: one dy load per subgroup instead of one per lane \
             (2.4x faster on ResNet-18's 64->64 3x3 weight gradient)",
        ),
        Pass::Forward if narrow => (
            ConvAlgo::Im2col,
            "output rows narrower than 16 and not a multiple of 4: im2col measured faster than \
             either direct kernel (the small CNN's conv2: 51 against 61 ms)",
        ),
        Pass::Forward | Pass::InputGradient if subgroup => (
            ConvAlgo::DirectSubgroup,
            "subgroups of 8 or more: one weight load per subgroup instead of one per lane \
             (2-3x faster than the direct kernel on ResNet-18's 3x3 convolutions)",
        ),
        Pass::InputGradient => (
            ConvAlgo::Direct,
            "input gradients where im2col's product would load its operands per lane: the \
             direct kernel (by phases at stride 2)",
        ),
        _ if narrow => (
            ConvAlgo::Im2col,
            "output rows narrower than 16 and not a multiple of 4, where the direct kernel's \
             blocks of 4 pixels are part empty (faster on the small CNN's conv2 and conv3)",
        ),
        _ => (
            ConvAlgo::Direct,
            "the direct kernel: faster than the implicit product on every shape measured",
        ),
    }
}

/// The algorithm `TAMING_CONV_ALGO` names, if it is set.
pub fn forced_algo() -> Result<Option<ConvAlgo>> {
    static FORCED: OnceLock<std::result::Result<Option<ConvAlgo>, String>> = OnceLock::new();
    let forced = FORCED.get_or_init(|| crate::names::from_env(CONV_ALGO_ENV));
    forced.clone().map_err(Error::InvalidArgument)
}

/// Whether a pass reads f16 operands: an error for a u32 operand or a dy that is not f32, or
/// f16 on a device without SHADER_F16.
fn reads_f16(op: &str, operands: &[(&str, &Tensor)], dy: Option<&Tensor>) -> Result<bool> {
    if let Some(dtype) = dy.map(Tensor::dtype).filter(|&d| d != DType::F32) {
        return Err(Error::InvalidArgument(format!(
            "{op}: the gradient is {dtype:?}; it must be f32"
        )));
    }
    if let Some((name, t)) = operands.iter().find(|(_, t)| t.dtype() == DType::U32) {
        return Err(Error::InvalidArgument(format!(
            "{op}: the {name} is {:?}; it must be f32 or f16",
            t.dtype()
        )));
    }
    let half = operands.iter().any(|(_, t)| t.dtype() == DType::F16);
    if half {
        require_f16(operands[0].1.gpu())?;
    }
    Ok(half)
}

/// The algorithm a pass runs with: `requested` if given (an error if it does not compute that
/// pass), else `TAMING_CONV_ALGO` where it applies, else the automatic choice. f16 operands
/// (`half`) take the tiled convolution, the only one that reads them.
fn pick(
    pass: Pass,
    s: &ConvShape,
    gpu: &Gpu,
    requested: Option<ConvAlgo>,
    half: bool,
) -> Result<ConvAlgo> {
    if half {
        return match requested {
            None | Some(ConvAlgo::Tiled) => Ok(ConvAlgo::Tiled),
            Some(algo) => Err(Error::InvalidArgument(format!(
                "the {algo} convolution reads f32 operands only; f16 operands take the tiled \
                 convolution"
            ))),
        };
    }
    if let Some(algo) = requested {
        if !algo.accepts(pass, s, gpu) {
            return Err(Error::InvalidArgument(format!(
                "the {algo} convolution does not compute the {pass:?} pass of input {:?}",
                [s.n, s.cin, s.h, s.w]
            )));
        }
        return Ok(algo);
    }
    match forced_algo()? {
        Some(algo) if algo.accepts(pass, s, gpu) => Ok(algo),
        _ => Ok(choose(pass, s, gpu).0),
    }
}

pub fn conv2d_forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d_forward_with(x, w, bias, cfg, None)
}

/// The forward pass with `algo` (None: the usual choice).
pub fn conv2d_forward_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
    algo: Option<ConvAlgo>,
) -> Result<Tensor> {
    forward(x, w, bias, cfg, algo, Precision::F32)
}

/// The forward pass with y stored as `output` (f16: the tiled kernel, for batch norm to read
/// under `--precision f16`).
pub fn conv2d_forward_stored(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
    output: Precision,
) -> Result<Tensor> {
    forward(x, w, bias, cfg, None, output)
}

fn forward(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    cfg: Conv2dConfig,
    algo: Option<ConvAlgo>,
    output: Precision,
) -> Result<Tensor> {
    let s = ConvShape::new(x.shape(), w.shape(), cfg)?;
    let mut half = reads_f16("conv2d", &[("input", x), ("weight", w)], None)?;
    if output == Precision::F16 {
        require_f16(x.gpu())?;
        half = true;
    }
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
    if bias.is_some_and(|b| b.dtype() != DType::F32) {
        return Err(Error::InvalidArgument(
            "conv2d: the bias must be f32".into(),
        ));
    }
    match pick(Pass::Forward, &s, x.gpu(), algo, half)? {
        ConvAlgo::Direct => direct::forward(direct::Weights::PerLane, x, w, bias, &s),
        ConvAlgo::DirectSubgroup => direct::forward(direct::Weights::Subgroup, x, w, bias, &s),
        ConvAlgo::Im2col => im2col::forward(x, w, bias, &s),
        ConvAlgo::Igemm => igemm::forward(x, w, bias, &s),
        ConvAlgo::Tiled => tiled::forward(x, w, bias, &s, output.dtype()),
    }
}

pub fn conv2d_backward_input(
    dy: &Tensor,
    w: &Tensor,
    x_shape: &[usize],
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d_backward_input_with(dy, w, x_shape, cfg, None)
}

/// The input gradient with `algo` (None: the usual choice). At stride 2 it goes by phases
/// where they apply, with `algo` inside (the tiled kernel splits the phases itself, the
/// subgroup kernel computes a 3x3 pad-1 kernel's four phases in one pass, and im2col folds
/// the product of dy and the weights).
pub fn conv2d_backward_input_with(
    dy: &Tensor,
    w: &Tensor,
    x_shape: &[usize],
    cfg: Conv2dConfig,
    algo: Option<ConvAlgo>,
) -> Result<Tensor> {
    let s = ConvShape::new(x_shape, w.shape(), cfg)?;
    if dy.shape() != s.output() {
        return Err(Error::shape(
            "conv2d_backward_input",
            format!("gradient {:?} must be {:?}", dy.shape(), s.output()),
        ));
    }
    let half = reads_f16("conv2d_backward_input", &[("weight", w)], Some(dy))?;
    let algo = pick(Pass::InputGradient, &s, dy.gpu(), algo, half)?;
    // The algorithms that handle stride 2 themselves: the tiled kernel splits the phases, the
    // subgroup kernel computes a 3x3 pad-1 kernel's four at once, and im2col folds the
    // product of dy and the weights (the 1x1 shortcut: writes its single phase).
    match algo {
        ConvAlgo::Tiled => return tiled::backward_input(dy, w, &s),
        ConvAlgo::Im2col => return im2col::backward_input(dy, w, &s),
        ConvAlgo::DirectSubgroup if direct::all_phases_at_once(&s) => {
            return direct::backward_input_stride2(dy, w, &s)
        }
        _ => {}
    }
    if cfg.stride == 2 {
        if let Some(phases) = phases::stride2_phases(&s) {
            return phases::backward_input_by_phases(dy, w, &s, &phases, algo);
        }
    }
    match algo {
        ConvAlgo::Igemm => igemm::backward_input_dilated(dy, w, &s),
        ConvAlgo::DirectSubgroup => {
            direct::backward_input_dilated(direct::Weights::Subgroup, dy, w, &s)
        }
        _ => direct::backward_input_dilated(direct::Weights::PerLane, dy, w, &s),
    }
}

pub fn conv2d_backward_weight(
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    cfg: Conv2dConfig,
) -> Result<Tensor> {
    conv2d_backward_weight_with(x, dy, w_shape, cfg, None)
}

/// The weight gradient with `algo` (None: the usual choice).
pub fn conv2d_backward_weight_with(
    x: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    cfg: Conv2dConfig,
    algo: Option<ConvAlgo>,
) -> Result<Tensor> {
    let s = ConvShape::new(x.shape(), w_shape, cfg)?;
    if dy.shape() != s.output() {
        return Err(Error::shape(
            "conv2d_backward_weight",
            format!("gradient {:?} must be {:?}", dy.shape(), s.output()),
        ));
    }
    let half = reads_f16("conv2d_backward_weight", &[("input", x)], Some(dy))?;
    match pick(Pass::WeightGradient, &s, x.gpu(), algo, half)? {
        ConvAlgo::Direct => direct::backward_weight(direct::Weights::PerLane, x, dy, &s),
        ConvAlgo::DirectSubgroup => direct::backward_weight(direct::Weights::Subgroup, x, dy, &s),
        ConvAlgo::Im2col => im2col::backward_weight(x, dy, &s),
        ConvAlgo::Igemm => igemm::backward_weight(x, dy, &s),
        ConvAlgo::Tiled => tiled::backward_weight(x, dy, &s),
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
    conv2d_stored(g, x, w, bias, cfg, Precision::F32)
}

/// [`conv2d`] with y stored as `output` (f16: for batch norm to read under `--precision f16`).
pub fn conv2d_stored(
    g: &Graph,
    x: Var,
    w: Var,
    bias: Option<Var>,
    cfg: Conv2dConfig,
    output: Precision,
) -> Result<Var> {
    let (xv, wv) = (g.value(x), g.value(w));
    let bv = bias.map(|b| g.value(b));
    let y = conv2d_forward_stored(&xv, &wv, bv.as_ref(), cfg, output)?;
    let flops = ConvShape::new(xv.shape(), wv.shape(), cfg)?.flops();
    xv.gpu().add_flops(flops);
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(g.record("conv2d", y, &inputs, move |dy, needs| {
        // Each gradient pass does as many multiply-adds as the forward pass.
        let passes = needs[..2].iter().filter(|&&n| n).count();
        dy.gpu().add_flops(flops * passes as f64);
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
