//! The GPU view pipeline against the CPU composition of the references.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::augment::{Normalization, ViewPipeline, ViewPlan};
use taming::crop::{CropSpec, Method, PadMode};
use taming::data::Dataset;
use taming::reference::affine_sample::{self as reference, RefView, SampleDims};
use taming::reference::augment::blur_normalize;

fn random_dataset(n: usize, shape: [usize; 3], seed: u64) -> Dataset {
    let mut r = rng(seed);
    let pixels = (0..n * shape.iter().product::<usize>())
        .map(|_| r.random())
        .collect();
    let labels = (0..n as u32).map(|i| i % 3).collect();
    let names = ["a", "b", "c"].map(String::from).to_vec();
    Dataset::new(pixels, labels, shape, names, std::path::Path::new("random")).unwrap()
}

#[test]
fn views_match_the_cpu_composition_for_one_and_three_channels() {
    let Some(gpu) = gpu() else { return };
    let cases = [
        (Method::Gcc, PadMode::Centre, [1, 28, 28], 0.4),
        (Method::Gcc, PadMode::Window, [3, 32, 32], 0.2),
        (Method::Mgcc, PadMode::Centre, [3, 17, 23], 0.6),
        (Method::Rrc, PadMode::Centre, [1, 28, 28], 0.8),
        (Method::Rc, PadMode::Centre, [3, 9, 11], 1.0),
    ];
    for (seed, (method, pad, shape, crop)) in cases.into_iter().enumerate() {
        let data = random_dataset(6, shape, seed as u64);
        let mut spec = CropSpec::new(method, crop, 2.0).unwrap();
        spec.pad = pad;
        let pipeline = ViewPipeline::paper(spec, Normalization::of_dataset(&data).unwrap());
        let images = data.upload(&gpu).unwrap();
        let indices = [5u32, 0, 3, 3, 1, 2, 4];
        let [c, h, w] = shape;
        let mut r = ChaCha8Rng::seed_from_u64(seed as u64);
        let plan = pipeline.plan(&mut r, &indices, [w, h]).unwrap();
        let (a, b) = pipeline.run(&images, &plan).unwrap();
        // Counted without the poison fills that the test device adds to every allocation.
        gpu.set_poison(false);
        let before = gpu.counters().0;
        pipeline.run(&images, &plan).unwrap();
        assert_eq!(
            gpu.counters().0 - before,
            2,
            "two kernel launches per batch"
        );
        gpu.set_poison(true);

        let [vw, vh] = plan.view_wh;
        let x: Vec<f64> = data.pixels().iter().map(|&v| v as f64 / 255.0).collect();
        let d = SampleDims {
            images: 6,
            channels: c,
            in_h: h,
            in_w: w,
            out_h: vh,
            out_w: vw,
        };
        let views: Vec<RefView> = plan
            .info
            .iter()
            .map(|v| RefView {
                image: v.image as usize,
                rect: v.rect.map(i64::from),
            })
            .collect();
        let m: Vec<[f64; 6]> = plan
            .matrices
            .chunks(6)
            .map(|c| std::array::from_fn(|k| c[k] as f64))
            .collect();
        let sampled = reference::affine_sample(&x, &d, &views, &m);
        let blur: Vec<[f64; 2]> = plan.info.iter().map(|v| v.blur.map(f64::from)).collect();
        let norm = &pipeline.normalization;
        let want = blur_normalize(
            &sampled,
            [14, c, vh, vw],
            &blur,
            &norm.mean.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &norm.std.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        let half = want.len() / 2;
        let name = format!("{method} {pad:?} {shape:?} crop {crop}");
        assert_eq!(a.shape(), [7, c, vh, vw]);
        assert_rel_close(
            &format!("{name}: first views"),
            &download(&a),
            &want[..half],
            1e-5,
        );
        assert_rel_close(
            &format!("{name}: second views"),
            &download(&b),
            &want[half..],
            1e-5,
        );
        // The draws are real: flips and sigmas vary, and the blur is not the identity.
        assert!(plan.flips.iter().any(|&f| f) && plan.flips.iter().any(|&f| !f));
        assert!(plan.sigmas.iter().all(|&s| (0.1..=2.0).contains(&s)));
    }
}

#[test]
fn bad_plans_and_statistics_are_clear_errors() {
    let Some(gpu) = gpu() else { return };
    let data = random_dataset(2, [1, 8, 8], 9);
    let images = data.upload(&gpu).unwrap();
    let spec = CropSpec::new(Method::Rc, 0.5, 1.0).unwrap();
    let mut pipeline = ViewPipeline::paper(spec, Normalization::paper_cifar10());
    let mut r = ChaCha8Rng::seed_from_u64(0);
    let plan = pipeline.plan(&mut r, &[0, 1], [8, 8]).unwrap();
    let e = pipeline.run(&images, &plan).unwrap_err().to_string();
    assert!(e.contains("3 means") && e.contains("1-channel"), "{e}");
    pipeline.normalization = Normalization::of_dataset(&data).unwrap();
    let bad = pipeline.plan(&mut r, &[0, 7], [8, 8]).unwrap();
    let e = pipeline.run(&images, &bad).unwrap_err().to_string();
    assert!(e.contains("image index 7"), "{e}");
    pipeline.blur_sigma = Some((2.0, 0.1));
    let e = pipeline.plan(&mut r, &[0], [8, 8]).unwrap_err().to_string();
    assert!(e.contains("sigma"), "{e}");
}

#[test]
fn padded_crops_are_torchvision_pad_crop_and_flip() {
    let Some(gpu) = gpu() else { return };
    let (shape, pad) = ([3, 7, 9], 4usize);
    let [c, h, w] = shape;
    let data = random_dataset(5, shape, 11);
    let spec = CropSpec::new(Method::Rc, 1.0, 1.0).unwrap();
    let pipeline = ViewPipeline::paper(spec, Normalization::of_dataset(&data).unwrap());
    let images = data.upload(&gpu).unwrap();
    let indices: Vec<u32> = (0..300).map(|k| (k * 7 % 5) as u32).collect();
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let plan = ViewPlan::padded_crops(&mut r, &indices, [w, h], pad, true);
    let got = download(&pipeline.run_single(&images, &plan).unwrap());

    let norm = &pipeline.normalization;
    let (mut shifts_x, mut shifts_y) = (vec![0usize; 2 * pad + 1], vec![0usize; 2 * pad + 1]);
    for (k, &image) in indices.iter().enumerate() {
        let m = &plan.matrices[6 * k..6 * k + 6];
        let flip = plan.flips[k];
        assert_eq!(
            (m[0], m[1], m[3], m[4]),
            (if flip { -1.0 } else { 1.0 }, 0.0, 0.0, 1.0)
        );
        // The window's left edge in image pixels: where output column 0 (or, mirrored, the
        // last column) reads.
        let left = if flip { m[2] - (w - 1) as f32 } else { m[2] };
        let top = m[5];
        assert!(
            left.fract() == 0.0 && top.fract() == 0.0,
            "whole-pixel shifts: {m:?}"
        );
        let (left, top) = (left as i64, top as i64);
        shifts_x[(left + pad as i64) as usize] += 1;
        shifts_y[(top + pad as i64) as usize] += 1;
        // torchvision: zero-pad by `pad`, take the w x h window at (pad + left, pad + top),
        // mirror it; then normalise.
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sx = left + if flip { (w - 1 - x) as i64 } else { x as i64 };
                    let sy = top + y as i64;
                    let inside = (0..w as i64).contains(&sx) && (0..h as i64).contains(&sy);
                    let raw = if inside {
                        data.pixels()
                            [((image as usize * c + ch) * h + sy as usize) * w + sx as usize]
                            as f64
                            / 255.0
                    } else {
                        0.0
                    };
                    let want = (raw - norm.mean[ch] as f64) / norm.std[ch] as f64;
                    let at = ((k * c + ch) * h + y) * w + x;
                    assert!(
                        (got[at] - want).abs() < 1e-5,
                        "view {k} channel {ch} ({x}, {y}): {} vs {want}",
                        got[at]
                    );
                }
            }
        }
    }
    // Every shift in [-pad, pad] occurs, and both flips.
    assert!(
        shifts_x.iter().chain(&shifts_y).all(|&n| n > 0),
        "{shifts_x:?} {shifts_y:?}"
    );
    assert!(plan.flips.iter().any(|&f| f) && plan.flips.iter().any(|&f| !f));
}
