//! `bench-train`: the step's flops are those of the small CNN's convolutions, linear layer and
//! NT-Xent counted by hand; the projection is the arithmetic of the sweep's grid; bad settings
//! are refused by name.

mod common;

use common::*;
use taming::crop::Method;
use taming::experiment::bench_train::{
    bench_train, project, BenchTrainReport, BenchTrainSpec, SizeTiming,
};
use taming::experiment::preset::{Overrides, Preset, SweepSpec};
use taming::nn::small_cnn::SMALL_CNN_STAGES;
use taming::nn::ModelKind;

/// The quick preset's small CNN at batch 4 and one crop size.
fn tiny_sweep(crop: f64) -> SweepSpec {
    let mut sweep = SweepSpec::with(
        Preset::Quick,
        Overrides {
            batch: Some(4),
            crops: Some(vec![crop]),
            alphas: Some(vec![1.5]),
            methods: Some(vec![Method::Rc, Method::Gcc]),
            label_views: Some(0),
            ..Overrides::default()
        },
    )
    .unwrap();
    sweep.model = ModelKind::SmallCnn;
    sweep
}

fn tiny_spec() -> BenchTrainSpec {
    BenchTrainSpec {
        steps: 1,
        images: 8,
        image_shape: [1, 12, 12],
        learnt: false,
        seed: 3,
    }
}

/// Flops of one SimCLR step of the small CNN on two batches of `side`x`side` views: every
/// convolution forward, its weight gradient, and its input gradient except the first's (the
/// views need none); the linear head three times; NT-Xent's similarity matrix twice.
fn small_cnn_step_flops(batch: usize, channels: usize, side: usize) -> f64 {
    let (mut cin, mut h, mut conv) = (channels, side, 0.0);
    for (i, &(cout, stride)) in SMALL_CNN_STAGES.iter().enumerate() {
        let ho = (h + 2 - 3) / stride + 1;
        let f = 2.0 * (batch * cout * ho * ho * cin * 9) as f64;
        conv += f * if i == 0 { 2.0 } else { 3.0 };
        (cin, h) = (cout, ho);
    }
    let head = 3.0 * 2.0 * (batch * cin * 128) as f64;
    let rows = 2 * batch;
    let ntxent = 2.0 * 2.0 * (rows * rows * 128) as f64;
    2.0 * (conv + head) + ntxent
}

#[test]
fn the_step_counts_the_flops_of_its_convolutions_and_products() {
    let Some(gpu) = gpu() else { return };
    let sweep = tiny_sweep(0.4);
    let report = bench_train(&gpu, &sweep, &tiny_spec()).unwrap();
    assert_eq!(report.sizes.len(), 2, "the crop size and whole images");
    // sqrt(0.4) * 12 = 7.6: 7x7 views; whole images 12x12.
    for (timing, side) in report.sizes.iter().zip([7, 12]) {
        assert_eq!(timing.view, [side, side]);
        let want = small_cnn_step_flops(4, 1, side) / 1e9;
        let rel = (timing.gflop_per_step - want).abs() / want;
        assert!(
            rel < 1e-9,
            "crop {}: {} GFLOP counted, {want} by hand",
            timing.crop,
            timing.gflop_per_step
        );
        assert!(timing.step_ms > 0.0 && timing.forward_images_per_second > 0.0);
        assert!(timing.learnt_step_ms.is_none());
    }
    assert!(report.loss.is_finite());
}

#[test]
fn the_learnt_step_is_timed_where_the_grid_has_stn_runs() {
    let Some(gpu) = gpu() else { return };
    let mut sweep = tiny_sweep(0.4);
    sweep.methods.push(Method::Stn);
    let spec = BenchTrainSpec {
        learnt: true,
        ..tiny_spec()
    };
    let report = bench_train(&gpu, &sweep, &spec).unwrap();
    assert!(report.at(0.4).unwrap().learnt_step_ms.unwrap() > 0.0);
    assert!(
        report.at(1.0).unwrap().learnt_step_ms.is_none(),
        "whole images are no grid cell"
    );
}

/// A report of 100 ms per step and 1,000 forward images/s at every size.
fn flat_report(crops: &[f64], learnt_ms: Option<f64>) -> BenchTrainReport {
    let sizes = crops
        .iter()
        .chain([1.0].iter())
        .map(|&crop| SizeTiming {
            crop,
            view: [1, 1],
            step_ms: 100.0,
            images_per_second: 5120.0,
            gflop_per_step: 1.0,
            gflops: 10.0,
            forward_images_per_second: 1000.0,
            learnt_step_ms: learnt_ms.filter(|_| crop < 1.0),
        })
        .collect();
    BenchTrainReport {
        adapter: "test".into(),
        model: "resnet18".into(),
        batch: 512,
        image_shape: [3, 32, 32],
        steps: 1,
        sizes,
        loss: 1.0,
    }
}

