//! The saliency summary of `ops::saliency` on the CPU, in f64: channel sums, min-max
//! normalisation, PyTorch's bilinear upsampling (align_corners = false), centroid and hot box.

/// One image's summary, in the kernel's order (see `ops::saliency::SUMMARY_WORDS`).
pub fn saliency_summary(
    map: &[f32],
    [c, fh, fw]: [usize; 3],
    [ih, iw]: [usize; 2],
    threshold: f64,
) -> ([f64; 8], Vec<f64>) {
    let sums: Vec<f64> = (0..fh * fw)
        .map(|pix| (0..c).map(|ch| map[ch * fh * fw + pix] as f64).sum())
        .collect();
    let lo = sums.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = sums.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let range = hi - lo;
    let flat = !(range > 0.0 && range.is_finite());
    // Source taps and the second tap's weight.
    let taps = |i: usize, dst: usize, src: usize| {
        let s = ((i as f64 + 0.5) * src as f64 / dst as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(src - 1);
        (i0, (i0 + 1).min(src - 1), s - i0 as f64)
    };
    let mut heat = vec![0.0; ih * iw];
    for y in 0..ih {
        let (y0, y1, wy) = taps(y, ih, fh);
        for x in 0..iw {
            let (x0, x1, wx) = taps(x, iw, fw);
            let at = |yy: usize, xx: usize| (sums[yy * fw + xx] - lo) / range;
            let top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx;
            let bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx;
            heat[y * iw + x] = if flat {
                1.0
            } else {
                top * (1.0 - wy) + bottom * wy
            };
        }
    }
    let (mut mass, mut sx, mut sy, mut hot_pixels) = (0.0, 0.0, 0.0, 0.0);
    for y in 0..ih {
        for x in 0..iw {
            let h = heat[y * iw + x];
            mass += h;
            sx += h * (x as f64 + 0.5);
            sy += h * (y as f64 + 0.5);
            hot_pixels += (h > threshold) as u8 as f64;
        }
    }
    let hot_rows: Vec<usize> = (0..ih)
        .filter(|&y| (0..iw).any(|x| heat[y * iw + x] > threshold))
        .collect();
    let hot_cols: Vec<usize> = (0..iw)
        .filter(|&x| (0..ih).any(|y| heat[y * iw + x] > threshold))
        .collect();
    let (w, h) = (iw as f64, ih as f64);
    let bbox = match (
        hot_cols.first(),
        hot_cols.last(),
        hot_rows.first(),
        hot_rows.last(),
    ) {
        (Some(&x0), Some(&x1), Some(&y0), Some(&y1)) => {
            [x0 as f64 / w, y0 as f64 / h, x1 as f64 / w, y1 as f64 / h]
        }
        _ => [0.0, 0.0, 1.0, 1.0],
    };
    let centroid = match mass > 0.0 {
        true => [sx / mass, sy / mass],
        false => [w / 2.0, h / 2.0],
    };
    let summary = [
        centroid[0],
        centroid[1],
        bbox[0],
        bbox[1],
        bbox[2],
        bbox[3],
        hot_pixels / (w * h),
        range,
    ];
    (summary, heat)
}
