mod common;

use std::rc::Rc;

use common::*;
use taming::ops::batchnorm::{
    batch_norm_backward, batch_norm_backward_with, batch_norm_forward, batch_norm_forward_with,
    BatchNormState, BnOptions, BnReduction,
};
use taming::reference::batchnorm as reference;

/// Odd shapes; 300 images is more than one reduction workgroup has lanes.
const SHAPES: &[[usize; 4]] = &[
    [1, 3, 7, 5],
    [33, 17, 3, 1],
    [2, 1, 1, 2],
    [3, 64, 5, 7],
    [300, 3, 2, 3],
];

fn state(gpu: &taming::Gpu, rm: &[f64], rv: &[f64]) -> Rc<BatchNormState> {
    let c = rm.len();
    Rc::new(BatchNormState {
        running_mean: upload(gpu, &[c], rm),
        running_var: upload(gpu, &[c], rv),
        momentum: 0.1,
        eps: 1e-5,
    })
}

/// Every reduction the adapter runs, with and without the fused ReLU (whose reference is
/// max(y, 0) forward and dy masked where y > 0 backward).
fn every_option(gpu: &taming::Gpu) -> Vec<BnOptions> {
    let mut all = Vec::new();
    for reduction in BnReduction::ALL {
        if reduction.accepted_by(gpu) {
            for relu in [false, true] {
                all.push(BnOptions {
                    relu,
                    reduction: Some(reduction),
                    ..BnOptions::default()
                });
            }
        }
    }
    all
}

#[test]
fn batch_norm_training_forward_backward_and_running_stats_match_reference() {
    let Some(gpu) = gpu() else { return };
    // lavapipe has subgroups: both reductions must be among those checked here.
    if gpu.adapter().to_string().contains("llvmpipe") {
        assert!(BnReduction::Subgroup.accepted_by(&gpu));
    }
    let mut r = rng(10);
    for &shape in SHAPES {
        let c = shape[1];
        // An offset mean checks that the variance is computed without cancellation.
        let x: Vec<f64> = data(&mut r, shape.iter().product())
            .iter()
            .map(|v| (3.0 + 2.0 * v) as f32 as f64)
            .collect();
        let (gamma, beta, dy) = (data(&mut r, c), data(&mut r, c), data(&mut r, x.len()));
        let (rm0, rv0) = (data(&mut r, c), uniform(&mut r, c, 0.5, 2.0));
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let want =
            reference::batch_norm_train(&x, shape, &gamma, &beta, &mut rm, &mut rv, 0.1, 1e-5);
        let (tx, tg, tb) = (
            upload(&gpu, &shape, &x),
            upload(&gpu, &[c], &gamma),
            upload(&gpu, &[c], &beta),
        );
        let tdy = upload(&gpu, &shape, &dy);
        for options in every_option(&gpu) {
            let st = state(&gpu, &rm0, &rv0);
            let (y, stats) = batch_norm_forward_with(&tx, &tg, &tb, &st, true, options).unwrap();
            let case = format!("{shape:?} {options:?}");
            let (want_y, want_dy) = match options.relu {
                false => (want.y.clone(), dy.clone()),
                true => (
                    want.y.iter().map(|&v| v.max(0.0)).collect(),
                    dy.iter()
                        .zip(&want.y)
                        .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                        .collect(),
                ),
            };
            assert_rel_close(&format!("{case} y"), &download(&y), &want_y, 1e-5);
            assert_rel_close(
                &format!("{case} running mean"),
                &download(&st.running_mean),
                &rm,
                1e-5,
            );
            assert_rel_close(
                &format!("{case} running var"),
                &download(&st.running_var),
                &rv,
                1e-5,
            );
            let (dx, dg, db) =
                batch_norm_backward_with(&tx, &tdy, (&tg, &tb), &stats, &st, true, options)
                    .unwrap();
            let (wdx, wdg, wdb) =
                reference::batch_norm_train_backward(&x, &want_dy, shape, &gamma, &want, 1e-5);
            assert_rel_close(&format!("{case} dx"), &download(&dx), &wdx, 1e-4);
            assert_rel_close(&format!("{case} dgamma"), &download(&dg), &wdg, 1e-5);
            assert_rel_close(&format!("{case} dbeta"), &download(&db), &wdb, 1e-5);
        }
    }
}

