//! The learnt crop placement: its kernels against the CPU reference and finite differences,
//! the gradient of the localiser's loss through the whole chain, the untrained localiser as
//! GCC, the overlap hinge holding the views together, its settings, and a resumed run.

mod common;

use std::rc::Rc;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use taming::augment::{Normalization, ViewPipeline};
use taming::autograd::{Graph, Param};
use taming::crop::{CropSpec, Method};
use taming::ops::affine_sample::{pack_view_info, PackedImages, ViewInfo, VIEW_INFO_WORDS};
use taming::ops::blur_normalize::{blur_normalize_backward, blur_normalize_single};
use taming::ops::stn::{
    agreement, overlap_hinge, view_matrices, view_matrices_backward, view_matrices_forward,
    Placement, DRAW_WORDS, PLACEMENT_WORDS, STAT_WORDS,
};
use taming::reference::augment::blur_normalize as reference_blur_normalize;
use taming::reference::stn as reference;
use taming::simclr::checkpoint::Checkpoint;
use taming::simclr::stn::{consistency_loss, draw_views, LearntPlacement};
use taming::simclr::{PretrainConfig, StnObjective};
use taming::{Gpu, Tensor};

/// Draws of `views` views: standard normal noise and a flip each, rounded to f32.
fn random_draws(r: &mut impl Rng, views: usize) -> Vec<f64> {
    (0..views)
        .flat_map(|_| {
            let n: [f64; 2] = [r.sample(StandardNormal), r.sample(StandardNormal)];
            [
                n[0] as f32 as f64,
                n[1] as f32 as f64,
                r.random_bool(0.5) as u8 as f64,
            ]
        })
        .collect()
}

/// Odd image and view sizes, a floor that holds for some images and not others.
fn odd_placement() -> Placement {
    Placement::gcc([13, 11], [7, 5], 1.5, 0.8, 0.3)
}

#[test]
fn matrices_statistics_hinge_and_agreement_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(1);
    let at = odd_placement();
    // More images than one workgroup; outputs far from zero so that tanh and the floor bend.
    for b in [1, 3, 70] {
        let rv: Vec<f64> = data(&mut r, b * PLACEMENT_WORDS)
            .iter()
            .map(|x| 2.0 * x)
            .collect();
        let draws = random_draws(&mut r, 2 * b);
        let rt = upload(&gpu, &[b, PLACEMENT_WORDS], &rv);
        let dt = upload(&gpu, &[2 * b, DRAW_WORDS], &draws);
        let (m, stats) = view_matrices_forward(&rt, &dt, &at).unwrap();
        let (want_m, want_s) = reference::view_matrices(&rv, &draws, &at);
        assert_rel_close(
            &format!("matrices, {b} images"),
            &download(&m),
            &want_m,
            1e-5,
        );
        assert_rel_close(
            &format!("statistics, {b} images"),
            &download(&stats),
            &want_s,
            1e-5,
        );
        assert_eq!(stats.shape(), [b, STAT_WORDS]);
        let g = Graph::no_grad(&gpu);
        let hinge = overlap_hinge(&g, g.input(rt.clone()), &dt, &at).unwrap();
        let want = reference::overlap_hinge(&rv, &draws, &at);
        assert_rel_close("overlap hinge", &download(&g.value(hinge)), &[want], 1e-5);
    }
    for (rows, n, d) in [(6, 3, 5), (2, 1, 1), (140, 70, 17)] {
        let u = data(&mut r, rows * d);
        let t = data(&mut r, n * d);
        let g = Graph::no_grad(&gpu);
        let a = agreement(
            &g,
            g.input(upload(&gpu, &[rows, d], &u)),
            &upload(&gpu, &[n, d], &t),
        );
        let got = download(&g.value(a.unwrap()));
        assert_rel_close("agreement", &got, &[reference::agreement(&u, &t, d)], 1e-5);
    }
}

