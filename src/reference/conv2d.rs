//! CPU reference of `ops::conv2d`: the defining sum, written out as loops. All three passes
//! walk the same (output, weight, input) triples; they differ only in which factor they sum.

use crate::shapes::ConvShape;

/// Calls `f(output, weight, input)` with the flat indices of every product
/// `w[weight] * x[input]` that contributes to `y[output]` (taps over the zero padding skipped).
fn for_each_product(s: &ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let source = |o: usize, k: usize| (o * s.cfg.stride + k) as isize - s.cfg.pad as isize;
    for n in 0..s.n {
        for co in 0..s.cout {
            for oy in 0..s.ho {
                for ox in 0..s.wo {
                    let out = ((n * s.cout + co) * s.ho + oy) * s.wo + ox;
                    for ci in 0..s.cin {
                        for ky in 0..s.kh {
                            for kx in 0..s.kw {
                                let (iy, ix) = (source(oy, ky), source(ox, kx));
                                if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
                                    continue;
                                }
                                let input =
                                    ((n * s.cin + ci) * s.h + iy as usize) * s.w + ix as usize;
                                f(out, ((co * s.cin + ci) * s.kh + ky) * s.kw + kx, input);
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn conv2d_forward(x: &[f64], w: &[f64], bias: Option<&[f64]>, s: &ConvShape) -> Vec<f64> {
    let hw = s.ho * s.wo;
    let mut y: Vec<f64> = (0..s.n * s.cout * hw)
        .map(|o| bias.map_or(0.0, |b| b[(o / hw) % s.cout]))
        .collect();
    for_each_product(s, |o, wi, i| y[o] += w[wi] * x[i]);
    y
}

/// Scatters each output gradient back to the inputs it was computed from.
pub fn conv2d_backward_input(dy: &[f64], w: &[f64], s: &ConvShape) -> Vec<f64> {
    let mut dx = vec![0.0; s.n * s.cin * s.h * s.w];
    for_each_product(s, |o, wi, i| dx[i] += w[wi] * dy[o]);
    dx
}

pub fn conv2d_backward_weight(x: &[f64], dy: &[f64], s: &ConvShape) -> Vec<f64> {
    let mut dw = vec![0.0; s.cout * s.cin * s.kh * s.kw];
    for_each_product(s, |o, wi, i| dw[wi] += x[i] * dy[o]);
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
