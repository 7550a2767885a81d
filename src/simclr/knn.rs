//! The kNN monitor: classify held-out images by a cosine-similarity-weighted vote of their k
//! nearest training images in feature space (k = 200, weights exp(similarity / 0.1), as the
//! common self-supervised learning libraries do). Similarities are a matmul on the GPU; the
//! top-k selection runs on the CPU, a block of queries at a time.

use crate::error::{Error, Result};
use crate::ops::l2norm::l2_normalize_forward;
use crate::ops::linear::linear_forward;
use crate::ops::view::slice_rows;
use crate::tensor::Tensor;

/// Temperature of the vote weights.
pub const KNN_TEMPERATURE: f64 = 0.1;

/// Accuracy (fraction correct) of the weighted kNN vote of `queries` `[Q, F]` among `bank`
/// `[N, F]` features with their labels.
pub fn knn_accuracy(
    bank: &Tensor,
    bank_labels: &[u32],
    queries: &Tensor,
    query_labels: &[u32],
    classes: usize,
    k: usize,
) -> Result<f64> {
    let (n, q) = (bank.shape()[0], queries.shape()[0]);
    if bank_labels.len() != n || query_labels.len() != q || q == 0 || n == 0 {
        return Err(Error::InvalidArgument(format!(
            "kNN: {n} bank features with {} labels, {q} queries with {} labels",
            bank_labels.len(),
            query_labels.len()
        )));
    }
    let k = k.min(n);
    let bank = l2_normalize_forward(bank)?;
    let queries = l2_normalize_forward(queries)?;
    // Blocks of queries whose similarity rows fit in about 64 MB.
    let block = (16_000_000 / n).clamp(1, q);
    let mut correct = 0usize;
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for start in (0..q).step_by(block) {
        let count = block.min(q - start);
        let sims = linear_forward(&slice_rows(&queries, start, count)?, &bank, None)?.to_vec()?;
        for (r, row) in sims.chunks(n).enumerate() {
            order.clear();
            order.extend(0..n);
            order.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]));
            let mut votes = vec![0.0f64; classes];
            for &i in &order[..k] {
                votes[bank_labels[i] as usize] += (row[i] as f64 / KNN_TEMPERATURE).exp();
            }
            let best = (0..classes)
                .max_by(|&a, &b| votes[a].total_cmp(&votes[b]))
                .unwrap_or(0);
            correct += (best as u32 == query_labels[start + r]) as usize;
        }
    }
    Ok(correct as f64 / q as f64)
}
