//! CPU references of the optimiser updates (PyTorch semantics).

/// One SGD step: `momentum_buf` is `None` before the first step.
pub fn sgd_step(
    p: &mut [f64],
    g: &[f64],
    buf: &mut Option<Vec<f64>>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
) {
    let d: Vec<f64> = p.iter().zip(g).map(|(p, g)| g + weight_decay * p).collect();
    let next: Vec<f64> = match buf.as_ref() {
        None => d,
        Some(b) => b.iter().zip(&d).map(|(b, d)| momentum * b + d).collect(),
    };
    for (p, b) in p.iter_mut().zip(&next) {
        *p -= lr * b;
    }
    *buf = Some(next);
}

/// One Adam step number `t` (1-based).
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    p: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    t: u32,
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
    weight_decay: f64,
) {
    let bc1 = 1.0 - beta1.powi(t as i32);
    let bc2 = 1.0 - beta2.powi(t as i32);
    for i in 0..p.len() {
        let d = g[i] + weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * d;
        v[i] = beta2 * v[i] + (1.0 - beta2) * d * d;
        p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
    }
}
