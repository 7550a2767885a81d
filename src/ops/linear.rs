//! Fully connected layer `y = x W^T + b` (PyTorch layout: W is [out, in]) and the products of
//! other ops, each pass one product `C = A B` read through strides. [`ProductAlgo`] names the
//! kernels (`shaders/matmul.wgsl` for CPU devices, `shaders/matmul_tiled.wgsl` for GPUs) and
//! `choose` is the one place that picks one (`TAMING_PRODUCT_ALGO` or the `_with` functions
//! force one).

use std::sync::OnceLock;

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Gpu, Kernel, Shader};
use crate::names::string_enum;
use crate::ops::reduce::sum_channels;
use crate::shapes::{ConvShape, Pass};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        m: u32,
        n: u32,
        k: u32,
        has_bias: u32,
        a_sm: u32,
        a_sk: u32,
        b_sk: u32,
        b_sn: u32,
    }
}

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct BroadcastParams {
        m: u32,
        n: u32,
        k: u32,
        a_sk: u32,
        b_sk: u32,
        c_sm: u32,
        c_sn: u32,
        _pad: u32,
    }
}

const MATMUL_WG: u32 = 64;
/// Lanes of `matmul_broadcast` on a CPU device: 16 lanes x 4 rows = 64 rows per workgroup, so
/// that a weight gradient's small dimension (e.g. 288 taps) leaves few lanes idle. On lavapipe
/// 16 and 32 measured alike on large products and 64 was slower on weight-gradient shapes; a
/// real GPU gets MATMUL_WG (16 would leave half of each 32-wide warp empty).
const CPU_BROADCAST_WG: u32 = 16;
/// The side of `matmul_tiled`'s square tile of C.
const TILE: usize = 64;

string_enum! {
    /// A kernel for the products of linear layers, NT-Xent's similarity matrix and the
    /// convolutions by im2col.
    pub enum ProductAlgo as "product algorithm" {
        /// 4x4 outputs per invocation read straight from memory, any strides, a bias.
        Strided = "strided",
        /// One operand's loads shared by a workgroup of SIMD lanes (a CPU device's kernel):
        /// operands contiguous along M and N, sides and k strides multiples of 4, no bias.
        Broadcast = "broadcast",
        /// The broadcast kernel with the shared operand loaded once per subgroup and handed to
        /// every lane by subgroup broadcasts (16 columns a workgroup, two k steps per load; 32
        /// columns, one step per load, where the shared side has 32 or more). Needs subgroups
        /// of 8 lanes or more, and what the broadcast kernel needs.
        BroadcastSubgroup = "broadcast-subgroup",
        /// 64x64 tiles of C staged through workgroup memory, 4x4 outputs per thread (the
        /// kernel for discrete GPUs): any strides, a bias.
        Tiled = "tiled",
    }
}

/// The environment variable that forces a product algorithm for a whole run (where it applies).
pub const PRODUCT_ALGO_ENV: &str = "TAMING_PRODUCT_ALGO";

/// A matrix operand's strides along its logical (row, column) indices.
#[derive(Clone, Copy, Debug)]
struct Strides {
    row: usize,
    col: usize,
}

/// A product's shape: `[m, n] = A[m, k] * B[k, n]` with A's and B's strides.
#[derive(Clone, Copy, Debug)]
struct Product {
    a: Strides,
    b: Strides,
    m: usize,
    n: usize,
    k: usize,
    bias: bool,
}

impl Product {
    /// A product of operands with (row, column) strides `a_stride` and `b_stride`.
    fn strided(
        a_stride: (usize, usize),
        b_stride: (usize, usize),
        (m, n, k): (usize, usize, usize),
        bias: bool,
    ) -> Product {
        let strides = |(row, col)| Strides { row, col };
        Product {
            a: strides(a_stride),
            b: strides(b_stride),
            m,
            n,
            k,
            bias,
        }
    }

    /// `matmul_broadcast`'s vec4 loads need A contiguous along m, B along n, and the sides and
    /// the k strides in whole vec4s.
    fn broadcastable(&self) -> bool {
        !self.bias
            && self.a.row == 1
            && self.b.col == 1
            && [self.m, self.n, self.a.col, self.b.row]
                .iter()
                .all(|v| v % 4 == 0)
    }