#[test]
fn matrix_hinge_and_agreement_gradients_match_finite_differences() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(2);
    let at = odd_placement();
    let b = 5;
    let rv: Vec<f64> = data(&mut r, b * PLACEMENT_WORDS)
        .iter()
        .map(|x| 1.5 * x)
        .collect();
    let draws = random_draws(&mut r, 2 * b);
    let dt = upload(&gpu, &[2 * b, DRAW_WORDS], &draws);
    let all: Vec<usize> = (0..rv.len()).collect();
    // The matrices: sum(w * M) for random w.
    let w = data(&mut r, 12 * b);
    let dr = view_matrices_backward(
        &upload(&gpu, &[b, PLACEMENT_WORDS], &rv),
        &dt,
        &at,
        &upload(&gpu, &[2 * b, 6], &w),
    )
    .unwrap();
    let mut f = |x: &[f64]| dot(&w, &reference::view_matrices(x, &draws, &at).0);
    let want = finite_difference(&mut f, &rv, &all, 1e-5);
    assert_rel_close("matrix gradient", &download(&dr), &want, 1e-4);
    // The hinge, through the tape, at an overlap bound most pairs fall below.
    let at = Placement::gcc([13, 11], [7, 5], 1.5, 0.8, 0.9);
    let p = Rc::new(Param::new("r", upload(&gpu, &[b, PLACEMENT_WORDS], &rv)));
    let g = Graph::new(&gpu);
    let h = overlap_hinge(&g, g.param(&p), &dt, &at).unwrap();
    g.backward(h).unwrap();
    let mut f = |x: &[f64]| reference::overlap_hinge(x, &draws, &at);
    let want = finite_difference(&mut f, &rv, &all, 1e-5);
    assert!(
        want.iter().any(|&v| v != 0.0),
        "the hinge is active somewhere"
    );
    assert_rel_close("hinge gradient", &download(&p.grad().unwrap()), &want, 1e-4);
    // The agreement.
    let (rows, n, d) = (6, 3, 4);
    let (u, t) = (data(&mut r, rows * d), data(&mut r, n * d));
    let p = Rc::new(Param::new("u", upload(&gpu, &[rows, d], &u)));
    let g = Graph::new(&gpu);
    let a = agreement(&g, g.param(&p), &upload(&gpu, &[n, d], &t)).unwrap();
    g.backward(a).unwrap();
    let mut f = |x: &[f64]| reference::agreement(x, &t, d);
    let want = finite_difference(&mut f, &u, &(0..u.len()).collect::<Vec<_>>(), 1e-5);
    assert_rel_close(
        "agreement gradient",
        &download(&p.grad().unwrap()),
        &want,
        1e-5,
    );
}