#[test]
fn batch_norm_eval_uses_running_stats_and_leaves_them_alone() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(11);
    let shape = [3, 5, 7, 3];
    let c = shape[1];
    let x = data(&mut r, shape.iter().product());
    let (gamma, beta, dy) = (data(&mut r, c), data(&mut r, c), data(&mut r, x.len()));
    let (rm, rv) = (data(&mut r, c), uniform(&mut r, c, 0.5, 2.0));
    let st = state(&gpu, &rm, &rv);
    let (tx, tg) = (upload(&gpu, &shape, &x), upload(&gpu, &[c], &gamma));
    let (y, stats) = batch_norm_forward(&tx, &tg, &upload(&gpu, &[c], &beta), &st, false).unwrap();
    assert_rel_close(
        "eval y",
        &download(&y),
        &reference::batch_norm_eval(&x, shape, &gamma, &beta, &rm, &rv, 1e-5),
        1e-5,
    );
    assert_rel_close(
        "running mean unchanged",
        &download(&st.running_mean),
        &rm,
        1e-7,
    );
    let (dx, _, _) =
        batch_norm_backward(&tx, &upload(&gpu, &shape, &dy), &tg, &stats, &st, false).unwrap();
    let want: Vec<f64> = dy
        .iter()
        .enumerate()
        .map(|(e, g)| g * gamma[(e / 21) % c] / (rv[(e / 21) % c] + 1e-5).sqrt())
        .collect();
    assert_rel_close("eval dx", &download(&dx), &want, 1e-5);
    // The fused ReLU in eval mode: the running statistics' y, clipped, and dx masked by it.
    let y_eval = reference::batch_norm_eval(&x, shape, &gamma, &beta, &rm, &rv, 1e-5);
    let tb = upload(&gpu, &[c], &beta);
    let relu = BnOptions {
        relu: true,
        reduction: None,
        ..BnOptions::default()
    };
    let (y, stats) = batch_norm_forward_with(&tx, &tg, &tb, &st, false, relu).unwrap();
    let clipped: Vec<f64> = y_eval.iter().map(|&v| v.max(0.0)).collect();
    assert_rel_close("eval relu y", &download(&y), &clipped, 1e-5);
    let tdy = upload(&gpu, &shape, &dy);
    let (dx, _, _) =
        batch_norm_backward_with(&tx, &tdy, (&tg, &tb), &stats, &st, false, relu).unwrap();
    let masked: Vec<f64> = want
        .iter()
        .zip(&y_eval)
        .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
        .collect();
    assert_rel_close("eval relu dx", &download(&dx), &masked, 1e-5);
}

#[test]
fn batch_norm_reference_gradients_match_finite_differences() {
    let mut r = rng(12);
    let shape = [2, 3, 2, 3];
    let c = shape[1];
    let x = data(&mut r, shape.iter().product());
    let (gamma, beta, up) = (data(&mut r, c), data(&mut r, c), data(&mut r, x.len()));
    let f = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        dot(
            &up,
            &reference::batch_norm_train(x, shape, g, b, &mut rm, &mut rv, 0.1, 1e-5).y,
        )
    };
    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    let fwd = reference::batch_norm_train(&x, shape, &gamma, &beta, &mut rm, &mut rv, 0.1, 1e-5);
    let (dx, dg, db) = reference::batch_norm_train_backward(&x, &up, shape, &gamma, &fwd, 1e-5);
    let all = |n: usize| (0..n).collect::<Vec<_>>();
    assert_rel_close(
        "d/dx",
        &dx,
        &finite_difference(&mut |x| f(x, &gamma, &beta), &x, &all(x.len()), 1e-5),
        1e-6,
    );
    assert_rel_close(
        "d/dgamma",
        &dg,
        &finite_difference(&mut |g| f(&x, g, &beta), &gamma, &all(c), 1e-5),
        1e-6,
    );
    assert_rel_close(
        "d/dbeta",
        &db,
        &finite_difference(&mut |b| f(&x, &gamma, b), &beta, &all(c), 1e-5),
        1e-6,
    );
}

#[test]
fn batch_norm_gpu_input_gradient_matches_finite_differences() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(13);
    let shape = [2, 3, 2, 3];
    let c = shape[1];
    let x = data(&mut r, shape.iter().product());
    let (gamma, beta, up) = (data(&mut r, c), data(&mut r, c), data(&mut r, x.len()));
    let (tg, tb) = (upload(&gpu, &[c], &gamma), upload(&gpu, &[c], &beta));
    let mut loss = |x: &[f64]| {
        let st = state(&gpu, &[0.0; 3], &[1.0; 3]);
        dot(
            &up,
            &download(
                &batch_norm_forward(&upload(&gpu, &shape, x), &tg, &tb, &st, true)
                    .unwrap()
                    .0,
            ),
        )
    };
    let idx: Vec<usize> = (0..x.len()).collect();
    let numeric = finite_difference(&mut loss, &x, &idx, 1e-2);
    let st = state(&gpu, &[0.0; 3], &[1.0; 3]);
    let tx = upload(&gpu, &shape, &x);
    let (_, stats) = batch_norm_forward(&tx, &tg, &tb, &st, true).unwrap();
    let (dx, _, _) =
        batch_norm_backward(&tx, &upload(&gpu, &shape, &up), &tg, &stats, &st, true).unwrap();
    // f32 central differences at h = 1e-2 through a normalisation: about 1e-3 relative noise.
    assert_rel_close(
        "GPU batch-norm d/dx vs finite differences",
        &download(&dx),
        &numeric,
        5e-3,
    );
}

