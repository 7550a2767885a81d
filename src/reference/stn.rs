//! The learnt crop placement's kernels (`ops::stn`) on the CPU, in f64.

use crate::ops::stn::{Placement, DRAW_WORDS, LOG_SPREAD_BOUND, PLACEMENT_WORDS, STAT_WORDS};

/// (mean, spread) of one image's placement outputs `r`, in pixels.
pub fn placement(r: &[f64], at: &Placement) -> ([f64; 2], [f64; 2]) {
    let mut mean = [0.0; 2];
    let mut spread = [0.0; 2];
    for a in 0..2 {
        let side = at.image_wh[a] as f64;
        mean[a] = side * (0.5 + 0.5 * r[a].tanh());
        let raw =
            at.base_spread[a] * (LOG_SPREAD_BOUND * (r[2 + a] / LOG_SPREAD_BOUND).tanh()).exp();
        spread[a] = raw.max(at.floor[a]);
    }
    (mean, spread)
}

/// The two views' centres of image `k` of a batch of `b`.
pub fn centres(r: &[f64], draws: &[f64], at: &Placement, k: usize, b: usize) -> [[f64; 2]; 2] {
    let (mean, spread) = placement(&r[PLACEMENT_WORDS * k..], at);
    [k, b + k].map(|v| {
        let n = &draws[DRAW_WORDS * v..];
        [mean[0] + spread[0] * n[0], mean[1] + spread[1] * n[1]]
    })
}

/// The IoU of two boxes of the view's size whose centres differ by `d`.
pub fn iou(d: [f64; 2], at: &Placement) -> f64 {
    let [w, h] = at.view_wh.map(|s| s as f64);
    let inter = (w - d[0].abs()).max(0.0) * (h - d[1].abs()).max(0.0);
    inter / (2.0 * w * h - inter)
}

/// Matrices `[2B, 6]` and statistics `[B, STAT_WORDS]` of placements `r` `[B, 4]`.
pub fn view_matrices(r: &[f64], draws: &[f64], at: &Placement) -> (Vec<f64>, Vec<f64>) {
    let b = r.len() / PLACEMENT_WORDS;
    let [w, h] = at.view_wh.map(|s| s as f64);
    let [iw, ih] = at.image_wh.map(|s| s as f64);
    let mut m = vec![0.0; 12 * b];
    let mut stats = vec![0.0; STAT_WORDS * b];
    for k in 0..b {
        let c = centres(r, draws, at, k, b);
        let (_, spread) = placement(&r[PLACEMENT_WORDS * k..], at);
        let mut outside = 0.0;
        for (view, v) in [k, b + k].into_iter().enumerate() {
            let (left, top) = (c[view][0] - w / 2.0, c[view][1] - h / 2.0);
            let flip = draws[DRAW_WORDS * v + 2] > 0.5;
            let row = match flip {
                true => [-1.0, 0.0, left + w - 1.0, 0.0, 1.0, top],
                false => [1.0, 0.0, left, 0.0, 1.0, top],
            };
            m[6 * v..6 * v + 6].copy_from_slice(&row);
            let inside_x = ((left + w).min(iw) - left.max(0.0)).max(0.0);
            let inside_y = ((top + h).min(ih) - top.max(0.0)).max(0.0);
            outside += 0.5 * (1.0 - inside_x * inside_y / (w * h));
        }
        let rk = &r[PLACEMENT_WORDS * k..];
        let offset = 0.5 * (rk[0].tanh().powi(2) + rk[1].tanh().powi(2)).sqrt();
        let d = [c[0][0] - c[1][0], c[0][1] - c[1][1]];
        stats[STAT_WORDS * k..STAT_WORDS * (k + 1)].copy_from_slice(&[
            offset,
            0.5 * (spread[0] / iw + spread[1] / ih),
            outside,
            iou(d, at),
        ]);
    }
    (m, stats)
}

/// Distance-IoU: the IoU less the squared centre distance over the enclosing box's squared
/// diagonal.
pub fn diou(d: [f64; 2], at: &Placement) -> f64 {
    let [w, h] = at.view_wh.map(|s| s as f64);
    let (cx, cy) = (w + d[0].abs(), h + d[1].abs());
    iou(d, at) - (d[0] * d[0] + d[1] * d[1]) / (cx * cx + cy * cy)
}

/// The mean over images of `max(0, min_iou - DIoU)`.
pub fn overlap_hinge(r: &[f64], draws: &[f64], at: &Placement) -> f64 {
    let b = r.len() / PLACEMENT_WORDS;
    let total: f64 = (0..b)
        .map(|k| {
            let c = centres(r, draws, at, k, b);
            (at.min_iou - diou([c[0][0] - c[1][0], c[0][1] - c[1][1]], at)).max(0.0)
        })
        .sum();
    total / b as f64
}

/// `1 - mean_v <u_v, t_(v mod N)>` for `u` `[V, D]` and `t` `[N, D]`.
pub fn agreement(u: &[f64], t: &[f64], dim: usize) -> f64 {
    let (rows, n) = (u.len() / dim, t.len() / dim);
    let total: f64 = (0..rows)
        .map(|v| {
            let tv = &t[(v % n) * dim..(v % n + 1) * dim];
            u[v * dim..(v + 1) * dim]
                .iter()
                .zip(tv)
                .map(|(a, b)| a * b)
                .sum::<f64>()
        })
        .sum();
    1.0 - total / rows as f64
}