#[test]
fn blur_normalise_backward_is_the_transpose_of_its_forward() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(3);
    // Rows and columns of 1 and 2 pixels reflect onto themselves and each other.
    for (v, c, h, w) in [(3, 1, 1, 2), (2, 3, 5, 3), (4, 2, 2, 7), (1, 1, 9, 9)] {
        let x = data(&mut r, v * c * h * w);
        let dy = data(&mut r, v * c * h * w);
        let blur: Vec<[f64; 2]> = (0..v)
            .map(|_| {
                let side = r.random_range(0.0..0.3f32) as f64;
                [1.0 - 2.0 * side, side]
            })
            .collect();
        let info: Vec<ViewInfo> = blur
            .iter()
            .map(|b| ViewInfo {
                blur: [b[0] as f32, b[1] as f32],
                ..ViewInfo::whole(0)
            })
            .collect();
        let info_t = Tensor::from_u32(&gpu, &[v, VIEW_INFO_WORDS], &pack_view_info(&info)).unwrap();
        let (mean, std) = (
            vec![0.3; c],
            (0..c).map(|k| 0.5 + k as f32).collect::<Vec<_>>(),
        );
        let dx = blur_normalize_backward(&upload(&gpu, &[v, c, h, w], &dy), &info_t, &std).unwrap();
        // <y(x) - y(0), dy> = <x, dx>: the normalisation's shift drops out.
        let std64: Vec<f64> = std.iter().map(|&s| s as f64).collect();
        let y = reference_blur_normalize(&x, [v, c, h, w], &blur, &vec![0.0; c], &std64);
        let want: Vec<f64> = (0..x.len())
            .map(|i| {
                let mut e = vec![0.0; x.len()];
                e[i] = 1.0;
                dot(
                    &dy,
                    &reference_blur_normalize(&e, [v, c, h, w], &blur, &vec![0.0; c], &std64),
                )
            })
            .collect();
        assert_rel_close(
            &format!("blur backward {v}x{c}x{h}x{w}"),
            &download(&dx),
            &want,
            1e-5,
        );
        assert!((dot(&dy, &y) - dot(&x, &want)).abs() < 1e-9 * (1.0 + dot(&dy, &y).abs()));
        // The forward the backward belongs to is the one the pipeline runs.
        let fwd = blur_normalize_single(&upload(&gpu, &[v, c, h, w], &x), &info_t, &mean, &std);
        let shifted = reference_blur_normalize(&x, [v, c, h, w], &blur, &[0.3; 3][..c], &std64);
        assert_rel_close("blur forward", &download(&fwd.unwrap()), &shifted, 1e-5);
    }
}

/// `n` smooth u8 images of `c` x `h` x `w` (slow sums of sines), so that bilinear sampling's
/// kinks at pixel boundaries stay small for finite differences.
fn smooth_images(gpu: &Gpu, n: usize, [c, h, w]: [usize; 3], seed: u64) -> PackedImages {
    let mut r = rng(seed);
    let mut bytes = Vec::with_capacity(n * c * h * w);
    for _ in 0..n * c {
        let (fx, fy, px, py): (f64, f64, f64, f64) = (
            r.random_range(0.2..0.6),
            r.random_range(0.2..0.6),
            r.random_range(0.0..6.0),
            r.random_range(0.0..6.0),
        );
        for y in 0..h {
            for x in 0..w {
                let v = 0.5 + 0.25 * ((fx * x as f64 + px).sin() + (fy * y as f64 + py).sin());
                bytes.push((255.0 * v).round() as u8);
            }
        }
    }
    PackedImages::upload(gpu, &bytes, [n, c, h, w]).unwrap()
}