fn paper_sweep(methods: Vec<Method>, epochs: usize, label_views: usize) -> SweepSpec {
    SweepSpec::with(
        Preset::Paper,
        Overrides {
            data: Some("cifar".into()),
            methods: Some(methods),
            crops: Some(vec![0.4]),
            seeds: Some(vec![0]),
            epochs: Some(epochs),
            label_views: Some(label_views),
            ..Overrides::default()
        },
    )
    .unwrap()
}

#[test]
fn the_projection_is_the_grids_arithmetic() {
    let sweep = paper_sweep(vec![Method::Rc], 2, 0);
    let p = project(&flat_report(&[0.4], None), &sweep, 50_000, 10_000).unwrap();
    assert_eq!(p.runs, 2, "the random baseline and one RC run");
    // 2 epochs x 97 steps of 512 x 0.1 s.
    assert_abs_diff_eq(p.parts[0].seconds, 2.0 * 97.0 * 0.1);
    // Two probes of 100 epochs over 50,000 training images and one pass over the test images,
    // at 1,000 images/s.
    assert_abs_diff_eq(
        p.parts[3].seconds,
        2.0 * (100.0 * 50_000.0 + 10_000.0) / 1000.0,
    );
    let sum: f64 = p.parts.iter().map(|part| part.seconds).sum();
    assert_abs_diff_eq(p.total_seconds, sum);

    // Twice the epochs: twice the pre-training, the same probes.
    let longer = project(
        &flat_report(&[0.4], None),
        &paper_sweep(vec![Method::Rc], 4, 0),
        50_000,
        10_000,
    )
    .unwrap();
    assert_abs_diff_eq(longer.parts[0].seconds, 2.0 * p.parts[0].seconds);
    assert_abs_diff_eq(longer.parts[3].seconds, p.parts[3].seconds);
}

#[test]
fn the_learnt_runs_pay_their_step_after_the_warm_up() {
    // stn over 8 epochs: a warm-up of 2 at 100 ms per step, 6 at 250 ms.
    let sweep = paper_sweep(vec![Method::Stn], 8, 0);
    let p = project(&flat_report(&[0.4], Some(250.0)), &sweep, 50_000, 10_000).unwrap();
    assert_eq!(p.parts[1].runs, 1);
    assert_abs_diff_eq(p.parts[1].seconds, 97.0 * (2.0 * 0.1 + 6.0 * 0.25));
    // Unmeasured, it is projected at the plain step's cost, and the projection says so.
    let unmeasured = project(&flat_report(&[0.4], None), &sweep, 50_000, 10_000).unwrap();
    assert_abs_diff_eq(unmeasured.parts[1].seconds, 97.0 * 8.0 * 0.1);
    assert!(unmeasured
        .caveats
        .iter()
        .any(|c| c.contains("not measured")));
}

#[test]
fn the_label_check_is_projected_with_its_oracle_and_views() {
    let sweep = paper_sweep(vec![Method::Rc, Method::Gcc], 2, 4);
    let p = project(&flat_report(&[0.4], None), &sweep, 50_000, 10_000).unwrap();
    let oracle = p
        .parts
        .iter()
        .find(|part| part.what.contains("oracle"))
        .unwrap();
    // 30 epochs of 50,000 images at half a 100 ms step of 512 per image.
    assert_abs_diff_eq(oracle.seconds, 30.0 * 50_000.0 * 0.05 / 512.0);
    let views = p
        .parts
        .iter()
        .find(|part| part.what.contains("labelling"))
        .unwrap();
    // The whole test images, then 2 cells x 10,000 images x 4 pairs x 2 views, at 1,000/s.
    assert_abs_diff_eq(views.seconds, (10_000.0 + 2.0 * 80_000.0) / 1000.0);
}

#[test]
fn bad_settings_are_refused_by_name() {
    let Some(gpu) = gpu() else { return };
    let sweep = tiny_sweep(0.4);
    let cases = [
        (
            BenchTrainSpec {
                steps: 0,
                ..tiny_spec()
            },
            "--steps",
        ),
        (
            BenchTrainSpec {
                images: 3,
                ..tiny_spec()
            },
            "--images",
        ),
    ];
    for (spec, flag) in cases {
        let err = bench_train(&gpu, &sweep, &spec).unwrap_err().to_string();
        assert!(err.contains(flag), "{flag}: {err}");
    }
    // A projection of a crop size that was not measured.
    let err = project(
        &flat_report(&[0.2], None),
        &paper_sweep(vec![Method::Rc], 1, 0),
        50_000,
        10_000,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("crop size 0.4"), "{err}");
}

fn assert_abs_diff_eq(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "got {got}, want {want}"
    );
}
