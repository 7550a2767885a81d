//! CPU reference of `ops::batchnorm` (NCHW, per-channel statistics over N*H*W).

pub struct BnForward {
    pub y: Vec<f64>,
    pub mean: Vec<f64>,
    /// Biased batch variance (what normalises); the running update uses the unbiased one.
    pub var: Vec<f64>,
}

/// Flat indices of the N*H*W values of channel `ch`.
fn channel_values(n: usize, c: usize, hw: usize, ch: usize) -> impl Iterator<Item = usize> {
    (0..n).flat_map(move |i| (0..hw).map(move |k| (i * c + ch) * hw + k))
}

/// Training mode. Updates `running_mean` / `running_var` with `momentum` like PyTorch.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    x: &[f64],
    shape: [usize; 4],
    gamma: &[f64],
    beta: &[f64],
    running_mean: &mut [f64],
    running_var: &mut [f64],
    momentum: f64,
    eps: f64,
) -> BnForward {
    let [n, c, h, w] = shape;
    let (hw, m) = (h * w, (n * h * w) as f64);
    let mut out = BnForward {
        y: vec![0.0; x.len()],
        mean: vec![0.0; c],
        var: vec![0.0; c],
    };
    for ch in 0..c {
        let mean = channel_values(n, c, hw, ch).map(|e| x[e]).sum::<f64>() / m;
        let var = channel_values(n, c, hw, ch)
            .map(|e| (x[e] - mean).powi(2))
            .sum::<f64>()
            / m;
        for e in channel_values(n, c, hw, ch) {
            out.y[e] = (x[e] - mean) / (var + eps).sqrt() * gamma[ch] + beta[ch];
        }
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean;
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * var * m / (m - 1.0);
        out.mean[ch] = mean;
        out.var[ch] = var;
    }
    out
}

pub fn batch_norm_eval(
    x: &[f64],
    shape: [usize; 4],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> Vec<f64> {
    let [_, c, h, w] = shape;
    x.iter()
        .enumerate()
        .map(|(e, &v)| {
            let ch = (e / (h * w)) % c;
            (v - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect()
}

/// Gradients `(dx, dgamma, dbeta)` of training-mode batch norm, through the batch statistics.
pub fn batch_norm_train_backward(
    x: &[f64],
    dy: &[f64],
    shape: [usize; 4],
    gamma: &[f64],
    fwd: &BnForward,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, c, h, w] = shape;
    let (hw, m) = (h * w, (n * h * w) as f64);
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    for ch in 0..c {
        let inv = 1.0 / (fwd.var[ch] + eps).sqrt();
        let xhat = |e: usize| (x[e] - fwd.mean[ch]) * inv;
        dbeta[ch] = channel_values(n, c, hw, ch).map(|e| dy[e]).sum();
        dgamma[ch] = channel_values(n, c, hw, ch).map(|e| dy[e] * xhat(e)).sum();
        for e in channel_values(n, c, hw, ch) {
            dx[e] = gamma[ch] * inv / m * (m * dy[e] - dbeta[ch] - xhat(e) * dgamma[ch]);
        }
    }
    (dx, dgamma, dbeta)
}