    /// The product of a linear layer's pass at `n` rows, `fin` inputs and `fout` outputs.
    fn of_linear(pass: Pass, n: usize, fin: usize, fout: usize, bias: bool) -> Product {
        let (a, b, m, cols, k) = match pass {
            // y = x W^T: A = x [n, fin], B = W^T.
            Pass::Forward => (
                Strides { row: fin, col: 1 },
                Strides { row: 1, col: fin },
                n,
                fout,
                fin,
            ),
            // dx = dy W: A = dy [n, fout], B = W [fout, fin].
            Pass::InputGradient => (
                Strides { row: fout, col: 1 },
                Strides { row: fin, col: 1 },
                n,
                fin,
                fout,
            ),
            // dW = dy^T x: A = dy^T, B = x [n, fin].
            Pass::WeightGradient => (
                Strides { row: 1, col: fout },
                Strides { row: fin, col: 1 },
                fout,
                fin,
                n,
            ),
        };
        Product {
            a,
            b,
            m,
            n: cols,
            k,
            bias: bias && pass == Pass::Forward,
        }
    }
}

impl ProductAlgo {
    fn accepts_product(self, p: &Product, gpu: &Gpu) -> bool {
        match self {
            ProductAlgo::Strided | ProductAlgo::Tiled => true,
            ProductAlgo::Broadcast => p.broadcastable(),
            ProductAlgo::BroadcastSubgroup => p.broadcastable() && gpu.has_subgroups_of(8),
        }
    }

    /// Whether this algorithm computes `pass` of a linear layer at `n` rows, `fin` inputs and
    /// `fout` outputs (with a bias in the forward pass if `bias`) on `gpu`.
    pub fn accepts_linear(
        self,
        pass: Pass,
        (n, fin, fout): (usize, usize, usize),
        bias: bool,
        gpu: &Gpu,
    ) -> bool {
        self.accepts_product(&Product::of_linear(pass, n, fin, fout, bias), gpu)
    }
}

/// The automatic choice of a product algorithm on `gpu`, and why.
fn choose(p: &Product, gpu: &Gpu) -> (ProductAlgo, &'static str) {
    if !gpu.is_cpu() {
        return (
            ProductAlgo::Tiled,
            "a GPU: each operand element read from memory once per 64x64 tile of C, not once \
             per row or column (not measured on a GPU yet)",
        );
    }
    if ProductAlgo::BroadcastSubgroup.accepts_product(p, gpu) {
        return (
            ProductAlgo::BroadcastSubgroup,
            "a CPU device with subgroups: one operand loaded once per subgroup and broadcast \
             to the lanes",
        );
    }
    if p.broadcastable() {
        return (
            ProductAlgo::Broadcast,
            "a CPU device: one operand's loads are shared by the lanes of a workgroup",
        );
    }
    (
        ProductAlgo::Strided,
        "a CPU device, operands not contiguous along M and N: 4x4 outputs per lane",
    )
}

/// The algorithm `TAMING_PRODUCT_ALGO` names, if it is set.
pub fn forced_product_algo() -> Result<Option<ProductAlgo>> {
    static FORCED: OnceLock<std::result::Result<Option<ProductAlgo>, String>> = OnceLock::new();
    let forced = FORCED.get_or_init(|| crate::names::from_env(PRODUCT_ALGO_ENV));
    forced.clone().map_err(Error::InvalidArgument)
}

/// The algorithm a product runs with: `requested` if given (an error if it cannot compute this
/// product), else `TAMING_PRODUCT_ALGO` where it applies, else the automatic choice.
fn pick(p: &Product, gpu: &Gpu, requested: Option<ProductAlgo>) -> Result<ProductAlgo> {
    if let Some(algo) = requested {
        if !algo.accepts_product(p, gpu) {
            return Err(Error::InvalidArgument(format!(
                "the {algo} product does not compute [{}, {}] x [{}, {}]{} with strides {:?} and {:?}",
                p.m,
                p.k,
                p.k,
                p.n,
                if p.bias { " + bias" } else { "" },
                p.a,
                p.b
            )));
        }
        return Ok(algo);
    }
    match forced_product_algo()? {
        Some(algo) if algo.accepts_product(p, gpu) => Ok(algo),
        _ => Ok(choose(p, gpu).0),
    }
}

