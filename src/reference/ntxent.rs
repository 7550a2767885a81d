//! NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) on the CPU, in f64.
//!
//! `u` holds 2N L2-normalised embeddings as rows: 0..N are the first views, N..2N the second;
//! row i's positive is row (i + N) mod 2N. Row i's loss is the cross-entropy of its positive
//! among the 2N - 1 other rows' similarities `u_i . u_j / tau`; the loss is the mean over rows.

/// Partner row of `i` among `rows` = 2N rows.
fn partner(i: usize, rows: usize) -> usize {
    (i + rows / 2) % rows
}

fn logit(u: &[f64], d: usize, i: usize, j: usize, tau: f64) -> f64 {
    (0..d).map(|k| u[i * d + k] * u[j * d + k]).sum::<f64>() / tau
}

/// log-sum-exp of row i's logits over j != i.
fn row_lse(u: &[f64], rows: usize, d: usize, i: usize, tau: f64) -> f64 {
    let l: Vec<f64> = (0..rows)
        .filter(|&j| j != i)
        .map(|j| logit(u, d, i, j, tau))
        .collect();
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + l.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The loss (one number) for `rows` = 2N embeddings of width `d`.
pub fn ntxent(u: &[f64], rows: usize, d: usize, tau: f64) -> f64 {
    (0..rows)
        .map(|i| row_lse(u, rows, d, i, tau) - logit(u, d, i, partner(i, rows), tau))
        .sum::<f64>()
        / rows as f64
}

/// dL/du.
pub fn ntxent_backward(u: &[f64], rows: usize, d: usize, tau: f64) -> Vec<f64> {
    let lse: Vec<f64> = (0..rows).map(|i| row_lse(u, rows, d, i, tau)).collect();
    let mut du = vec![0.0; u.len()];
    // dL/dlogit[i][j] = (softmax_i(j) - [j = partner(i)]) / rows; logit[i][j] = u_i . u_j / tau
    // reaches both u_i and u_j.
    for i in 0..rows {
        for j in 0..rows {
            if i == j {
                continue;
            }
            let l = logit(u, d, i, j, tau);
            let g = ((l - lse[i]).exp() - (j == partner(i, rows)) as u8 as f64) / rows as f64;
            for k in 0..d {
                du[i * d + k] += g * u[j * d + k] / tau;
                du[j * d + k] += g * u[i * d + k] / tau;
            }
        }
    }
    du
}
