//! CPU reference of `ops::conv2d`: the defining sums, written out as loops.

use crate::shapes::ConvShape;

fn input_at(x: &[f64], s: &ConvShape, n: usize, ci: usize, iy: isize, ix: isize) -> Option<usize> {
    let inside = iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w;
    inside
        .then(|| ((n * s.cin + ci) * s.h + iy as usize) * s.w + ix as usize)
        .filter(|&i| i < x.len())
}

/// The input coordinate that kernel tap `k` of output position `o` reads.
fn source(o: usize, k: usize, s: &ConvShape) -> isize {
    (o * s.cfg.stride + k) as isize - s.cfg.pad as isize
}

pub fn conv2d_forward(x: &[f64], w: &[f64], bias: Option<&[f64]>, s: &ConvShape) -> Vec<f64> {
    let mut y = vec![0.0; s.n * s.cout * s.ho * s.wo];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oy in 0..s.ho {
                for ox in 0..s.wo {
                    let mut acc = bias.map_or(0.0, |b| b[co]);
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                if let Some(i) =
                                    input_at(x, s, n, ci, source(oy, ky, s), source(ox, kx, s))
                                {
                                    acc += w[((co * s.cin + ci) * s.kh + ky) * s.kw + kx] * x[i];
                                }
                            }
                        }
                    }
                    y[((n * s.cout + co) * s.ho + oy) * s.wo + ox] = acc;
                }
            }
        }
    }
    y
}

/// Scatters each output gradient back to the inputs it was computed from.
pub fn conv2d_backward_input(dy: &[f64], w: &[f64], s: &ConvShape) -> Vec<f64> {
    let mut dx = vec![0.0; s.n * s.cin * s.h * s.w];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oy in 0..s.ho {
                for ox in 0..s.wo {
                    let g = dy[((n * s.cout + co) * s.ho + oy) * s.wo + ox];
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                if let Some(i) =
                                    input_at(&dx, s, n, ci, source(oy, ky, s), source(ox, kx, s))
                                {
                                    dx[i] += w[((co * s.cin + ci) * s.kh + ky) * s.kw + kx] * g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

pub fn conv2d_backward_weight(x: &[f64], dy: &[f64], s: &ConvShape) -> Vec<f64> {
    let mut dw = vec![0.0; s.cout * s.cin * s.kh * s.kw];
    for n in 0..s.n {
        for co in 0..s.cout {
            for oy in 0..s.ho {
                for ox in 0..s.wo {
                    let g = dy[((n * s.cout + co) * s.ho + oy) * s.wo + ox];
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                if let Some(i) =
                                    input_at(x, s, n, ci, source(oy, ky, s), source(ox, kx, s))
                                {
                                    dw[((co * s.cin + ci) * s.kh + ky) * s.kw + kx] += x[i] * g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    dw
}

pub fn conv2d_backward_bias(dy: &[f64], s: &ConvShape) -> Vec<f64> {
    let hw = s.ho * s.wo;
    (0..s.cout)
        .map(|co| {
            (0..s.n)
                .map(|n| dy[(n * s.cout + co) * hw..][..hw].iter().sum::<f64>())
                .sum()
        })
        .collect()
}