/// A matrix operand: its buffer and the strides of its logical (row, column) indices.
struct Operand<'a> {
    t: &'a Tensor,
    row_stride: usize,
    col_stride: usize,
}

/// `[m, n] = A[m, k] * B[k, n] (+ bias)` with `algo` (None: the usual choice).
#[allow(clippy::too_many_arguments)]
fn matmul(
    a: Operand,
    b: Operand,
    bias: Option<&Tensor>,
    m: usize,
    n: usize,
    k: usize,
    what: &str,
    algo: Option<ProductAlgo>,
) -> Result<Tensor> {
    let c = Tensor::uninit(a.t.gpu(), &[m, n], what)?;
    let bias_buf = bias.unwrap_or(b.t);
    let product = Product::strided(
        (a.row_stride, a.col_stride),
        (b.row_stride, b.col_stride),
        (m, n, k),
        bias.is_some(),
    );
    let algo = pick(&product, c.gpu(), algo)?;
    if matches!(
        algo,
        ProductAlgo::Broadcast | ProductAlgo::BroadcastSubgroup
    ) {
        matmul_broadcast(a, b, &c, (m, n, k), algo == ProductAlgo::BroadcastSubgroup)?;
        return Ok(c);
    }
    let p = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        has_bias: bias.is_some() as u32,
        a_sm: a.row_stride as u32,
        a_sk: a.col_stride as u32,
        b_sk: b.row_stride as u32,
        b_sn: b.col_stride as u32,
    };
    let bufs = [
        Access::Read(a.t.buffer()),
        Access::Read(b.t.buffer()),
        Access::Read(bias_buf.buffer()),
        Access::Write(c.buffer()),
    ];
    let (kernel, groups) = match algo {
        ProductAlgo::Tiled => (
            Kernel::new(Shader::MatmulTiled, "matmul_tiled"),
            m.div_ceil(TILE) * n.div_ceil(TILE),
        ),
        _ => {
            let blocks = m.div_ceil(4) * n.div_ceil(4);
            (
                Kernel::new(Shader::Matmul, "matmul").with("WG", MATMUL_WG),
                blocks.div_ceil(MATMUL_WG as usize),
            )
        }
    };
    c.gpu().dispatch(&kernel, &p, &bufs, groups as u32)?;
    Ok(c)
}

/// `matmul_broadcast` (or with `subgroup`, `matmul_broadcast_subgroup`), for operands
/// contiguous along m (A) and n (B) and no bias: the lanes take the larger of m and n (4 per
/// lane), the workgroups the other (16 per workgroup); when n is the larger the kernel computes
/// C^T = B^T A^T and writes it transposed.
fn matmul_broadcast(
    a: Operand,
    b: Operand,
    c: &Tensor,
    (m, n, k): (usize, usize, usize),
    subgroup: bool,
) -> Result<()> {
    let (swap, rows, cols) = broadcast_split(m, n);
    let (lane_op, shared_op) = if swap { (b, a) } else { (a, b) };
    let q = BroadcastParams {
        m: rows as u32,
        n: cols as u32,
        k: k as u32,
        // The lane operand's step along k is its stride along k whichever side it came from.
        a_sk: if swap {
            lane_op.row_stride
        } else {
            lane_op.col_stride
        } as u32,
        b_sk: if swap {
            shared_op.col_stride
        } else {
            shared_op.row_stride
        } as u32,
        c_sm: if swap { 1 } else { n as u32 },
        c_sn: if swap { n as u32 } else { 1 },
        _pad: 0,
    };
    // Binding 3 (the bias of `matmul`) is not read; it still needs a buffer.
    let bufs = [
        Access::Read(lane_op.t.buffer()),
        Access::Read(shared_op.t.buffer()),
        Access::Read(shared_op.t.buffer()),
        Access::Write(c.buffer()),
    ];
    let gpu = c.gpu();
    let wg = broadcast_wg(gpu);
    // The subgroup kernel's 32-column form where the shared side fills it: 1 load per 64
    // multiply-adds a lane instead of 1 per 43 (1.2-2x faster on the im2col products).
    let wide = subgroup && cols >= WIDE_COLUMNS;
    let (entry, shader, tile_cols) = match (subgroup, wide) {
        (true, true) => ("matmul_broadcast_subgroup_wide", Shader::MatmulSubgroup, 32),
        (true, false) => ("matmul_broadcast_subgroup", Shader::MatmulSubgroup, 16),
        _ => ("matmul_broadcast", Shader::Matmul, 16),
    };
    let kernel = Kernel::new(shader, entry).with("WG", wg);
    let groups = rows.div_ceil(4 * wg as usize) * cols.div_ceil(tile_cols);
    gpu.dispatch(&kernel, &q, &bufs, groups as u32)
}