#[test]
fn the_consistency_loss_gradient_reaches_the_localiser_through_the_whole_chain() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let (b, wh) = (4, [12, 12]);
    let images = smooth_images(&gpu, b, [1, 12, 12], 4);
    let mut config = PretrainConfig::new(Method::Stn, 0.4, 1.0, 4);
    config.stn.min_spread = Some(0.05);
    let learnt = LearntPlacement::new(&gpu, &config, 1, wh).unwrap();
    // Move the localiser off its zero start, so that offsets and spreads vary per image.
    let mut r = rng(5);
    for p in learnt.localiser.params() {
        let v = to_f32(&uniform(&mut r, p.value.numel(), -0.5, 0.5));
        p.value.write(&v).unwrap();
    }
    let encoder = taming::simclr::initial_encoder(&gpu, config.model, 0, 1, 16).unwrap();
    let spec = CropSpec::new(Method::Stn, 0.4, 1.0).unwrap();
    let pipeline = ViewPipeline::paper(
        spec,
        Normalization {
            mean: vec![0.5],
            std: vec![0.25],
        },
    );
    let indices = [0u32, 1, 2, 3];
    let (draws, info) = draw_views(&mut ChaCha8Rng::seed_from_u64(6), &pipeline, &indices, wh);
    let draws = Tensor::from_slice(&gpu, &[2 * b, DRAW_WORDS], &draws).unwrap();
    let info = Tensor::from_u32(&gpu, &[2 * b, VIEW_INFO_WORDS], &pack_view_info(&info)).unwrap();
    let whole = pipeline
        .run_single(
            &images,
            &taming::augment::ViewPlan::whole_images(&indices, wh),
        )
        .unwrap();
    let target = learnt
        .consistency_target(encoder.as_ref(), &pipeline, &images, &indices)
        .unwrap();
    // The localiser's loss as the step computes it (batch norm in training mode).
    let loss_of = |learnt: &LearntPlacement, g: &Graph| {
        let rv = learnt.localiser.forward(g, g.input(whole.clone())).unwrap();
        let (v1, v2, _) = learnt
            .views(g, rv, &draws, &info, &images, &pipeline)
            .unwrap();
        let z1 = encoder.forward(g, v1, true).unwrap();
        let z2 = encoder.forward(g, v2, true).unwrap();
        consistency_loss(g, z1, z2, &target).unwrap()
    };
    let g = Graph::new(&gpu);
    let loss = loss_of(&learnt, &g);
    g.backward_into(loss, &learnt.localiser.params()).unwrap();
    assert!(
        encoder.params().iter().all(|p| p.grad().is_none()),
        "the encoder gets no gradient from the localiser's loss"
    );
    let mut checked = 0;
    for p in learnt.localiser.params() {
        let analytic = download(&p.grad().unwrap());
        let values = download(&p.value);
        // A few coordinates of every parameter, the largest gradients among them.
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&i, &j| analytic[j].abs().total_cmp(&analytic[i].abs()));
        let idx: Vec<usize> = order.into_iter().take(3).collect();
        let mut f = |x: &[f64]| {
            p.value.write(&to_f32(x)).unwrap();
            let g = Graph::no_grad(&gpu);
            g.value(loss_of(&learnt, &g)).item().unwrap() as f64
        };
        // The loss bends sharply (the spread's floor, tanh, bilinear taps): a small step.
        let numeric = finite_difference(&mut f, &values, &idx, 5e-4);
        p.value.write(&to_f32(&values)).unwrap();
        let got: Vec<f64> = idx.iter().map(|&i| analytic[i]).collect();
        // f32 through the localiser, the sampler, two batch-normed encoder passes and the
        // cosine, differenced at a small step: 2 % of the gradient's size.
        assert_rel_close(
            &format!("localiser gradient of {}", p.name),
            &got,
            &numeric,
            2e-2,
        );
        checked += idx.len();
    }
    assert!(checked >= 12);
}

