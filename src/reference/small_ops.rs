//! CPU references of the small ops: global average pooling, linear, L2 normalisation,
//! cross-entropy, and the channel sums.

/// [N, C, H*W] -> [N, C].
pub fn global_avg_pool(x: &[f64], rows: usize, hw: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| x[r * hw..(r + 1) * hw].iter().sum::<f64>() / hw as f64)
        .collect()
}

pub fn global_avg_pool_backward(dy: &[f64], hw: usize) -> Vec<f64> {
    dy.iter()
        .flat_map(|&g| std::iter::repeat_n(g / hw as f64, hw))
        .collect()
}

/// `y[n, o] = sum_i x[n, i] w[o, i] + b[o]`.
pub fn linear_forward(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    n: usize,
    fin: usize,
    fout: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; n * fout];
    for r in 0..n {
        for o in 0..fout {
            y[r * fout + o] = b.map_or(0.0, |b| b[o])
                + (0..fin)
                    .map(|i| x[r * fin + i] * w[o * fin + i])
                    .sum::<f64>();
        }
    }
    y
}

pub fn linear_backward_input(dy: &[f64], w: &[f64], n: usize, fin: usize, fout: usize) -> Vec<f64> {
    let mut dx = vec![0.0; n * fin];
    for r in 0..n {
        for i in 0..fin {
            dx[r * fin + i] = (0..fout).map(|o| dy[r * fout + o] * w[o * fin + i]).sum();
        }
    }
    dx
}

pub fn linear_backward_weight(
    x: &[f64],
    dy: &[f64],
    n: usize,
    fin: usize,
    fout: usize,
) -> Vec<f64> {
    let mut dw = vec![0.0; fout * fin];
    for o in 0..fout {
        for i in 0..fin {
            dw[o * fin + i] = (0..n).map(|r| dy[r * fout + o] * x[r * fin + i]).sum();
        }
    }
    dw
}

/// `x` seen as [a, b, c]: sums over a and c.
pub fn sum_channels(x: &[f64], a: usize, b: usize, c: usize) -> Vec<f64> {
    (0..b)
        .map(|j| {
            (0..a)
                .map(|i| x[(i * b + j) * c..][..c].iter().sum::<f64>())
                .sum()
        })
        .collect()
}

pub fn l2_normalize(x: &[f64], d: usize, eps: f64) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(eps);
            row.iter().map(move |v| v / norm)
        })
        .collect()
}

pub fn l2_normalize_backward(x: &[f64], dy: &[f64], d: usize, eps: f64) -> Vec<f64> {
    x.chunks(d)
        .zip(dy.chunks(d))
        .flat_map(|(row, g)| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            let out: Vec<f64> = if norm <= eps {
                g.iter().map(|v| v / eps).collect()
            } else {
                let ydy = row.iter().zip(g).map(|(a, b)| a * b).sum::<f64>() / norm;
                row.iter()
                    .zip(g)
                    .map(|(xv, gv)| (gv - xv / norm * ydy) / norm)
                    .collect()
            };
            out
        })
        .collect()
}

/// Mean over rows of `logsumexp(row) - row[label]`.
pub fn cross_entropy(logits: &[f64], labels: &[u32], classes: usize) -> f64 {
    let total: f64 = logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &l)| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[l as usize]
        })
        .sum();
    total / labels.len() as f64
}

pub fn cross_entropy_backward(
    logits: &[f64],
    labels: &[u32],
    classes: usize,
    dloss: f64,
) -> Vec<f64> {
    let n = labels.len() as f64;
    logits
        .chunks(classes)
        .zip(labels)
        .flat_map(|(row, &l)| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter()
                .enumerate()
                .map(move |(j, v)| {
                    dloss / n * ((v - m).exp() / s - if j == l as usize { 1.0 } else { 0.0 })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
