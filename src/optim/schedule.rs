//! Learning-rate schedules.

/// Cosine annealing from `base` at step 0 to 0 at `total` steps (`CosineAnnealingLR`, eta_min 0).
pub fn cosine_lr(base: f32, step: usize, total: usize) -> f32 {
    if total == 0 {
        return base;
    }
    let t = step.min(total) as f64 / total as f64;
    (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
}

#[cfg(test)]
mod tests {
    use super::cosine_lr;
    use approx::assert_abs_diff_eq;

    #[test]
    fn cosine_starts_at_base_halves_midway_and_ends_at_zero() {
        assert_eq!(cosine_lr(0.01, 0, 100), 0.01);
        assert_abs_diff_eq!(cosine_lr(0.01, 50, 100), 0.005, epsilon = 1e-9);
        assert_abs_diff_eq!(cosine_lr(0.01, 100, 100), 0.0, epsilon = 1e-9);
        assert_abs_diff_eq!(cosine_lr(0.01, 150, 100), 0.0, epsilon = 1e-9);
    }
}
