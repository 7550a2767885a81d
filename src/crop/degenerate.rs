//! Settings that make a strategy degenerate: a Gaussian so wide (a large alpha) that many of
//! its views miss the image entirely and show nothing but zero padding. Such settings are
//! legal, so they are not refused, but the user is told the measured share.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::crop::geometry::CropBox;
use crate::crop::strategy::CropSpec;
use crate::error::Result;

/// Above this share of empty views a run gets a warning.
pub const EMPTY_VIEW_WARNING: f64 = 0.10;

/// Pairs drawn to measure the share: its standard error is below 0.5 points.
const DRAWS: usize = 2_000;

/// Whether a box has no pixel in common with a `w` x `h` image.
fn misses(b: &CropBox, w: usize, h: usize) -> bool {
    b.right() <= 0 || b.bottom() <= 0 || b.left >= w as i64 || b.top >= h as i64
}

/// The share of views of `spec` on a `w` x `h` image whose box misses the image entirely, over
/// a fixed seeded sample of draws (the same every time, so the warning is reproducible).
pub fn empty_view_share(spec: &CropSpec, w: usize, h: usize) -> Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut empty = 0usize;
    for _ in 0..DRAWS {
        let draw = spec.draw_pair(&mut rng, w, h)?;
        empty += draw.boxes.iter().filter(|b| misses(b, w, h)).count();
    }
    Ok(empty as f64 / (2 * DRAWS) as f64)
}

/// A warning for settings whose views are empty more than [`EMPTY_VIEW_WARNING`] of the time,
/// saying the measured share and what to change; `None` when the settings are fine.
pub fn degenerate_warning(spec: &CropSpec, w: usize, h: usize) -> Result<Option<String>> {
    let share = empty_view_share(spec, w, h)?;
    Ok((share > EMPTY_VIEW_WARNING).then(|| {
        format!(
            "{} crop {} alpha {} on {w}x{h} images: {:.1} % of views lie entirely outside the \
             image and show only zero padding; a smaller alpha keeps the views on the image",
            spec.method,
            spec.crop,
            spec.alpha,
            100.0 * share
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crop::Method;

    #[test]
    fn the_papers_alphas_pass_and_a_huge_alpha_is_reported_with_its_share() {
        for (crop, alpha) in [(0.2, 0.6), (0.4, 1.5), (0.8, 1.5)] {
            let spec = CropSpec::new(Method::Gcc, crop, alpha).unwrap();
            assert_eq!(degenerate_warning(&spec, 28, 28).unwrap(), None);
        }
        let rc = CropSpec::new(Method::Rc, 0.2, 1e6).unwrap();
        assert_eq!(empty_view_share(&rc, 28, 28).unwrap(), 0.0);
        // alpha 1000 on 28 pixels: a standard deviation of 167 pixels; most views miss.
        let wide = CropSpec::new(Method::Gcc, 0.4, 1000.0).unwrap();
        let share = empty_view_share(&wide, 28, 28).unwrap();
        assert!(share > 0.8, "{share}");
        let msg = degenerate_warning(&wide, 28, 28).unwrap().unwrap();
        assert!(
            msg.contains("alpha 1000") && msg.contains(&format!("{:.1} %", 100.0 * share)),
            "{msg}"
        );
        // CGCC clamps its boxes into the image: never empty.
        let cgcc = CropSpec::new(Method::Cgcc, 0.4, 1000.0).unwrap();
        assert_eq!(empty_view_share(&cgcc, 28, 28).unwrap(), 0.0);
    }
}
