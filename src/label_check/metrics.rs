//! What the label check counts per test image, and the shares it reports: each a mean over
//! images with a 95 % interval from the spread between images (the views of one image are not
//! independent of each other, so the image is the unit).

use serde::{Deserialize, Serialize};

use crate::crop::CropBox;

/// A percentage measured per image, with its 95 % interval over images (normal approximation:
/// mean +- 1.96 standard errors, clipped to [0, 100]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// The estimate of per-image percentages `values`.
    pub fn over_images(values: &[f64]) -> Estimate {
        let n = values.len() as f64;
        if values.is_empty() {
            return Estimate {
                mean: f64::NAN,
                low: f64::NAN,
                high: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n;
        let var = match values.len() {
            1 => 0.0,
            _ => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0),
        };
        let half = 1.96 * (var / n).sqrt();
        Estimate {
            mean,
            low: (mean - half).max(0.0),
            high: (mean + half).min(100.0),
        }
    }
}

/// The counts of one test image over its view pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImageTally {
    pub pairs: u32,
    /// Views the oracle labels with the image's true label.
    pub correct_views: u32,
    /// Pairs whose two views the oracle labels alike.
    pub agreeing_pairs: u32,
    /// Pairs where at least one view lost the label: a false-positive pair for SimCLR.
    pub false_positive_pairs: u32,
    /// Sum over the image's views of the share of the view that is zero padding.
    pub padding: f64,
    /// Views whose box lies entirely outside the image (all zeros).
    pub empty_views: u32,
}

impl ImageTally {
    /// Counts one pair: the oracle's two predictions, the true label and the two boxes.
    pub fn add_pair(
        &mut self,
        predicted: [u32; 2],
        label: u32,
        boxes: &[CropBox; 2],
        wh: [usize; 2],
    ) {
        self.pairs += 1;
        let right = predicted.map(|p| p == label);
        self.correct_views += right.iter().filter(|&&r| r).count() as u32;
        self.agreeing_pairs += u32::from(predicted[0] == predicted[1]);
        self.false_positive_pairs += u32::from(!(right[0] && right[1]));
        for b in boxes {
            let share = padding_share(b, wh);
            self.padding += share;
            self.empty_views += u32::from(share >= 1.0);
        }
    }
}

/// The share of a box's pixels that lie outside a `wh` image: what zero padding fills. It is
/// the same for both padding modes, which only move the zeros.
pub fn padding_share(b: &CropBox, wh: [usize; 2]) -> f64 {
    let overlap = |lo: i64, len: u32, size: usize| {
        let hi = lo + len as i64;
        (hi.min(size as i64) - lo.max(0)).max(0) as f64
    };
    let inside = overlap(b.left, b.width, wh[0]) * overlap(b.top, b.height, wh[1]);
    1.0 - inside / (b.width as f64 * b.height as f64)
}

/// The four shares of a set of images, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shares {
    /// Views the oracle still labels with their image's label.
    pub view_accuracy: Estimate,
    /// Pairs whose views the oracle labels alike.
    pub pair_agreement: Estimate,
    /// Pairs with at least one view that lost the label.
    pub false_positive_pairs: Estimate,
    /// Mean share of a view that is zero padding.
    pub padding_share: Estimate,
    /// Views entirely outside their image, in percent of all views.
    pub empty_views: f64,
}

impl Shares {
    pub fn of(tallies: &[ImageTally]) -> Shares {
        let per_image = |f: &dyn Fn(&ImageTally) -> f64| -> Vec<f64> {
            tallies.iter().filter(|t| t.pairs > 0).map(f).collect()
        };
        let views = |t: &ImageTally| 2.0 * t.pairs as f64;
        let total_views: f64 = tallies.iter().map(views).sum();
        let empty: f64 = tallies.iter().map(|t| t.empty_views as f64).sum();
        Shares {
            view_accuracy: Estimate::over_images(&per_image(&|t| {
                100.0 * t.correct_views as f64 / views(t)
            })),
            pair_agreement: Estimate::over_images(&per_image(&|t| {
                100.0 * t.agreeing_pairs as f64 / t.pairs as f64
            })),
            false_positive_pairs: Estimate::over_images(&per_image(&|t| {
                100.0 * t.false_positive_pairs as f64 / t.pairs as f64
            })),
            padding_share: Estimate::over_images(&per_image(&|t| 100.0 * t.padding / views(t))),
            empty_views: match total_views {
                0.0 => 0.0,
                n => 100.0 * empty / n,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn square(left: i64, top: i64, side: u32) -> CropBox {
        CropBox {
            left,
            top,
            width: side,
            height: side,
        }
    }

    #[test]
    fn padding_share_counts_the_pixels_outside_the_image() {
        assert_eq!(padding_share(&square(0, 0, 4), [8, 8]), 0.0);
        assert_eq!(padding_share(&square(-2, 0, 4), [8, 8]), 0.5);
        assert_eq!(padding_share(&square(-2, -2, 4), [8, 8]), 0.75);
        assert_eq!(padding_share(&square(6, 6, 4), [8, 8]), 0.75);
        assert_eq!(padding_share(&square(20, 0, 4), [8, 8]), 1.0);
        assert_eq!(padding_share(&square(-9, -9, 4), [8, 8]), 1.0);
    }

    #[test]
    fn tallies_count_correct_views_agreement_and_false_positives() {
        let inside = [square(0, 0, 2), square(1, 1, 2)];
        let mut t = ImageTally::default();
        t.add_pair([3, 3], 3, &inside, [4, 4]);
        t.add_pair([3, 1], 3, &inside, [4, 4]);
        t.add_pair([1, 1], 3, &[square(-2, 0, 2), square(0, 0, 2)], [4, 4]);
        assert_eq!(
            (
                t.pairs,
                t.correct_views,
                t.agreeing_pairs,
                t.false_positive_pairs
            ),
            (3, 3, 2, 2)
        );
        assert_eq!((t.padding, t.empty_views), (1.0, 1));
        let s = Shares::of(&[t]);
        assert_eq!(s.view_accuracy.mean, 50.0);
        assert_abs_diff_eq!(s.false_positive_pairs.mean, 200.0 / 3.0, epsilon = 1e-9);
        assert_abs_diff_eq!(s.empty_views, 100.0 / 6.0, epsilon = 1e-9);
    }

    #[test]
    fn the_interval_is_the_standard_error_over_images_clipped_to_percentages() {
        // Sample variance 4 x 100 / 3 over 4 images.
        let e = Estimate::over_images(&[40.0, 60.0, 40.0, 60.0]);
        assert_eq!(e.mean, 50.0);
        let half = 1.96 * (400.0 / 3.0 / 4.0f64).sqrt();
        assert_abs_diff_eq!(e.high, 50.0 + half, epsilon = 1e-9);
        assert_abs_diff_eq!(e.low, 50.0 - half, epsilon = 1e-9);
        let wide = Estimate::over_images(&[0.0, 100.0, 0.0, 100.0]);
        assert_eq!(
            (wide.low, wide.high),
            (0.0, 100.0),
            "clipped to percentages"
        );
        let all = Estimate::over_images(&[100.0; 5]);
        assert_eq!((all.low, all.mean, all.high), (100.0, 100.0, 100.0));
    }
}
