//! The saliency-guided crops: the summary kernel against its CPU reference, the guides of an
//! encoder that passes its input through (so the heat map is the image), ContrastiveCrop's
//! placement, the guided methods' settings, and a resumed guided run.

mod common;

use std::path::Path;
use std::rc::Rc;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::augment::{Normalization, ViewPipeline};
use taming::autograd::{Graph, Param, Var};
use taming::crop::guided::place_in_hot_box;
use taming::crop::{CropBox, CropSpec, ImageGuide, Method};
use taming::data::Dataset;
use taming::nn::Encoder;
use taming::ops::saliency::{saliency_summary, SUMMARY_WORDS};
use taming::reference::saliency as reference;
use taming::simclr::saliency::refresh_guides;
use taming::simclr::PretrainConfig;
use taming::Tensor;

#[test]
fn summaries_and_heat_maps_match_the_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(7);
    // (images, channels, feature h, w, image h, w): upsampling by non-integer factors, a 1x1
    // map, a map as large as the image, and more images than one workgroup row.
    for (n, c, fh, fw, ih, iw) in [
        (3, 5, 3, 4, 13, 11),
        (2, 128, 7, 7, 28, 28),
        (4, 1, 1, 1, 5, 9),
        (2, 3, 9, 6, 9, 6),
        (70, 2, 2, 3, 8, 8),
    ] {
        let map = data(&mut r, n * c * fh * fw);
        let t = upload(&gpu, &[n, c, fh, fw], &map);
        for threshold in [0.1, 0.6] {
            let (s, heat) = saliency_summary(&t, [ih, iw], threshold as f32, true).unwrap();
            let (got_s, got_h) = (download(&s), download(&heat.unwrap()));
            let mut want_s = Vec::new();
            let mut want_h = Vec::new();
            for image in map.chunks(c * fh * fw) {
                let (s, h) =
                    reference::saliency_summary(&to_f32(image), [c, fh, fw], [ih, iw], threshold);
                want_s.extend(s);
                want_h.extend(h);
            }
            let what = format!("{n}x{c}x{fh}x{fw} -> {ih}x{iw}, threshold {threshold}");
            assert_rel_close(&format!("heat {what}"), &got_h, &want_h, 1e-5);
            // Hot rows and columns are decided by a comparison: equal boxes, not close ones.
            for (k, (g, w)) in got_s
                .chunks(SUMMARY_WORDS)
                .zip(want_s.chunks(SUMMARY_WORDS))
                .enumerate()
            {
                for i in 0..SUMMARY_WORDS {
                    assert!(
                        (g[i] - w[i]).abs() <= 1e-4 * w[i].abs().max(1.0),
                        "summary {what}, image {k}, word {i}: got {} want {}",
                        g[i],
                        w[i]
                    );
                }
            }
        }
    }
}

#[test]
fn a_flat_map_is_hot_everywhere_and_centred() {
    let Some(gpu) = gpu() else { return };
    let t = Tensor::full(&gpu, &[2, 3, 4, 4], 0.25).unwrap();
    let (s, _) = saliency_summary(&t, [10, 6], 0.1, false).unwrap();
    let s = download(&s);
    // Centroid (3, 5), box (0, 0) to the last column and row, all of it hot, range 0.
    let want = [3.0, 5.0, 0.0, 0.0, 5.0 / 6.0, 0.9, 1.0, 0.0].map(|v: f32| v as f64);
    assert_eq!(&s[..8], &want);
    assert_eq!(&s[..8], &s[8..]);
    assert!(saliency_summary(&t, [10, 6], 1.0, false).is_err());
    assert!(saliency_summary(&t, [0, 6], 0.1, false).is_err());
}

/// An encoder whose feature map is its input: the heat map is the (normalised) image.
struct PassThrough;