/// How `matmul_broadcast` lays out [m, n]: whether the lanes take n (the larger side: the
/// kernel then computes C^T), and the lanes' side and the workgroups' columns.
fn broadcast_split(m: usize, n: usize) -> (bool, usize, usize) {
    let swap = n > m;
    let (rows, cols) = if swap { (n, m) } else { (m, n) };
    (swap, rows, cols)
}

/// The columns of the 32-column subgroup kernel, taken where the workgroups' side fills them.
const WIDE_COLUMNS: usize = 32;

/// Lanes per workgroup of the broadcast kernels on `gpu`.
fn broadcast_wg(gpu: &Gpu) -> u32 {
    if gpu.is_cpu() {
        CPU_BROADCAST_WG
    } else {
        MATMUL_WG
    }
}

/// A product of a convolution that reads its input (x, or dy for the input gradient) in place
/// of its unfolding (`conv_forward_implicit`, `conv_weight_grad_implicit`,
/// `conv_input_grad_implicit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImplicitProduct {
    /// y = im2col(x) times the packed weights [Cin*KH*KW, Cpad].
    Forward { cpad: usize },
    /// dW [Cout, Cin*KH*KW] = dy_last^T im2col(x), dy_last being dy channels-last.
    WeightGradient,
    /// dx of a strided convolution, phase by phase: each phase's positions times the taps that
    /// reach them (the weights packed by `pack_backward`, [Cout*KH*KW, Cpad]).
    InputGradient { cpad: usize },
}

impl ImplicitProduct {
    /// Whether it computes this product of `s` on `gpu`: where the unfolded product would take
    /// the 32-column subgroup kernel with the unfolded input's side on the lanes.
    pub(crate) fn fits(self, s: &ConvShape, gpu: &Gpu) -> bool {
        let (rows, taps) = (s.n * s.ho * s.wo, s.cin * s.kh * s.kw);
        // The unfolded product's [m, n] and strides, and whether its lanes take n.
        let ((m, n, k), a, b, lanes_on_n) = match self {
            ImplicitProduct::Forward { cpad } => ((rows, cpad, taps), (1, rows), (cpad, 1), false),
            ImplicitProduct::WeightGradient => ((s.cout, taps, rows), (1, s.cout), (taps, 1), true),
            // A phase's product as if unfolded: its positions (the smallest phase's, rounded
            // up to the vec4s of an unfolding) times the taps that reach them.
            ImplicitProduct::InputGradient { cpad } => {
                let stride = s.cfg.stride;
                let phase = (s.n * (s.h / stride) * (s.w / stride)).next_multiple_of(4);
                let reach = s.cout * s.kh.div_ceil(stride) * s.kw.div_ceil(stride);
                ((phase, cpad, reach), (1, phase), (cpad, 1), false)
            }
        };
        let (swap, _, cols) = broadcast_split(m, n);
        swap == lanes_on_n && cols >= WIDE_COLUMNS && product_shares_loads(a, b, (m, n, k), gpu)
    }
}

