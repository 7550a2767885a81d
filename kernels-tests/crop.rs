//! The crop strategies: their statistics over many draws, the validation of their parameters,
//! and the exactness of integer boxes through the GPU sampling kernel.

mod common;

use approx::assert_abs_diff_eq;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::crop::{view_geometry, CropBox, CropSpec, Method, PadMode};
use taming::ops::affine_sample::{self as sample, pack_view_info, PackedImages, Source, ViewInfo};
use taming::reference::affine_sample::{self as reference, RefView, SampleDims};
use taming::Tensor;

const DRAWS: usize = 100_000;

fn gen(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

#[test]
fn gcc_centres_have_the_paper_mean_and_variance() {
    // A non-square image catches swapped axes; alpha scales the variance, not the deviation.
    let (w, h, alpha) = (32, 24, 1.5);
    let spec = CropSpec::new(Method::Gcc, 0.4, alpha).unwrap();
    let mut r = gen(1);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..DRAWS {
        let d = spec.draw_pair(&mut r, w, h).unwrap();
        for (c, b) in d.centres.iter().zip(&d.boxes) {
            xs.push(c[0]);
            ys.push(c[1]);
            // The box is the truncated centre minus half the size (integer division).
            assert_eq!(b.left, c[0].trunc() as i64 - 20 / 2);
            assert_eq!(b.top, c[1].trunc() as i64 - 15 / 2);
            assert_eq!((b.width, b.height), (20, 15));
        }
    }
    for (name, v, side) in [("x", &xs, w), ("y", &ys, h)] {
        let (m, var) = mean_var(v);
        let want_var = alpha * side as f64;
        assert!(
            (m - side as f64 / 2.0).abs() < 0.05,
            "{name}: centre mean {m} is not within 0.05 px of {}",
            side as f64 / 2.0
        );
        assert!(
            (var / want_var - 1.0).abs() < 0.02,
            "{name}: centre variance {var} is not within 2 % of alpha * side = {want_var}"
        );
    }
}

#[test]
fn cgcc_boxes_are_always_inside_and_gcc_boxes_leave_the_image() {
    let (w, h) = (28, 28);
    for alpha in [0.5, 2.0, 50.0] {
        let cgcc = CropSpec::new(Method::Cgcc, 0.6, alpha).unwrap();
        let gcc = CropSpec::new(Method::Gcc, 0.6, alpha).unwrap();
        let (mut r1, mut r2) = (gen(2), gen(2));
        let mut outside = 0;
        for _ in 0..DRAWS {
            let c = cgcc.draw_pair(&mut r1, w, h).unwrap();
            let g = gcc.draw_pair(&mut r2, w, h).unwrap();
            for (cb, gb) in c.boxes.iter().zip(&g.boxes) {
                assert!(cb.inside(w, h), "CGCC box {cb:?} leaves the {w}x{h} image");
                outside += !gb.inside(w, h) as usize;
                // Same draws: CGCC is GCC clamped inside.
                assert_eq!(cb.left, gb.left.clamp(0, (w - 21) as i64));
                assert_eq!(cb.top, gb.top.clamp(0, (h - 21) as i64));
            }
        }
        assert!(outside > 0, "alpha {alpha}: no GCC box ever left the image");
    }
}

/// Pearson's chi-square of the counts against a uniform distribution.
fn chi_square(counts: &[usize]) -> f64 {
    let expected = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn rc_top_left_corners_are_uniform() {
    let (w, h) = (32, 30);
    let spec = CropSpec::new(Method::Rc, 0.4, 1.0).unwrap();
    let [cw, ch] = spec.view_size(w, h).unwrap();
    let mut r = gen(3);
    let mut lefts = vec![0usize; w - cw + 1];
    let mut tops = vec![0usize; h - ch + 1];
    for _ in 0..DRAWS {
        for b in spec.draw_pair(&mut r, w, h).unwrap().boxes {
            assert!(b.inside(w, h));
            lefts[b.left as usize] += 1;
            tops[b.top as usize] += 1;
        }
    }
    // 99.9 % quantiles of chi-square with 12 and 11 degrees of freedom.
    let (cl, ct) = (chi_square(&lefts), chi_square(&tops));
    assert!(
        cl < 32.91,
        "left corners: chi-square {cl} over {} bins",
        lefts.len()
    );
    assert!(
        ct < 31.26,
        "top corners: chi-square {ct} over {} bins",
        tops.len()
    );
    // And the test can fail: a corner distribution skewed by one bin is rejected.
    let mut skewed = lefts.clone();
    skewed[0] += skewed[1] / 10;
    assert!(chi_square(&skewed) > 32.91);
}

#[test]
fn mgcc_means_stay_in_their_range_and_views_centre_on_them() {
    let (w, h) = (32, 32);
    let mut spec = CropSpec::new(Method::Mgcc, 0.4, 1.0).unwrap();
    for (a, b) in [(0.25, 0.75), (0.4, 0.6)] {
        spec.mgcc_range = (a, b);
        let spec = spec.validated().unwrap();
        let mut r = gen(4);
        let (mut offsets, mut means) = (Vec::new(), Vec::new());
        for _ in 0..DRAWS {
            let d = spec.draw_pair(&mut r, w, h).unwrap();
            for k in 0..2 {
                let side = [w, h][k] as f64;
                assert!(
                    d.mean[k] >= a * side && d.mean[k] <= b * side,
                    "mean {:?} outside [{a}, {b}]",
                    d.mean
                );
                means.push(d.mean[k] / side);
            }
            offsets.extend(d.centres.iter().map(|c| c[0] - d.mean[0]));
        }
        let (m, _) = mean_var(&means);
        assert_abs_diff_eq!(m, (a + b) / 2.0, epsilon = 0.005);
        let (off, var) = mean_var(&offsets);
        assert!(
            off.abs() < 0.05 && (var / 32.0 - 1.0).abs() < 0.02,
            "{off} {var}"
        );
    }
}

#[test]
fn rrc_boxes_are_inside_with_area_and_ratio_in_range() {
    let (w, h) = (32, 32);
    let spec = CropSpec::new(Method::Rrc, 0.4, 1.0).unwrap();
    let mut r = gen(5);
    let mut areas = Vec::new();
    for _ in 0..DRAWS / 10 {
        for b in spec.draw_pair(&mut r, w, h).unwrap().boxes {
            assert!(b.inside(w, h), "{b:?}");
            let area = (b.width * b.height) as f64 / (w * h) as f64;
            // Rounding the sides to pixels moves the area a little beyond the range.
            assert!(area > 0.05 && area <= 1.0, "area fraction {area}");
            areas.push(area);
        }
    }
    let (m, _) = mean_var(&areas);
    assert!(m > 0.35 && m < 0.65, "mean area fraction {m}");
}

#[test]
fn same_seed_same_draws() {
    for method in Method::ALL {
        let spec = CropSpec::new(method, 0.4, 1.5).unwrap();
        let (mut a, mut b) = (gen(9), gen(9));
        for _ in 0..100 {
            assert_eq!(
                spec.draw_pair(&mut a, 28, 28).unwrap(),
                spec.draw_pair(&mut b, 28, 28).unwrap()
            );
        }
    }
}

#[test]
fn bad_parameters_are_clear_errors() {
    let e = |r: taming::Result<CropSpec>| r.unwrap_err().to_string();
    assert!(e(CropSpec::new(Method::Rc, 0.0, 1.0)).contains("crop size 0"));
    assert!(e(CropSpec::new(Method::Rc, 1.5, 1.0)).contains("(0, 1]"));
    assert!(e(CropSpec::new(Method::Gcc, f64::NAN, 1.0)).contains("crop size"));
    assert!(e(CropSpec::new(Method::Gcc, 0.4, 0.0)).contains("alpha"));
    assert!(e(CropSpec::new(Method::Mgcc, 0.4, -1.0)).contains("alpha"));
    // alpha means nothing to RC and RRC: accepted and ignored.
    assert!(CropSpec::new(Method::Rc, 0.4, 0.0).is_ok());
    let mut s = CropSpec::new(Method::Mgcc, 0.4, 1.0).unwrap();
    s.mgcc_range = (0.6, 0.4);
    assert!(e(s.validated()).contains("0 <= a < b <= 1"));
    let tiny = CropSpec::new(Method::Rc, 0.001, 1.0).unwrap();
    assert!(tiny
        .view_size(28, 28)
        .unwrap_err()
        .to_string()
        .contains("0x0"));
    assert_eq!("gcc".parse::<Method>(), Ok(Method::Gcc));
    assert!("crop".parse::<Method>().is_err());
    assert_eq!("window".parse::<PadMode>(), Ok(PadMode::Window));
}

/// PAPER.md's box arithmetic, transcribed with plain slices: the view of `b` (its own size)
/// in either padding mode, optionally mirrored.
fn slice_view(img: &[u8], [c, h, w]: [usize; 3], b: &CropBox, pad: PadMode, flip: bool) -> Vec<u8> {
    let (bw, bh) = (b.width as usize, b.height as usize);
    let mut view = vec![0u8; c * bh * bw];
    let pixel = |ch: usize, y: i64, x: i64| img[(ch * h + y as usize) * w + x as usize];
    let inside = |y: i64, x: i64| y >= 0 && x >= 0 && y < h as i64 && x < w as i64;
    match pad {
        PadMode::Window => {
            for ch in 0..c {
                for i in 0..bh {
                    for j in 0..bw {
                        let (y, x) = (b.top + i as i64, b.left + j as i64);
                        if inside(y, x) {
                            view[(ch * bh + i) * bw + j] = pixel(ch, y, x);
                        }
                    }
                }
            }
        }
        PadMode::Centre => {
            let (x0, x1) = (b.left.max(0), b.right().min(w as i64));
            let (y0, y1) = (b.top.max(0), b.bottom().min(h as i64));
            if x1 > x0 && y1 > y0 {
                let (kw, kh) = ((x1 - x0) as usize, (y1 - y0) as usize);
                let (pl, pt) = ((bw - kw) / 2, (bh - kh) / 2);
                for ch in 0..c {
                    for r in 0..kh {
                        for s in 0..kw {
                            view[(ch * bh + pt + r) * bw + pl + s] =
                                pixel(ch, y0 + r as i64, x0 + s as i64);
                        }
                    }
                }
            }
        }
    }
    if flip {
        for row in view.chunks_mut(bw) {
            row.reverse();
        }
    }
    view
}

#[test]
fn integer_boxes_reproduce_the_slice_bit_for_bit_in_both_padding_modes() {
    let Some(gpu) = gpu() else { return };
    let (c, h, w) = (3, 9, 11);
    let mut r = rng(6);
    let img: Vec<u8> = (0..c * h * w).map(|_| r.random_range(1..=255)).collect();
    let packed = PackedImages::upload(&gpu, &img, [1, c, h, w]).unwrap();
    let bx = |left, top, width, height| CropBox {
        left,
        top,
        width,
        height,
    };
    let boxes = [
        ("inside", bx(2, 1, 5, 6)),
        ("half outside on the left", bx(-3, 2, 6, 4)),
        ("outside at the bottom-right", bx(8, 6, 6, 5)),
        ("larger than the image", bx(-2, -1, 15, 12)),
        ("outside at the top, odd overhang", bx(3, -4, 4, 7)),
        ("entirely outside", bx(20, -30, 4, 4)),
    ];
    for pad in [PadMode::Centre, PadMode::Window] {
        for flip in [false, true] {
            for (name, b) in &boxes {
                let out_wh = [b.width as usize, b.height as usize];
                let g = view_geometry(b, [w, h], out_wh, pad, flip);
                let m = Tensor::from_slice(&gpu, &[1, 6], &g.matrix.map(|x| x as f32)).unwrap();
                let info = ViewInfo {
                    rect: g.rect,
                    ..ViewInfo::whole(0)
                };
                let info = Tensor::from_u32(&gpu, &[1, 8], &pack_view_info(&[info])).unwrap();
                let y = sample::affine_sample_forward(
                    Source::U8(&packed),
                    &m,
                    &info,
                    [out_wh[1], out_wh[0]],
                )
                .unwrap();
                let got: Vec<u32> = y.to_vec().unwrap().iter().map(|v| v.to_bits()).collect();
                let want: Vec<u32> = slice_view(&img, [c, h, w], b, pad, flip)
                    .iter()
                    .map(|&v| (v as f32 * (1.0f32 / 255.0)).to_bits())
                    .collect();
                assert_eq!(got, want, "{pad:?} flip={flip}: {name} {b:?}");
            }
        }
    }
}

/// A box sampled at another size is PyTorch's crop-and-resize: affine_grid with the box's
/// theta (scale = box / image, shift = box centre in [-1, 1]) and bilinear grid_sample.
#[test]
fn resized_boxes_match_affine_grid_crop_and_resize() {
    let Some(gpu) = gpu() else { return };
    let (c, h, w) = (2, 13, 17);
    let mut r = rng(7);
    let img: Vec<u8> = (0..c * h * w).map(|_| r.random()).collect();
    let packed = PackedImages::upload(&gpu, &img, [1, c, h, w]).unwrap();
    let x: Vec<f64> = img.iter().map(|&b| b as f64 / 255.0).collect();
    for (b, out_wh, flip) in [
        (
            CropBox {
                left: 3,
                top: 2,
                width: 9,
                height: 7,
            },
            [5, 4],
            false,
        ),
        (
            CropBox {
                left: 0,
                top: 0,
                width: 17,
                height: 13,
            },
            [32, 32],
            true,
        ),
        (
            CropBox {
                left: 5,
                top: 1,
                width: 4,
                height: 11,
            },
            [7, 6],
            false,
        ),
    ] {
        let g = view_geometry(&b, [w, h], out_wh, PadMode::Window, flip);
        let m = Tensor::from_slice(&gpu, &[1, 6], &g.matrix.map(|v| v as f32)).unwrap();
        let info = Tensor::from_u32(&gpu, &[1, 8], &pack_view_info(&[ViewInfo::whole(0)])).unwrap();
        let out_hw = [out_wh[1], out_wh[0]];
        let y = sample::affine_sample_forward(Source::U8(&packed), &m, &info, out_hw).unwrap();
        let (sx, sy) = (b.width as f64 / w as f64, b.height as f64 / h as f64);
        let flip_sign = if flip { -1.0 } else { 1.0 };
        let theta = [
            flip_sign * sx,
            0.0,
            (2 * b.left + b.width as i64) as f64 / w as f64 - 1.0,
            0.0,
            sy,
            (2 * b.top + b.height as i64) as f64 / h as f64 - 1.0,
        ];
        let d = SampleDims {
            images: 1,
            channels: c,
            in_h: h,
            in_w: w,
            out_h: out_hw[0],
            out_w: out_hw[1],
        };
        let view = RefView {
            image: 0,
            rect: [0, 0, w as i64, h as i64],
        };
        let want = reference::grid_sample_theta(&x, &d, &[view], &[theta]);
        assert_rel_close(&format!("{b:?} -> {out_wh:?}"), &download(&y), &want, 1e-6);
    }
}
