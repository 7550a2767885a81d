//! The learnt crop placement's ops (`shaders/stn.wgsl`): a localiser's per-image outputs
//! turned into the two views' sampling matrices on the device, the overlap hinge of the
//! adversarial objective, the agreement of the consistency objective, and gradient reversal.
//! Each is recorded on the tape with its backward.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::ops::elementwise::scale_forward;
use crate::ops::reduce::sum_channels;
use crate::tensor::Tensor;

/// Localiser outputs per image: mean offset (x, y) and log spread (x, y), before squashing.
pub const PLACEMENT_WORDS: usize = 4;
/// Numbers drawn per view: the standard normal noise (x, y) and the flip (0 or 1).
pub const DRAW_WORDS: usize = 3;
/// Statistics per image: offset and spread (fractions of the side), share of view area
/// outside the image, the pair's overlap (IoU).
pub const STAT_WORDS: usize = 4;
/// How far the log spread may go from GCC's (the shader's `LOG_BOUND`): e^-3 to e^3 times.
pub const LOG_SPREAD_BOUND: f64 = 3.0;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        images: u32,
        iw: u32,
        ih: u32,
        vw: u32,
        vh: u32,
        dim: u32,
        rows: u32,
        _p0: u32,
        base_x: f32,
        base_y: f32,
        floor_x: f32,
        floor_y: f32,
        min_iou: f32,
        _p1: [f32; 3],
    }
}

/// Where the views of a run can go: image and view sizes in pixels, the spread at zero
/// output (GCC's std, `sqrt(alpha x side)` per axis) and the spread's floor, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    pub image_wh: [usize; 2],
    pub view_wh: [usize; 2],
    pub base_spread: [f64; 2],
    pub floor: [f64; 2],
    /// The overlap (IoU, through its lower bound DIoU) the adversarial objective's hinge keeps
    /// the two views above.
    pub min_iou: f64,
}

impl Placement {
    /// The placement of GCC at `alpha` with a spread floor of GCC's std at `floor_alpha`.
    pub fn gcc(
        image_wh: [usize; 2],
        view_wh: [usize; 2],
        alpha: f64,
        floor_alpha: f64,
        min_iou: f64,
    ) -> Placement {
        let std = |a: f64| image_wh.map(|s| (a * s as f64).sqrt());
        Placement {
            image_wh,
            view_wh,
            base_spread: std(alpha),
            floor: std(floor_alpha),
            min_iou,
        }
    }

    fn params(&self, images: usize) -> Params {
        Params {
            images: images as u32,
            iw: self.image_wh[0] as u32,
            ih: self.image_wh[1] as u32,
            vw: self.view_wh[0] as u32,
            vh: self.view_wh[1] as u32,
            dim: 0,
            rows: 0,
            _p0: 0,
            base_x: self.base_spread[0] as f32,
            base_y: self.base_spread[1] as f32,
            floor_x: self.floor[0] as f32,
            floor_y: self.floor[1] as f32,
            min_iou: self.min_iou as f32,
            _p1: [0.0; 3],
        }
    }
}

/// The images of a placement `r` `[B, 4]` with its draws `[2B, 3]`; checks both.
fn images_of(op: &'static str, r: &Tensor, draws: &Tensor) -> Result<usize> {
    let b = r.shape().first().copied().unwrap_or(0);
    if b == 0 || r.shape() != [b, PLACEMENT_WORDS] || draws.shape() != [2 * b, DRAW_WORDS] {
        return Err(Error::shape(
            op,
            format!(
                "placements {:?} must be [B, {PLACEMENT_WORDS}] and draws {:?} [2B, {DRAW_WORDS}]",
                r.shape(),
                draws.shape()
            ),
        ));
    }
    Ok(b)
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Stn, entry).with("WG", WG)
}

/// Runs an entry point with the shader's five bindings; `None` binds a placeholder.
fn launch(
    entry: &'static str,
    p: &Params,
    srcs: [Option<&Tensor>; 3],
    outs: [Option<&Tensor>; 2],
    groups: u32,
    gpu: &crate::Gpu,
) -> Result<()> {
    let spare = Tensor::uninit(gpu, &[1], "unused binding")?;
    let spare2 = Tensor::uninit(gpu, &[1], "unused binding")?;
    let [a, b, c] = srcs.map(|t| t.unwrap_or(&spare));
    gpu.dispatch(
        &kernel(entry),
        p,
        &[
            Access::Read(a.buffer()),
            Access::Read(b.buffer()),
            Access::Read(c.buffer()),
            Access::Write(outs[0].unwrap_or(&spare2).buffer()),
            Access::Write(outs[1].unwrap_or(&spare2).buffer()),
        ],
        groups,
    )
}

/// The views' pixel matrices `[2B, 6]` (views `0..B` first, then `B..2B`, as the view
/// pipeline orders them) and per-image statistics `[B, STAT_WORDS]` of placements `r`.
pub fn view_matrices_forward(
    r: &Tensor,
    draws: &Tensor,
    at: &Placement,
) -> Result<(Tensor, Tensor)> {
    let b = images_of("view_matrices", r, draws)?;
    let gpu = r.gpu();
    let m = Tensor::uninit(gpu, &[2 * b, 6], "learnt view matrices")?;
    let stats = Tensor::uninit(gpu, &[b, STAT_WORDS], "placement statistics")?;
    let groups = (b as u32).div_ceil(WG);
    launch(
        "view_matrices",
        &at.params(b),
        [Some(r), Some(draws), None],
        [Some(&m), Some(&stats)],
        groups,
        gpu,
    )?;
    Ok((m, stats))
}