impl Encoder for PassThrough {
    fn feature_map(&self, _g: &Graph, x: Var, _training: bool) -> taming::Result<Var> {
        Ok(x)
    }
    fn head(&self, _g: &Graph, features: Var) -> taming::Result<Var> {
        Ok(features)
    }
    fn feature_dim(&self) -> usize {
        1
    }
    fn params(&self) -> Vec<Rc<Param>> {
        Vec::new()
    }
    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

/// Dark noisy `size` x `size` images, each with a bright `side` square at a seeded position;
/// returns the data set and the squares' top-left corners.
fn bright_squares(n: usize, size: usize, side: usize) -> (Dataset, Vec<[usize; 2]>) {
    let mut r = rng(11);
    let mut pixels = vec![0u8; n * size * size];
    let mut corners = Vec::new();
    for image in pixels.chunks_mut(size * size) {
        for p in image.iter_mut() {
            *p = r.random_range(0..6);
        }
        let (x0, y0) = (
            r.random_range(0..=size - side),
            r.random_range(0..=size - side),
        );
        for y in y0..y0 + side {
            for x in x0..x0 + side {
                image[y * size + x] = 255;
            }
        }
        corners.push([x0, y0]);
    }
    let labels = vec![0; n];
    let names = vec!["square".to_string()];
    let set = Dataset::new(pixels, labels, [1, size, size], names, Path::new("squares")).unwrap();
    (set, corners)
}

#[test]
fn the_guides_of_a_pass_through_encoder_sit_on_a_bright_off_centre_square() {
    let Some(gpu) = gpu() else { return };
    let (size, side) = (24, 6);
    let (set, corners) = bright_squares(300, size, side);
    let images = set.upload(&gpu).unwrap();
    let pipeline = ViewPipeline::evaluation(Normalization {
        mean: vec![0.0],
        std: vec![1.0],
    });
    let (guides, record) = refresh_guides(&PassThrough, &images, &pipeline, 0.5, 1).unwrap();
    assert_eq!(guides.len(), 300);
    for (k, ((g, &[x0, y0]), image)) in guides
        .iter()
        .zip(&corners)
        .zip(set.pixels().chunks(size * size))
        .enumerate()
    {
        // The map is the image at its own size (no upsampling), min-max normalised: the
        // centroid of (pixel - darkest), computed here in f64.
        let dark = *image.iter().min().unwrap() as f64;
        let (mut mass, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for (i, &p) in image.iter().enumerate() {
            let v = p as f64 - dark;
            mass += v;
            sx += v * ((i % size) as f64 + 0.5);
            sy += v * ((i / size) as f64 + 0.5);
        }
        let (cx, cy) = (sx / mass, sy / mass);
        let off = ((g.centroid[0] as f64 - cx).hypot(g.centroid[1] as f64 - cy)).abs();
        assert!(
            off < 1e-3,
            "image {k}: centroid {:?}, want ({cx}, {cy})",
            g.centroid
        );
        // The dim noise pulls it from the square's centre towards the image's, but not far.
        let square = ((x0 + side / 2) as f64, (y0 + side / 2) as f64);
        assert!((cx - square.0).hypot(cy - square.1) < 2.0, "image {k}");
        let s = size as f32;
        let want = [x0, y0, x0 + side - 1, y0 + side - 1].map(|v| v as f32 / s);
        assert_eq!(
            g.hot_box, want,
            "image {k}: hot box of the square at ({x0}, {y0})"
        );
    }
    assert!(
        record.hot_box_area > 0.0 && record.hot_box_area < 0.1,
        "{record:?}"
    );
    assert!(
        record.centroid_offset > 0.1,
        "the squares are off centre: {record:?}"
    );
}

#[test]
fn saliency_with_centred_guides_draws_exactly_gcc() {
    let gcc = CropSpec::new(Method::Gcc, 0.3, 0.6).unwrap();
    let sal = CropSpec::new(Method::Saliency, 0.3, 0.6).unwrap();
    let centred = ImageGuide::whole(28, 20);
    let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
    for _ in 0..500 {
        let want = gcc.draw_pair(&mut a, 28, 20).unwrap();
        assert_eq!(
            sal.draw_pair_guided(&mut b, 28, 20, Some(&centred))
                .unwrap(),
            want
        );
    }
    // Off-centre guides move the Gaussian's mean, not its spread.
    let guide = ImageGuide {
        centroid: [5.0, 15.0],
        hot_box: [0.0, 0.0, 1.0, 1.0],
    };
    let draws: Vec<[f64; 2]> = (0..4000)
        .flat_map(|_| {
            sal.draw_pair_guided(&mut b, 28, 20, Some(&guide))
                .unwrap()
                .centres
        })
        .collect();
    let mean = |i: usize| draws.iter().map(|c| c[i]).sum::<f64>() / draws.len() as f64;
    let var = |i: usize| {
        let m = mean(i);
        draws.iter().map(|c| (c[i] - m).powi(2)).sum::<f64>() / draws.len() as f64
    };
    // Standard errors: sqrt(0.6 * 28 / 8000) = 0.05 in x, 0.04 in y.
    assert!((mean(0) - 5.0).abs() < 0.2 && (mean(1) - 15.0).abs() < 0.2);
    assert!((var(0) / (0.6 * 28.0) - 1.0).abs() < 0.1 && (var(1) / (0.6 * 20.0) - 1.0).abs() < 0.1);
}

#[test]
fn contrastive_crop_centres_lie_in_the_hot_box_with_the_u_shape_of_beta() {
    let (w, h) = (40, 32);
    let guide = ImageGuide {
        centroid: [20.0, 16.0],
        hot_box: [0.25, 0.5, 0.75, 0.875],
    };
    let size = CropBox {
        left: 0,
        top: 0,
        width: 8,
        height: 6,
    };
    let mut r = ChaCha8Rng::seed_from_u64(5);
    let (mut lefts, mut tops) = (Vec::new(), Vec::new());
    for _ in 0..20_000 {
        let b = place_in_hot_box(&mut r, &guide, w, h, size, 0.1);
        assert!(b.inside(w, h), "{b:?} leaves the image");
        assert_eq!((b.width, b.height), (8, 6));
        // The box's centre (left + width / 2) ranges over [x0 W, x1 W], as ContrastiveCrop's.
        let (cx, cy) = (b.left + 4, b.top + 3);
        assert!(
            (10..=30).contains(&cx) && (16..=28).contains(&cy),
            "centre ({cx}, {cy})"
        );
        lefts.push(b.left);
        tops.push(b.top);
    }
    // Beta(0.1, 0.1): about 43 % of its mass in each outer tenth, 2.4 % in the middle fifth.
    let share = |v: &[i64], lo: i64, hi: i64| {
        v.iter().filter(|&&x| lo <= x && x <= hi).count() as f64 / v.len() as f64
    };
    // Lefts are 6 + trunc(20 t): the outer tenths of t give 6-7 and 24-25 (26 only at t = 1),
    // the middle fifth 14-17. Tops are 13 + trunc(12 t): 13 below t = 1/12, 24-25 above 11/12.
    let (edges, middle) = (
        share(&lefts, 6, 7) + share(&lefts, 24, 26),
        share(&lefts, 14, 17),
    );
    assert!(
        edges > 0.8 && middle < 0.06,
        "edges {edges}, middle {middle}"
    );
    let top_edges = share(&tops, 13, 13) + share(&tops, 24, 25);
    assert!(top_edges > 0.75, "top edges {top_edges}");
    // Beta(1, 1) is uniform: no such shape.
    let flat: Vec<i64> = (0..20_000)
        .map(|_| place_in_hot_box(&mut r, &guide, w, h, size, 1.0).left)
        .collect();
    assert!(share(&flat, 14, 18) > 0.2);
}

#[test]
fn bad_guided_settings_are_one_clear_error() {
    let mut c = PretrainConfig::new(Method::Saliency, 0.4, 0.5, 10);
    c.validate().unwrap();
    c.guide.warmup = Some(10);
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("--saliency-warmup 10") && e.contains("--epochs"),
        "{e}"
    );
    c.guide.warmup = Some(2);
    c.guide.every = Some(0);
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("--saliency-every"));
    c.guide.every = None;
    for t in [0.0, 1.0, -0.5, f64::NAN] {
        c.guide.threshold = t;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("--ccrop-threshold") && e.contains("(0, 1)"),
            "{e}"
        );
    }
    c.guide.threshold = 0.1;
    c.method = Method::Ccrop;
    for beta in [0.0, -1.0, f64::INFINITY] {
        c.guide.ccrop_beta = beta;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("--ccrop-beta"), "{e}");
    }
    // A warm-up as long as the run is fine for an unguided method, which never refreshes.
    let mut gcc = PretrainConfig::new(Method::Gcc, 0.4, 0.5, 3);
    gcc.guide.warmup = Some(5);
    gcc.validate().unwrap();
}

#[test]
fn a_resumed_guided_run_ends_where_an_uninterrupted_one_does() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    for method in [Method::Saliency, Method::Ccrop] {
        // Refreshes before epochs 2 and 4; stopped after 2, so epoch 3 draws from the guides
        // the checkpoint carries.
        let mut config = PretrainConfig::new(method, 0.4, 0.5, 4);
        config.batch = 32;
        config.train_limit = Some(64);
        config.loss_every = 1;
        config.guide.warmup = Some(1);
        config.guide.every = Some(2);
        let (whole, split, straight, resumed) = straight_and_resumed(&gpu, &config, "saliency", 2);
        let refreshed: Vec<usize> = straight
            .iter()
            .filter_map(|r| r.refresh.map(|f| f.epoch))
            .collect();
        assert_eq!(refreshed, [2, 4], "{method}");
        for (a, b) in straight.iter().zip(&resumed) {
            assert_eq!(a.loss, b.loss, "{method} epoch {} loss", a.epoch);
        }
        let names = assert_same_checkpoints(&whole, &split, &method.to_string());
        assert!(names.iter().any(|(n, s)| n == "guides" && s == &[64, 6]));
        for dir in [whole, split] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