/// y [N, Cout, Ho, Wo] = conv(x, w) (+ bias) by `conv2d_forward_implicit`, x read in place of
/// its unfolding, `packed` the weights as `pack_forward` lays them out ([Cin*KH*KW, cpad]).
/// For where `ImplicitProduct::Forward.fits`.
pub(crate) fn conv_forward_implicit(
    x: &Tensor,
    s: &ConvShape,
    packed: &Tensor,
    cpad: usize,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let y = Tensor::uninit(x.gpu(), &s.output(), "conv2d output")?;
    let rows = s.n * s.ho * s.wo;
    let q = implicit_params((rows, cpad, s.cin * s.kh * s.kw), cpad, (0, 0));
    let kernel = implicit_kernel("conv2d_forward_implicit", x.gpu(), s, [s.cin, s.h, s.w])
        .with("OUT_C", s.cout as u32)
        .with("OUT_H", s.ho as u32)
        .with("OUT_W", s.wo as u32)
        .with("HAS_BIAS", bias.is_some() as u32);
    dispatch_implicit(&kernel, &q, x, packed, bias.unwrap_or(packed), &y)?;
    Ok(y)
}

/// dW [Cout, Cin*KH*KW] of convolution `s` by `conv2d_weight_grad_implicit`, x read in place
/// of its unfolding, `dy_last` the output gradient channels-last [N*Ho*Wo, Cout]. For where
/// `ImplicitProduct::WeightGradient.fits`.
pub(crate) fn conv_weight_grad_implicit(
    x: &Tensor,
    s: &ConvShape,
    dy_last: &Tensor,
) -> Result<Tensor> {
    let (rows, taps) = (s.n * s.ho * s.wo, s.cin * s.kh * s.kw);
    let dw = Tensor::uninit(x.gpu(), &[s.cout, taps], "conv2d weight gradient")?;
    // Lanes on taps, columns the output channels, written transposed (dW^T's strides).
    let q = implicit_params((taps, s.cout, rows), s.cout, (1, taps));
    let kernel = implicit_kernel("conv2d_weight_grad_implicit", x.gpu(), s, [s.cin, s.h, s.w])
        .with("OUT_H", s.ho as u32)
        .with("OUT_W", s.wo as u32);
    dispatch_implicit(&kernel, &q, x, dy_last, dy_last, &dw)?;
    Ok(dw)
}

/// The input gradient dx [N, Cin, H, W] of strided convolution `s` from dy (NCHW, read in
/// place) and `packed`, the weights as `pack_backward` lays them out ([Cout*KH*KW, cpad]): one
/// `conv2d_input_grad_implicit` per phase of dx (its positions of one row and column offset
/// modulo the stride), each writing its positions of dx. For where
/// `ImplicitProduct::InputGradient.fits`.
pub(crate) fn conv_input_grad_implicit(
    dy: &Tensor,
    s: &ConvShape,
    packed: &Tensor,
    cpad: usize,
) -> Result<Tensor> {
    let dx = Tensor::uninit(dy.gpu(), &[s.n, s.cin, s.h, s.w], "conv2d input gradient")?;
    let stride = s.cfg.stride;
    // The taps of a kernel `k` wide that reach the positions of offset `phase`.
    let reach = |k: usize, phase: usize| k.saturating_sub((phase + s.cfg.pad) % stride);
    for py in 0..stride {
        for px in 0..stride {
            let positions = s.n
                * s.h.saturating_sub(py).div_ceil(stride)
                * s.w.saturating_sub(px).div_ceil(stride);
            if positions == 0 {
                continue;
            }
            let taps = reach(s.kh, py).div_ceil(stride) * reach(s.kw, px).div_ceil(stride);
            let q = implicit_params((positions, cpad, s.cout * taps), cpad, (0, 0));
            let kernel = implicit_kernel(
                "conv2d_input_grad_implicit",
                dy.gpu(),
                s,
                [s.cout, s.ho, s.wo],
            )
            .with("OUT_C", s.cin as u32)
            .with("OUT_H", s.h as u32)
            .with("OUT_W", s.w as u32)
            .with("PHASE_Y", py as u32)
            .with("PHASE_X", px as u32);
            dispatch_implicit(&kernel, &q, dy, packed, packed, &dx)?;
        }
    }
    Ok(dx)
}