#[test]
fn batch_norm_training_rejects_a_single_value_per_channel() {
    let Some(gpu) = gpu() else { return };
    let st = state(&gpu, &[0.0; 2], &[1.0; 2]);
    let x = upload(&gpu, &[1, 2, 1, 1], &[1.0, 2.0]);
    let g = upload(&gpu, &[2], &[1.0, 1.0]);
    let msg = batch_norm_forward(&x, &g, &g, &st, true)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("batch_norm") && msg.contains("[1, 2, 1, 1]"),
        "{msg}"
    );
}

/// Batch norm's output stored as f16 (`--precision f16`, where only a convolution reads it):
/// exactly the f32 output rounded to the nearest f16, with and without the ReLU, with every
/// reduction; the statistics, the running statistics and the backward pass (which never reads
/// y) exactly as with an f32 output. And x stored as f16 (a convolution's f16 output): every
/// result exactly that of an f32 x holding the same values.
#[test]
fn batch_norm_output_stored_as_f16_is_the_f32_output_rounded() {
    use taming::tensor::{DType, Precision};
    let Some(gpu) = gpu() else { return };
    let mut r = rng(13);
    let half = |options: BnOptions| BnOptions {
        output: Precision::F16,
        ..options
    };
    let (st, t) = (state(&gpu, &[0.0], &[1.0]), upload(&gpu, &[1], &[1.0]));
    let x = upload(&gpu, &[2, 1, 1, 1], &[1.0, 2.0]);
    let options = half(BnOptions::default());
    if lacks_f16(&gpu, || {
        batch_norm_forward_with(&x, &t, &t, &st, true, options)
    }) {
        return;
    }
    for &shape in SHAPES {
        let c = shape[1];
        let x = round_f16(&data(&mut r, shape.iter().product()));
        let (gamma, beta, dy) = (data(&mut r, c), data(&mut r, c), data(&mut r, x.len()));
        let (rm0, rv0) = (data(&mut r, c), uniform(&mut r, c, 0.5, 2.0));
        let hx = upload_f16(&gpu, &shape, &x);
        let (tx, tg, tb) = (
            upload(&gpu, &shape, &x),
            upload(&gpu, &[c], &gamma),
            upload(&gpu, &[c], &beta),
        );
        let tdy = upload(&gpu, &shape, &dy);
        for options in every_option(&gpu) {
            let case = format!("{shape:?} {options:?}");
            let (st32, st16) = (state(&gpu, &rm0, &rv0), state(&gpu, &rm0, &rv0));
            let (y32, s32) = batch_norm_forward_with(&tx, &tg, &tb, &st32, true, options).unwrap();
            let (y16, s16) =
                batch_norm_forward_with(&tx, &tg, &tb, &st16, true, half(options)).unwrap();
            assert_eq!(y16.dtype(), DType::F16, "{case}");
            assert_eq!(download(&y16), round_f16(&download(&y32)), "{case}: y");
            assert_eq!(download(&s16), download(&s32), "{case}: statistics");
            assert_eq!(
                download(&st16.running_var),
                download(&st32.running_var),
                "{case}"
            );
            let back = |st: &BatchNormState, stats: &taming::Tensor, o: BnOptions| {
                let (dx, dg, db) =
                    batch_norm_backward_with(&tx, &tdy, (&tg, &tb), stats, st, true, o).unwrap();
                [download(&dx), download(&dg), download(&db)]
            };
            assert_eq!(
                back(&st16, &s16, half(options)),
                back(&st32, &s32, options),
                "{case}: gradients"
            );
            let st = state(&gpu, &rm0, &rv0);
            let (y, stats) = batch_norm_forward_with(&hx, &tg, &tb, &st, true, options).unwrap();
            assert_eq!(download(&y), download(&y32), "{case}: f16 x, y");
            assert_eq!(
                download(&stats),
                download(&s32),
                "{case}: f16 x, statistics"
            );
            let (dx, dg, db) =
                batch_norm_backward_with(&hx, &tdy, (&tg, &tb), &stats, &st, true, options)
                    .unwrap();
            assert_eq!(
                [download(&dx), download(&dg), download(&db)],
                back(&st32, &s32, options),
                "{case}: f16 x, gradients"
            );
        }
    }
}
