mod common;

use common::*;
use taming::ops::linear::{self as lin, ProductAlgo};
use taming::reference::small_ops as reference;
use taming::shapes::Pass;

#[test]
fn linear_forward_and_gradients_match_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(20);
    for (n, fin, fout) in [
        (1, 1, 1),
        (33, 17, 3),
        (3, 7, 10),
        (5, 512, 128),
        (64, 3, 33),
        // Widths that are multiples of 4: the weight gradient takes matmul_broadcast, lanes
        // along the output features (20 > 8), or along the input features (12 > 4, 36 > 8;
        // 36 leaves lanes of the workgroup without a row).
        (7, 8, 20),
        (5, 12, 4),
        (3, 36, 8),
        // An even k of several pairs: the subgroup kernel loads two k steps at a time.
        (10, 16, 12),
        // A shared side of 32 or more that is not a multiple of 32 (the weight gradient's 40
        // output features): the subgroup kernel's 32-column form with a ragged last block.
        (9, 44, 40),
        // More than one 64x64 tile of C each way with ragged edges, and a k that is not a
        // multiple of the tiled kernel's depth of 16.
        (70, 33, 129),
    ] {
        let (x, w, b, dy) = (
            data(&mut r, n * fin),
            data(&mut r, fout * fin),
            data(&mut r, fout),
            data(&mut r, n * fout),
        );
        let (tx, tw, tdy) = (
            upload(&gpu, &[n, fin], &x),
            upload(&gpu, &[fout, fin], &w),
            upload(&gpu, &[n, fout], &dy),
        );
        let tb = upload(&gpu, &[fout], &b);
        // Every product algorithm that computes the pass, so that the tiled kernel a GPU takes
        // is checked here too; None is the automatic choice.
        for algo in std::iter::once(None).chain(ProductAlgo::ALL.map(Some)) {
            let accepts = |pass, bias| {
                algo.is_none_or(|a: ProductAlgo| a.accepts_linear(pass, (n, fin, fout), bias, &gpu))
            };
            let case = format!("n{n} in{fin} out{fout} {algo:?}");
            for bias in [true, false] {
                if !accepts(Pass::Forward, bias) {
                    continue;
                }
                let y = lin::linear_forward_with(&tx, &tw, bias.then_some(&tb), algo).unwrap();
                assert_rel_close(
                    &format!("{case} y bias {bias}"),
                    &download(&y),
                    &reference::linear_forward(&x, &w, bias.then_some(&b[..]), n, fin, fout),
                    1e-5,
                );
            }
            if accepts(Pass::InputGradient, false) {
                let dx = lin::linear_backward_input_with(&tdy, &tw, algo).unwrap();
                assert_rel_close(
                    &format!("{case} dx"),
                    &download(&dx),
                    &reference::linear_backward_input(&dy, &w, n, fin, fout),
                    1e-5,
                );
            }
            if accepts(Pass::WeightGradient, false) {
                let dw = lin::linear_backward_weight_with(&tx, &tdy, algo).unwrap();
                assert_rel_close(
                    &format!("{case} dw"),
                    &download(&dw),
                    &reference::linear_backward_weight(&x, &dy, n, fin, fout),
                    1e-5,
                );
            }
        }
        let db = lin::linear_backward_bias(&tdy).unwrap();
        assert_rel_close(
            &format!("n{n} in{fin} out{fout} db"),
            &download(&db),
            &reference::sum_channels(&dy, n, fout, 1),
            1e-5,
        );
    }
}

#[test]
fn linear_reference_gradients_match_finite_differences() {
    let mut r = rng(21);
    let (n, fin, fout) = (3, 4, 5);
    let (x, w, b, up) = (
        data(&mut r, n * fin),
        data(&mut r, fout * fin),
        data(&mut r, fout),
        data(&mut r, n * fout),
    );
    let all = |k: usize| (0..k).collect::<Vec<_>>();
    let fx = finite_difference(
        &mut |x| {
            dot(
                &up,
                &reference::linear_forward(x, &w, Some(&b), n, fin, fout),
            )
        },
        &x,
        &all(x.len()),
        1e-5,
    );
    assert_rel_close(
        "d/dx",
        &reference::linear_backward_input(&up, &w, n, fin, fout),
        &fx,
        1e-8,
    );
    let fw = finite_difference(
        &mut |w| {
            dot(
                &up,
                &reference::linear_forward(&x, w, Some(&b), n, fin, fout),
            )
        },
        &w,
        &all(w.len()),
        1e-5,
    );
    assert_rel_close(
        "d/dw",
        &reference::linear_backward_weight(&x, &up, n, fin, fout),
        &fw,
        1e-8,
    );
    let fb = finite_difference(
        &mut |b| {
            dot(
                &up,
                &reference::linear_forward(&x, &w, Some(b), n, fin, fout),
            )
        },
        &b,
        &all(fout),
        1e-5,
    );
    assert_rel_close("d/db", &reference::sum_channels(&up, n, fout, 1), &fb, 1e-8);
}

#[test]
fn linear_gpu_gradients_match_finite_differences() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(22);
    let (n, fin, fout) = (3, 4, 5);
    let (x, w, up) = (
        data(&mut r, n * fin),
        data(&mut r, fout * fin),
        data(&mut r, n * fout),
    );
    let tw = upload(&gpu, &[fout, fin], &w);
    let idx: Vec<usize> = (0..x.len()).collect();
    let numeric = finite_difference(
        &mut |x| {
            dot(
                &up,
                &download(&lin::linear_forward(&upload(&gpu, &[n, fin], x), &tw, None).unwrap()),
            )
        },
        &x,
        &idx,
        1e-2,
    );
    let dx = lin::linear_backward_input(&upload(&gpu, &[n, fout], &up), &tw).unwrap();
    // Linear in x: f32 central differences are exact up to rounding (about 1e-5 here).
    assert_rel_close(
        "GPU d/dx vs finite differences",
        &download(&dx),
        &numeric,
        1e-4,
    );
}

#[test]
fn linear_rejects_mismatched_features_naming_both_shapes() {
    let Some(gpu) = gpu() else { return };
    let x = upload(&gpu, &[2, 3], &[0.0; 6]);
    let w = upload(&gpu, &[4, 5], &[0.0; 20]);
    let msg = lin::linear_forward(&x, &w, None).unwrap_err().to_string();
    assert!(
        msg.contains("linear") && msg.contains("[2, 3]") && msg.contains("[4, 5]"),
        "{msg}"
    );
}

#[test]
fn linear_rejects_a_product_algorithm_that_cannot_compute_the_pass() {
    let Some(gpu) = gpu() else { return };
    let x = upload(&gpu, &[4, 8], &[0.5; 32]);
    let w = upload(&gpu, &[4, 8], &[0.5; 32]);
    let b = upload(&gpu, &[4], &[0.0; 4]);
    // The broadcast kernel adds no bias.
    assert!(!ProductAlgo::Broadcast.accepts_linear(Pass::Forward, (4, 8, 4), true, &gpu));
    let err = lin::linear_forward_with(&x, &w, Some(&b), Some(ProductAlgo::Broadcast))
        .unwrap_err()
        .to_string();
    assert!(err.contains("broadcast") && err.contains("bias"), "{err}");
    // The other two compute it.
    for algo in [ProductAlgo::Strided, ProductAlgo::Tiled] {
        let y = lin::linear_forward_with(&x, &w, Some(&b), Some(algo)).unwrap();
        assert_eq!(download(&y), vec![2.0; 16], "{algo}");
    }
}