/// An implicit product's parameters: its [m, n] and k, the shared operand's row stride and C's
/// strides (those kernels that write through them).
fn implicit_params(
    (m, n, k): (usize, usize, usize),
    b_sk: usize,
    (c_sm, c_sn): (usize, usize),
) -> BroadcastParams {
    BroadcastParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_sk: 0,
        b_sk: b_sk as u32,
        c_sm: c_sm as u32,
        c_sn: c_sn as u32,
        _pad: 0,
    }
}

/// An implicit product's kernel with `s`'s kernel and the input it reads in place (`[channels,
/// height, width]`) as pipeline constants; the output's are the caller's.
fn implicit_kernel(entry: &'static str, gpu: &Gpu, s: &ConvShape, [c, h, w]: [usize; 3]) -> Kernel {
    Kernel::new(Shader::MatmulSubgroup, entry)
        .with("WG", broadcast_wg(gpu))
        .with("IN_C", c as u32)
        .with("IN_H", h as u32)
        .with("IN_W", w as u32)
        .with("K_H", s.kh as u32)
        .with("K_W", s.kw as u32)
        .with("STRIDE", s.cfg.stride as u32)
        .with("PAD", s.cfg.pad as u32)
}

/// Dispatches an implicit product over its [q.m, q.n] (4 rows a lane, 32 columns a
/// workgroup): `input` read in place, `shared` the other operand, `bias` (read only where the
/// kernel has one) and the output.
fn dispatch_implicit(
    kernel: &Kernel,
    q: &BroadcastParams,
    input: &Tensor,
    shared: &Tensor,
    bias: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let gpu = input.gpu();
    let wg = broadcast_wg(gpu) as usize;
    let groups = (q.m as usize).div_ceil(4 * wg) * (q.n as usize).div_ceil(WIDE_COLUMNS);
    let bufs = [
        Access::Read(input.buffer()),
        Access::Read(shared.buffer()),
        Access::Read(bias.buffer()),
        Access::Write(out.buffer()),
    ];
    gpu.dispatch(kernel, q, &bufs, groups as u32)
}

/// Whether the product `[m, n] = A[m, k] B[k, n]` with these strides (no bias) runs on `gpu`
/// with one operand loaded once per subgroup (`broadcast-subgroup`): other ops' choices, e.g.
/// a convolution by im2col, depend on it.
pub(crate) fn product_shares_loads(
    a_stride: (usize, usize),
    b_stride: (usize, usize),
    (m, n, k): (usize, usize, usize),
    gpu: &Gpu,
) -> bool {
    let p = Product::strided(a_stride, b_stride, (m, n, k), false);
    matches!(pick(&p, gpu, None), Ok(ProductAlgo::BroadcastSubgroup))
}

/// `C[m, n] = A[m, k] B[k, n]` with `A[i, k] = a[i * a_stride.0 + k * a_stride.1]` and
/// `B[k, j] = b[k * b_stride.0 + j * b_stride.1]` (for other ops' products, e.g. convolutions
/// by im2col).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(
    a: &Tensor,
    a_stride: (usize, usize),
    b: &Tensor,
    b_stride: (usize, usize),
    m: usize,
    n: usize,
    k: usize,
    what: &str,
) -> Result<Tensor> {
    let a = Operand {
        t: a,
        row_stride: a_stride.0,
        col_stride: a_stride.1,
    };
    let b = Operand {
        t: b,
        row_stride: b_stride.0,
        col_stride: b_stride.1,
    };
    matmul(a, b, None, m, n, k, what, None)
}

fn dims(x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
        return Err(Error::shape(
            "linear",
            format!("input {xs:?} must be [N, in] and weight {ws:?} [out, in]"),
        ));
    }
    Ok((xs[0], ws[1], ws[0]))
}

pub fn linear_forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    linear_forward_with(x, w, bias, None)
}

/// The forward pass with `algo` (None: the usual choice).
pub fn linear_forward_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    algo: Option<ProductAlgo>,
) -> Result<Tensor> {
    let dims = dims(x, w)?;
    if let Some(b) = bias {
        if b.shape() != [dims.2] {
            return Err(Error::shape(
                "linear",
                format!(
                    "bias {:?} must be [{}] for weight {:?}",
                    b.shape(),
                    dims.2,
                    w.shape()
                ),
            ));
        }
    }
    linear_pass(Pass::Forward, x, w, bias, dims, "linear output", algo)
}