/// dL/dr `[B, 4]` from dL/dmatrices `[2B, 6]`.
pub fn view_matrices_backward(
    r: &Tensor,
    draws: &Tensor,
    at: &Placement,
    dm: &Tensor,
) -> Result<Tensor> {
    let b = images_of("view_matrices_backward", r, draws)?;
    if dm.shape() != [2 * b, 6] {
        return Err(Error::shape(
            "view_matrices_backward",
            format!("matrix gradient {:?} must be [{}, 6]", dm.shape(), 2 * b),
        ));
    }
    let dr = r.like("placement gradient")?;
    launch(
        "view_matrices_backward",
        &at.params(b),
        [Some(r), Some(draws), Some(dm)],
        [Some(&dr), None],
        (b as u32).div_ceil(WG),
        r.gpu(),
    )?;
    Ok(dr)
}

/// Records the matrices on the tape; returns them and the (constant) statistics.
pub fn view_matrices(g: &Graph, r: Var, draws: &Tensor, at: &Placement) -> Result<(Var, Tensor)> {
    let rv = g.value(r);
    let (m, stats) = view_matrices_forward(&rv, draws, at)?;
    let (draws, at) = (draws.clone(), *at);
    let m = g.record("view_matrices", m, &[r], move |dm, _| {
        Ok(vec![Some(view_matrices_backward(&rv, &draws, &at, dm)?)])
    });
    Ok((m, stats))
}

/// `[1]`: the mean over images of `max(0, min_iou - DIoU)` of the two views' boxes, DIoU
/// (distance-IoU) the IoU less the squared centre distance over the enclosing box's squared
/// diagonal: a lower bound of the IoU (so the IoU stays above `min_iou` where the hinge is
/// met) whose gradient still pulls once the boxes no longer overlap.
pub fn overlap_hinge_forward(r: &Tensor, draws: &Tensor, at: &Placement) -> Result<Tensor> {
    let b = images_of("overlap_hinge", r, draws)?;
    let shares = Tensor::uninit(r.gpu(), &[b], "overlap hinge shares")?;
    launch(
        "overlap_hinge",
        &at.params(b),
        [Some(r), Some(draws), None],
        [Some(&shares), None],
        (b as u32).div_ceil(WG),
        r.gpu(),
    )?;
    sum_channels(&shares, b, 1, 1, 1.0)
}

/// Records the overlap hinge on the tape (its gradient reaches only the spread).
pub fn overlap_hinge(g: &Graph, r: Var, draws: &Tensor, at: &Placement) -> Result<Var> {
    let rv = g.value(r);
    let loss = overlap_hinge_forward(&rv, draws, at)?;
    let (draws, at) = (draws.clone(), *at);
    Ok(g.record("overlap_hinge", loss, &[r], move |dloss, _| {
        let b = rv.shape()[0];
        let dr = rv.like("overlap hinge gradient")?;
        launch(
            "overlap_hinge_backward",
            &at.params(b),
            [Some(&rv), Some(&draws), Some(dloss)],
            [Some(&dr), None],
            (b as u32).div_ceil(WG),
            rv.gpu(),
        )?;
        Ok(vec![Some(dr)])
    }))
}

/// `1 - mean_v <u_v, t_(v mod N)>` for unit rows `u` `[V, D]` and unit targets `t` `[N, D]`
/// (V a multiple of N), recorded on the tape; the targets are constants.
pub fn agreement(g: &Graph, u: Var, targets: &Tensor) -> Result<Var> {
    let uv = g.value(u);
    let (us, ts) = (uv.shape(), targets.shape());
    if us.len() != 2 || ts.len() != 2 || us[1] != ts[1] || ts[0] == 0 || us[0] % ts[0] != 0 {
        return Err(Error::shape(
            "agreement",
            format!("rows {us:?} and targets {ts:?} need [k N, D] and [N, D]"),
        ));
    }
    // Only the sizes: the placement's fields are unused by these two entry points.
    let p = Params {
        images: ts[0] as u32,
        dim: us[1] as u32,
        rows: us[0] as u32,
        ..bytemuck::Zeroable::zeroed()
    };
    let shares = Tensor::uninit(uv.gpu(), &[us[0]], "agreement shares")?;
    launch(
        "agreement",
        &p,
        [Some(&uv), None, Some(targets)],
        [Some(&shares), None],
        (us[0] as u32).div_ceil(WG),
        uv.gpu(),
    )?;
    let loss = sum_channels(&shares, us[0], 1, 1, 1.0)?;
    let targets = targets.clone();
    Ok(g.record("agreement", loss, &[u], move |dloss, _| {
        let du = uv.like("agreement gradient")?;
        launch(
            "agreement_backward",
            &p,
            [None, Some(dloss), Some(&targets)],
            [Some(&du), None],
            (uv.numel() as u32).div_ceil(WG),
            uv.gpu(),
        )?;
        Ok(vec![Some(du)])
    }))
}

/// The identity whose backward negates the gradient: what follows is minimised, what
/// precedes it maximises the same loss (Ganin and Lempitsky's gradient reversal).
pub fn gradient_reversal(g: &Graph, x: Var) -> Var {
    g.record("gradient_reversal", g.value(x), &[x], |dy, _| {
        Ok(vec![Some(scale_forward(dy, -1.0)?)])
    })
}
