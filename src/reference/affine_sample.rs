//! Bilinear affine sampling on the CPU, in f64: the pixel-matrix form the kernel uses, its two
//! gradients, and a literal transcription of PyTorch's `affine_grid` + `grid_sample(bilinear,
//! zeros, align_corners=False)` to show that the two forms agree.

/// Sizes of a sampling problem.
#[derive(Clone, Copy, Debug)]
pub struct SampleDims {
    pub images: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

/// Which image a view reads and the rectangle `[x0, y0, x1, y1)` outside which taps are zero.
#[derive(Clone, Copy, Debug)]
pub struct RefView {
    pub image: usize,
    pub rect: [i64; 4],
}

impl SampleDims {
    fn value(&self, x: &[f64], view: &RefView, c: usize, xi: i64, yi: i64) -> f64 {
        if !in_both(self, view, xi, yi) {
            return 0.0;
        }
        x[((view.image * self.channels + c) * self.in_h + yi as usize) * self.in_w + xi as usize]
    }
}

/// The source coordinate of output pixel (j, i).
fn source_xy(m: &[f64; 6], j: usize, i: usize) -> (f64, f64) {
    let (j, i) = (j as f64, i as f64);
    (m[0] * j + m[1] * i + m[2], m[3] * j + m[4] * i + m[5])
}

/// Views `[V, C, h, w]` sampled from `x` `[N, C, H, W]` with pixel matrices `m`.
pub fn affine_sample(x: &[f64], d: &SampleDims, views: &[RefView], m: &[[f64; 6]]) -> Vec<f64> {
    let mut out = vec![0.0; views.len() * d.channels * d.out_h * d.out_w];
    let mut k = 0;
    for (view, m) in views.iter().zip(m) {
        for c in 0..d.channels {
            for i in 0..d.out_h {
                for j in 0..d.out_w {
                    let (sx, sy) = source_xy(m, j, i);
                    let (fx, fy) = (sx.floor(), sy.floor());
                    let (ax, ay) = (sx - fx, sy - fy);
                    let (xi, yi) = (fx as i64, fy as i64);
                    let v = |dx: i64, dy: i64| d.value(x, view, c, xi + dx, yi + dy);
                    out[k] = (1.0 - ay) * ((1.0 - ax) * v(0, 0) + ax * v(1, 0))
                        + ay * ((1.0 - ax) * v(0, 1) + ax * v(1, 1));
                    k += 1;
                }
            }
        }
    }
    out
}

/// Gradients of `sum(dy * affine_sample(x, m))`: with respect to `x` `[N, C, H, W]` and to each
/// view's matrix. At integer source coordinates the matrix gradient is the right-hand one, as
/// in PyTorch (the floor picks the tap pair).
pub fn affine_sample_backward(
    x: &[f64],
    d: &SampleDims,
    views: &[RefView],
    m: &[[f64; 6]],
    dy: &[f64],
) -> (Vec<f64>, Vec<[f64; 6]>) {
    let mut dx = vec![0.0; x.len()];
    let mut dm = vec![[0.0; 6]; views.len()];
    let mut k = 0;
    for (v, (view, m)) in views.iter().zip(m).enumerate() {
        for c in 0..d.channels {
            for i in 0..d.out_h {
                for j in 0..d.out_w {
                    let g = dy[k];
                    k += 1;
                    let (sx, sy) = source_xy(m, j, i);
                    let (fx, fy) = (sx.floor(), sy.floor());
                    let (ax, ay) = (sx - fx, sy - fy);
                    let (xi, yi) = (fx as i64, fy as i64);
                    let val = |dx: i64, dy: i64| d.value(x, view, c, xi + dx, yi + dy);
                    let (v00, v10, v01, v11) = (val(0, 0), val(1, 0), val(0, 1), val(1, 1));
                    let d_sx = (1.0 - ay) * (v10 - v00) + ay * (v11 - v01);
                    let d_sy = (1.0 - ax) * (v01 - v00) + ax * (v11 - v10);
                    let (j, i) = (j as f64, i as f64);
                    let dmv = &mut dm[v];
                    for (slot, term) in [g * d_sx * j, g * d_sx * i, g * d_sx].iter().enumerate() {
                        dmv[slot] += term;
                    }
                    for (slot, term) in [g * d_sy * j, g * d_sy * i, g * d_sy].iter().enumerate() {
                        dmv[3 + slot] += term;
                    }
                    let taps = [
                        (0, 0, (1.0 - ax) * (1.0 - ay)),
                        (1, 0, ax * (1.0 - ay)),
                        (0, 1, (1.0 - ax) * ay),
                        (1, 1, ax * ay),
                    ];
                    for (ox, oy, w) in taps {
                        let (tx, ty) = (xi + ox, yi + oy);
                        if !in_both(d, view, tx, ty) {
                            continue;
                        }
                        let idx = ((view.image * d.channels + c) * d.in_h + ty as usize) * d.in_w
                            + tx as usize;
                        dx[idx] += g * w;
                    }
                }
            }
        }
    }
    (dx, dm)
}

/// Whether source pixel (xi, yi) is inside both the view's rectangle and the image.
fn in_both(d: &SampleDims, view: &RefView, xi: i64, yi: i64) -> bool {
    let [x0, y0, x1, y1] = view.rect;
    xi >= x0
        && xi < x1
        && yi >= y0
        && yi < y1
        && xi >= 0
        && yi >= 0
        && xi < d.in_w as i64
        && yi < d.in_h as i64
}

/// PyTorch's `affine_grid(theta, align_corners=False)` followed by `grid_sample(mode='bilinear',
/// padding_mode='zeros', align_corners=False)`, transcribed from their definitions, with taps
/// outside each view's rectangle also reading zero.
pub fn grid_sample_theta(
    x: &[f64],
    d: &SampleDims,
    views: &[RefView],
    theta: &[[f64; 6]],
) -> Vec<f64> {
    let mut out = Vec::with_capacity(views.len() * d.channels * d.out_h * d.out_w);
    let (big_w, big_h) = (d.in_w as f64, d.in_h as f64);
    for (view, t) in views.iter().zip(theta) {
        for c in 0..d.channels {
            for i in 0..d.out_h {
                for j in 0..d.out_w {
                    // affine_grid: base grid at pixel centres in [-1, 1].
                    let xn = (2.0 * j as f64 + 1.0) / d.out_w as f64 - 1.0;
                    let yn = (2.0 * i as f64 + 1.0) / d.out_h as f64 - 1.0;
                    let gx = t[0] * xn + t[1] * yn + t[2];
                    let gy = t[3] * xn + t[4] * yn + t[5];
                    // grid_sample: unnormalise, then bilinear with zero padding.
                    let ix = ((gx + 1.0) * big_w - 1.0) / 2.0;
                    let iy = ((gy + 1.0) * big_h - 1.0) / 2.0;
                    let (x_w, y_n) = (ix.floor(), iy.floor());
                    let (x_e, y_s) = (x_w + 1.0, y_n + 1.0);
                    let nw = (x_e - ix) * (y_s - iy);
                    let ne = (ix - x_w) * (y_s - iy);
                    let sw = (x_e - ix) * (iy - y_n);
                    let se = (ix - x_w) * (iy - y_n);
                    let v = |px: f64, py: f64| d.value(x, view, c, px as i64, py as i64);
                    out.push(
                        v(x_w, y_n) * nw + v(x_e, y_n) * ne + v(x_w, y_s) * sw + v(x_e, y_s) * se,
                    );
                }
            }
        }
    }
    out
}