/// `dx = dy W`.
pub fn linear_backward_input(dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    linear_backward_input_with(dy, w, None)
}

/// The input gradient with `algo` (None: the usual choice).
pub fn linear_backward_input_with(
    dy: &Tensor,
    w: &Tensor,
    algo: Option<ProductAlgo>,
) -> Result<Tensor> {
    let (ds, ws) = (dy.shape(), w.shape());
    if ds.len() != 2 || ws.len() != 2 || ds[1] != ws[0] {
        return Err(Error::shape(
            "linear_backward_input",
            format!("gradient {ds:?} does not fit weight {ws:?}"),
        ));
    }
    let dims = (ds[0], ws[1], ws[0]);
    linear_pass(
        Pass::InputGradient,
        dy,
        w,
        None,
        dims,
        "linear input gradient",
        algo,
    )
}

/// `dW = dy^T x`.
pub fn linear_backward_weight(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    linear_backward_weight_with(x, dy, None)
}

/// The weight gradient with `algo` (None: the usual choice).
pub fn linear_backward_weight_with(
    x: &Tensor,
    dy: &Tensor,
    algo: Option<ProductAlgo>,
) -> Result<Tensor> {
    let (xs, ds) = (x.shape(), dy.shape());
    if xs.len() != 2 || ds.len() != 2 || xs[0] != ds[0] {
        return Err(Error::shape(
            "linear_backward_weight",
            format!("input {xs:?} and gradient {ds:?} differ in batch"),
        ));
    }
    let dims = (xs[0], xs[1], ds[1]);
    linear_pass(
        Pass::WeightGradient,
        dy,
        x,
        None,
        dims,
        "linear weight gradient",
        algo,
    )
}

/// `pass` of a linear layer of `(n, fin, fout)` as one product of `a` and `b` (x and W, dy and
/// W, dy and x), with the strides of [`Product::of_linear`].
fn linear_pass(
    pass: Pass,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    (n, fin, fout): (usize, usize, usize),
    what: &str,
    algo: Option<ProductAlgo>,
) -> Result<Tensor> {
    let p = Product::of_linear(pass, n, fin, fout, bias.is_some());
    let a = Operand {
        t: a,
        row_stride: p.a.row,
        col_stride: p.a.col,
    };
    let b = Operand {
        t: b,
        row_stride: p.b.row,
        col_stride: p.b.col,
    };
    matmul(a, b, bias, p.m, p.n, p.k, what, algo)
}

pub fn linear_backward_bias(dy: &Tensor) -> Result<Tensor> {
    let d = dy.shape();
    if d.len() != 2 {
        return Err(Error::shape(
            "linear_backward_bias",
            format!("gradient {d:?} must be [N, out]"),
        ));
    }
    sum_channels(dy, d[0], d[1], 1, 1.0)
}

/// Multiply-adds of `[n, fin] x [fin, fout]`, counted as 2 flops each.
pub fn linear_flops(n: usize, fin: usize, fout: usize) -> f64 {
    2.0 * (n * fin * fout) as f64
}

pub fn linear(g: &Graph, x: Var, w: Var, bias: Option<Var>) -> Result<Var> {
    let (xv, wv) = (g.value(x), g.value(w));
    let y = linear_forward(&xv, &wv, bias.map(|b| g.value(b)).as_ref())?;
    let flops = linear_flops(xv.shape()[0], wv.shape()[1], wv.shape()[0]);
    xv.gpu().add_flops(flops);
    let mut inputs = vec![x, w];
    inputs.extend(bias);
    Ok(g.record("linear", y, &inputs, move |dy, needs| {
        let passes = needs[..2].iter().filter(|&&n| n).count();
        dy.gpu().add_flops(flops * passes as f64);
        let dx = if needs[0] {
            Some(linear_backward_input(dy, &wv)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(linear_backward_weight(&xv, dy)?)
        } else {
            None
        };
        let mut grads = vec![dx, dw];
        if needs.len() > 2 {
            grads.push(if needs[2] {
                Some(linear_backward_bias(dy)?)
            } else {
                None
            });
        }
        Ok(grads)
    }))
}