#[test]
fn the_untrained_localiser_places_views_as_gcc_does() {
    let Some(gpu) = gpu() else { return };
    let (wh, alpha) = ([28, 28], 1.5);
    let config = PretrainConfig::new(Method::Stn, 0.4, alpha, 4);
    let learnt = LearntPlacement::new(&gpu, &config, 1, wh).unwrap();
    let b = 4096;
    let images = smooth_images(&gpu, 8, [1, 28, 28], 7);
    let indices: Vec<u32> = (0..b as u32).map(|i| i % 8).collect();
    let spec = CropSpec::new(Method::Gcc, 0.4, alpha).unwrap();
    let pipeline = ViewPipeline::paper(
        spec,
        Normalization {
            mean: vec![0.5],
            std: vec![0.25],
        },
    );
    let whole = pipeline
        .run_single(
            &images,
            &taming::augment::ViewPlan::whole_images(&indices, wh),
        )
        .unwrap();
    let r = learnt.outputs(&whole).unwrap();
    assert!(
        r.iter().all(|&v| v == 0.0),
        "a zero last layer outputs zero"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (draws, _) = draw_views(&mut rng, &pipeline, &indices, wh);
    let g = Graph::no_grad(&gpu);
    let rt = g.input(Tensor::from_slice(&gpu, &[b, PLACEMENT_WORDS], &r).unwrap());
    let dt = Tensor::from_slice(&gpu, &[2 * b, DRAW_WORDS], &draws).unwrap();
    let (m, _) = view_matrices(&g, rt, &dt, &learnt.placement).unwrap();
    let m = download(&g.value(m));
    let [vw, vh] = learnt.placement.view_wh.map(|v| v as f64);
    // The centres back from the matrices (a flipped view's x translation starts at its right).
    let centres: Vec<[f64; 2]> = m
        .chunks(6)
        .map(|m| {
            let left = if m[0] < 0.0 { m[2] - (vw - 1.0) } else { m[2] };
            [left + vw / 2.0, m[5] + vh / 2.0]
        })
        .collect();
    // GCC's own sampler, for the same number of centres.
    let mut gcc_rng = ChaCha8Rng::seed_from_u64(9);
    let gcc: Vec<[f64; 2]> = (0..b)
        .flat_map(|_| spec.draw_pair(&mut gcc_rng, 28, 28).unwrap().centres)
        .collect();
    let n = centres.len() as f64;
    let var_want = alpha * 28.0;
    for a in 0..2 {
        let stats = |c: &[[f64; 2]]| {
            let mean = c.iter().map(|c| c[a]).sum::<f64>() / n;
            let var = c.iter().map(|c| (c[a] - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var)
        };
        let ((mean, var), (gcc_mean, gcc_var)) = (stats(&centres), stats(&gcc));
        // Five standard errors: of the mean sqrt(var / n), of the variance var sqrt(2 / n).
        let (se_mean, se_var) = ((var_want / n).sqrt(), var_want * (2.0 / n).sqrt());
        assert!((mean - 14.0).abs() < 5.0 * se_mean, "axis {a}: mean {mean}");
        assert!(
            (var - var_want).abs() < 5.0 * se_var,
            "axis {a}: variance {var}"
        );
        assert!(
            (mean - gcc_mean).abs() < 7.0 * se_mean,
            "axis {a}: GCC's mean {gcc_mean}"
        );
        assert!(
            (var - gcc_var).abs() < 7.0 * se_var,
            "axis {a}: GCC's variance {gcc_var}"
        );
    }
}

/// Pushes each pair's views apart along its noise (maximising the views' translations'
/// agreement with that direction), with the overlap hinge at `weight`, for 300 Adam steps on
/// the placements themselves; returns the final mean IoU.
fn pushed_apart(gpu: &Gpu, weight: f32) -> f64 {
    let b = 64;
    let at = Placement::gcc([28, 28], [17, 17], 1.5, 0.05, 0.3);
    let mut r = rng(10);
    let draws = random_draws(&mut r, 2 * b);
    let mut push = vec![0.0; 12 * b];
    for k in 0..b {
        for (a, entry) in [(0, 2), (1, 5)] {
            let d = draws[DRAW_WORDS * k + a] - draws[DRAW_WORDS * (b + k) + a];
            push[6 * k + entry] = d.signum();
            push[6 * (b + k) + entry] = -d.signum();
        }
    }
    let dt = upload(gpu, &[2 * b, DRAW_WORDS], &draws);
    let push = upload(gpu, &[2 * b, 6], &push);
    let p = Rc::new(Param::new(
        "r",
        Tensor::zeros(gpu, &[b, PLACEMENT_WORDS]).unwrap(),
    ));
    let mut adam = taming::optim::Adam::new(vec![p.clone()], 0.05);
    for _ in 0..300 {
        let g = Graph::new(gpu);
        let (m, _) = view_matrices(&g, g.param(&p), &dt, &at).unwrap();
        let apart = agreement(&g, m, &push).unwrap();
        let hinge = overlap_hinge(&g, g.param(&p), &dt, &at).unwrap();
        let hinge = taming::ops::elementwise::scale(&g, hinge, weight).unwrap();
        let total = taming::ops::elementwise::add(&g, apart, hinge).unwrap();
        g.backward(total).unwrap();
        adam.step().unwrap();
    }
    let (_, stats) = view_matrices_forward(&p.value, &dt, &at).unwrap();
    let s = download(&stats);
    s.iter().skip(3).step_by(STAT_WORDS).sum::<f64>() / b as f64
}

#[test]
fn the_overlap_hinge_holds_the_views_together() {
    let Some(gpu) = gpu() else { return };
    let free = pushed_apart(&gpu, 0.0);
    let held = pushed_apart(&gpu, 100.0);
    assert!(free < 0.1, "unheld, the views drift apart (IoU {free:.3})");
    // Pairs whose noise keeps them together at any spread sit above the bound; the rest
    // settle at it: the mean stays at or above it, less a little slack.
    assert!(held > 0.3 - 0.03, "held, IoU {held:.3} stays near 0.3");
}

#[test]
fn bad_learnt_placement_settings_get_one_clear_error() {
    let base = PretrainConfig::new(Method::Stn, 0.4, 1.5, 4);
    type Spoil = fn(&mut PretrainConfig);
    let cases: [(&str, Spoil); 6] = [
        ("--stn-warmup", |c| c.stn.warmup = Some(4)),
        ("--stn-min-spread", |c| c.stn.min_spread = Some(0.0)),
        ("--stn-min-spread", |c| c.stn.min_spread = Some(-1.0)),
        ("--stn-min-iou", |c| c.stn.min_iou = 1.0),
        ("--stn-lr", |c| c.stn.lr = f64::NAN),
        ("--stn-every", |c| c.stn.every = 0),
    ];
    for (flag, spoil) in cases {
        let mut c = base.clone();
        spoil(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(flag), "{flag}: {e}");
    }
    assert!(base.validate().is_ok());
    // A warm-up of all the epochs is fine for a method that has no localiser.
    let mut gcc = base.clone();
    gcc.method = Method::Gcc;
    gcc.stn.warmup = Some(4);
    assert!(gcc.validate().is_ok());
}

#[test]
fn a_resumed_learnt_run_ends_where_an_uninterrupted_one_does() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    // The localiser learning on every step, and on every other one (it still places all).
    for (objective, every) in [
        (StnObjective::Consistency, 1),
        (StnObjective::Adversarial, 1),
        (StnObjective::Consistency, 2),
    ] {
        let mut config = PretrainConfig::new(Method::Stn, 0.4, 1.5, 3);
        config.stn.every = every;
        config.batch = 32;
        config.train_limit = Some(64);
        config.loss_every = 1;
        config.stn.objective = objective;
        config.stn.warmup = Some(1);
        let (whole, split, straight, resumed) = straight_and_resumed(&gpu, &config, "stn", 2);
        assert!(straight[0].placement.unwrap().localiser_loss.is_none());
        assert!(straight[2].placement.unwrap().localiser_loss.is_some());
        for (a, b) in straight.iter().zip(&resumed) {
            assert_eq!(a.loss, b.loss, "{objective} epoch {} loss", a.epoch);
            assert_eq!(a.placement, b.placement, "{objective} epoch {}", a.epoch);
        }
        // Two steps an epoch, two epochs after the warm-up: the localiser's Adam stepped on
        // every `every`-th of those four steps.
        let ck = Checkpoint::load(&whole).unwrap();
        let steps: Vec<u32> = serde_json::from_str(&ck.metadata["stn_optimizer_steps"]).unwrap();
        assert!(
            steps.iter().all(|&s| s as usize == 4 / every),
            "{objective}: {steps:?}"
        );
        let names = assert_same_checkpoints(&whole, &split, &objective.to_string());
        assert!(names.iter().any(|(n, _)| n == "stn/param/stn.fc.weight"));
        assert!(names.iter().any(|(n, _)| n.starts_with("stn/optim/")));
        for dir in [whole, split] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
