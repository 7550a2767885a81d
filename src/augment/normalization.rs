//! Per-channel normalisation statistics.

use crate::data::Dataset;
use crate::error::{Error, Result};

/// `(x - mean[c]) / std[c]` for images scaled to [0, 1].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The CIFAR-10 constants the paper uses (PAPER.md).
    pub fn paper_cifar10() -> Normalization {
        Normalization {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2023, 0.1994, 0.2010],
        }
    }

    /// The mean and standard deviation of each channel over a data set's images.
    pub fn of_dataset(data: &Dataset) -> Result<Normalization> {
        let [c, h, w] = data.shape();
        if data.is_empty() {
            return Err(Error::InvalidArgument(
                "cannot compute normalisation statistics of an empty data set".into(),
            ));
        }
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for image in data.pixels().chunks(c * h * w) {
            for (ch, plane) in image.chunks(h * w).enumerate() {
                for &b in plane {
                    let v = b as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (data.len() * h * w) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std: Vec<f32> = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt()).max(1e-3) as f32)
            .collect();
        Ok(Normalization {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }
}
