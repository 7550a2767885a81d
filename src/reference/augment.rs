//! The blur-and-normalise half of the view pipeline on the CPU, in f64.

/// Reflects an index at most one step outside `[0, n)` (clamped for n = 1), as torchvision's
/// reflect padding does.
fn reflect(k: i64, n: i64) -> usize {
    let mut r = k.abs();
    if r >= n {
        r = 2 * n - 2 - r;
    }
    r.clamp(0, n - 1) as usize
}

/// `x` `[V, C, h, w]`: each view blurred with the 3x3 kernel `outer(k, k)`, `k = (side, centre,
/// side)` from `blur[v] = [centre, side]`, then `(value - mean[c]) / std[c]`.
pub fn blur_normalize(
    x: &[f64],
    [views, channels, h, w]: [usize; 4],
    blur: &[[f64; 2]],
    mean: &[f64],
    std: &[f64],
) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for v in 0..views {
        let k = [blur[v][1], blur[v][0], blur[v][1]];
        for c in 0..channels {
            let base = (v * channels + c) * h * w;
            for i in 0..h {
                for j in 0..w {
                    let mut acc = 0.0;
                    for (di, ki) in k.iter().enumerate() {
                        for (dj, kj) in k.iter().enumerate() {
                            let y = reflect(i as i64 + di as i64 - 1, h as i64);
                            let xx = reflect(j as i64 + dj as i64 - 1, w as i64);
                            acc += ki * kj * x[base + y * w + xx];
                        }
                    }
                    out[base + i * w + j] = (acc - mean[c]) / std[c];
                }
            }
        }
    }
    out
}
