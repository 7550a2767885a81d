mod common;

use common::*;
use taming::ops::elementwise as ew;
use taming::reference::elementwise as reference;

#[test]
fn relu_add_scale_match_reference_at_odd_lengths() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(1);
    for n in [1usize, 3, 7, 33, 1025, 70_001] {
        let a = data(&mut r, n);
        let b = data(&mut r, n);
        let (ta, tb) = (upload(&gpu, &[n], &a), upload(&gpu, &[n], &b));
        let y = ew::relu_forward(&ta).unwrap();
        assert_rel_close(
            &format!("relu_forward n={n}"),
            &download(&y),
            &reference::relu_forward(&a),
            1e-6,
        );
        let ry = reference::relu_forward(&a);
        let dx = ew::relu_backward(&y, &tb).unwrap();
        assert_rel_close(
            &format!("relu_backward n={n}"),
            &download(&dx),
            &reference::relu_backward(&ry, &b),
            1e-6,
        );
        let c = ew::add_forward(&ta, &tb).unwrap();
        assert_rel_close(
            &format!("add n={n}"),
            &download(&c),
            &reference::add_forward(&a, &b),
            1e-6,
        );
        let s = ew::scale_forward(&ta, -0.37).unwrap();
        assert_rel_close(
            &format!("scale n={n}"),
            &download(&s),
            &reference::scale_forward(&a, -0.37),
            1e-6,
        );
        ew::accumulate(&c, &tb).unwrap();
        let want: Vec<f64> = reference::add_forward(&reference::add_forward(&a, &b), &b);
        assert_rel_close(&format!("accumulate n={n}"), &download(&c), &want, 1e-6);
    }
}

#[test]
fn transpose_matches_reference_and_refuses_non_matrices() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(2);
    // Odd sizes, a single row and column, and more elements than one pass of the workgroups.
    for (rows, cols) in [(1, 1), (1, 7), (5, 1), (3, 17), (68, 36), (301, 257)] {
        let x = data(&mut r, rows * cols);
        let y = ew::transpose(&upload(&gpu, &[rows, cols], &x)).unwrap();
        assert_eq!(y.shape(), [cols, rows]);
        // A copy: exact, up to the upload's rounding to f32.
        let want: Vec<f64> = (0..cols * rows)
            .map(|i| x[(i % rows) * cols + i / rows] as f32 as f64)
            .collect();
        assert_eq!(download(&y), want, "transpose {rows}x{cols}");
    }
    let msg = ew::transpose(&upload(&gpu, &[2, 3, 4], &vec![0.0; 24]))
        .err()
        .expect("a 3-D tensor is not transposed")
        .to_string();
    assert!(
        msg.contains("transpose") && msg.contains("[2, 3, 4]"),
        "{msg}"
    );
}

#[test]
fn add_rejects_mismatched_shapes_with_both_shapes_in_the_message() {
    let Some(gpu) = gpu() else { return };
    let a = upload(&gpu, &[2, 3], &[0.0; 6]);
    let b = upload(&gpu, &[3, 2], &[0.0; 6]);
    let msg = ew::add_forward(&a, &b).unwrap_err().to_string();
    assert!(
        msg.contains("add") && msg.contains("[2, 3]") && msg.contains("[3, 2]"),
        "{msg}"
    );
}

#[test]
fn relu_backward_matches_finite_differences() {
    let mut r = rng(2);
    // Keep inputs away from the kink at 0, where the derivative is undefined.
    let x: Vec<f64> = data(&mut r, 17)
        .into_iter()
        .map(|v| if v.abs() < 0.05 { 0.3 } else { v })
        .collect();
    let w = data(&mut r, 17);
    let analytic = reference::relu_backward(&reference::relu_forward(&x), &w);
    let idx: Vec<usize> = (0..17).collect();
    let numeric = finite_difference(
        &mut |x| dot(&w, &reference::relu_forward(x)),
        &x,
        &idx,
        1e-6,
    );
    assert_rel_close("relu reference gradient", &analytic, &numeric, 1e-8);
    let Some(gpu) = gpu() else { return };
    let dx = ew::relu_backward(
        &ew::relu_forward(&upload(&gpu, &[17], &x)).unwrap(),
        &upload(&gpu, &[17], &w),
    )
    .unwrap();
    assert_rel_close(
        "relu GPU gradient vs finite differences",
        &download(&dx),
        &numeric,
        1e-6,
    );
}

#[test]
fn poison_mode_hands_out_buffers_full_of_nan() {
    let Some(gpu) = gpu() else { return };
    let t = taming::Tensor::uninit(&gpu, &[5, 7], "probe").unwrap();
    assert!(
        t.to_vec().unwrap().iter().all(|v| v.is_nan()),
        "poison mode must fill new buffers with NaN"
    );
}

#[test]
fn add_and_scale_gradients_match_finite_differences_through_the_tape() {
    use taming::autograd::{Graph, Param};
    use taming::ops::{linear::linear, view};
    let Some(gpu) = gpu() else { return };
    let mut r = rng(3);
    let n = 7;
    let (a, b, w) = (data(&mut r, n), data(&mut r, n), data(&mut r, n));
    // loss(a, b) = w . (-0.37 * (a + b)): back-propagated through add and scale on the tape.
    let loss_of = |a: &[f64], b: &[f64]| -0.37 * dot(&w, &reference::add_forward(a, b));
    let pa = std::rc::Rc::new(Param::new("a", upload(&gpu, &[n], &a)));
    let pb = std::rc::Rc::new(Param::new("b", upload(&gpu, &[n], &b)));
    let g = Graph::new(&gpu);
    let sum = ew::add(&g, g.param(&pa), g.param(&pb)).unwrap();
    let scaled = view::reshape(&g, ew::scale(&g, sum, -0.37).unwrap(), &[1, n]).unwrap();
    let wv = g.input(upload(&gpu, &[1, n], &w));
    let loss = view::reshape(&g, linear(&g, wv, scaled, None).unwrap(), &[1]).unwrap();
    assert_rel_close(
        "loss",
        &[g.value(loss).item().unwrap() as f64],
        &[loss_of(&a, &b)],
        1e-6,
    );
    g.backward(loss).unwrap();
    let idx: Vec<usize> = (0..n).collect();
    let fa = finite_difference(&mut |x| loss_of(x, &b), &a, &idx, 1e-3);
    let fb = finite_difference(&mut |x| loss_of(&a, x), &b, &idx, 1e-3);
    assert_rel_close("d/da", &download(&pa.grad().unwrap()), &fa, 1e-5);
    assert_rel_close("d/db", &download(&pb.grad().unwrap()), &fb, 1e-5);
}

/// The storage cast: f32 -> f16 within one f16 step of the nearest value (WGSL may round either
/// way; an adapter may flush f16 subnormals to zero), beyond +-65504 saturating there; f16 -> f32
/// exact. Odd lengths: the last 32-bit word of an f16 tensor is half used.
#[test]
fn f16_storage_cast_rounds_saturates_and_widens_exactly() {
    use taming::ops::precision::{to_f16, to_f32};
    use taming::tensor::DType;
    let Some(gpu) = gpu() else { return };
    if lacks_f16(&gpu, || to_f16(&upload(&gpu, &[1], &[1.0]))) {
        return;
    }
    let mut r = rng(4);
    let specials = [
        0.0,
        -0.0,
        1e-6,
        -3e-5,
        0.1,
        1.0 / 3.0,
        65504.0,
        70000.0,
        -1e9,
        2049.0,
    ];
    for n in [1usize, 2, 3, 7, 1025, 70_001] {
        let mut v: Vec<f64> = uniform(&mut r, n, -300.0, 300.0)
            .into_iter()
            .map(|x| x as f32 as f64)
            .collect();
        for (slot, &s) in v.iter_mut().zip(&specials) {
            *slot = s;
        }
        let h = to_f16(&upload(&gpu, &[n], &v)).unwrap();
        assert_eq!(h.dtype(), DType::F16);
        let got = download(&h);
        for (i, (&g, &x)) in got.iter().zip(&v).enumerate() {
            let nearest = half::f16::from_f64(x.clamp(-65504.0, 65504.0));
            let step = half::f16::from_bits(nearest.to_bits() + 1).to_f64() - nearest.to_f64();
            let flushed = x.abs() < 6.1e-5 && g == 0.0;
            assert!(
                (g - nearest.to_f64()).abs() <= step.abs() || flushed,
                "n={n} element {i}: {x} stored as {g}, nearest f16 {nearest}"
            );
        }
        let wide = to_f32(&h).unwrap();
        assert_eq!(wide.dtype(), DType::F32);
        assert_eq!(download(&wide), got, "n={n}: widening must be exact");
    }
}

/// The residual block's end, `relu(h + shortcut)` in one pass: against the reference's add then
/// ReLU at odd lengths, forward and backward (both inputs get dy masked by the output); its
/// gradient through the tape against finite differences; and under f16 (the shortcut and the
/// output stored as f16), exactly the f32 kernel's values rounded, the mask read from the f16
/// output.
#[test]
fn add_relu_matches_add_then_relu_in_f32_and_f16() {
    use taming::autograd::{Graph, Param};
    use taming::ops::{linear::linear, view};
    use taming::tensor::{DType, Precision};
    let Some(gpu) = gpu() else { return };
    let mut r = rng(5);
    for n in [1usize, 3, 7, 33, 1025, 70_001] {
        let (h, s, dy) = (data(&mut r, n), data(&mut r, n), data(&mut r, n));
        let (th, ts, tdy) = (
            upload(&gpu, &[n], &h),
            upload(&gpu, &[n], &s),
            upload(&gpu, &[n], &dy),
        );
        let y = ew::add_relu_forward(&th, &ts, Precision::F32).unwrap();
        let want = reference::relu_forward(&reference::add_forward(&h, &s));
        assert_rel_close(&format!("add_relu n={n}"), &download(&y), &want, 1e-6);
        let dx = ew::relu_backward(&y, &tdy).unwrap();
        let want_dx = reference::relu_backward(&want, &dy);
        assert_rel_close(
            &format!("add_relu backward n={n}"),
            &download(&dx),
            &want_dx,
            1e-6,
        );
        if lacks_f16(&gpu, || ew::add_relu_forward(&th, &ts, Precision::F16)) {
            continue;
        }
        let hs = upload_f16(&gpu, &[n], &s);
        let y32 = ew::add_relu_forward(&th, &upload(&gpu, &[n], &round_f16(&s)), Precision::F32);
        let y32 = download(&y32.unwrap());
        let y16 = ew::add_relu_forward(&th, &hs, Precision::F16).unwrap();
        assert_eq!(y16.dtype(), DType::F16);
        assert_eq!(download(&y16), round_f16(&y32), "n={n}: f16 output");
        let dx16 = ew::relu_backward(&y16, &tdy).unwrap();
        let mask16: Vec<f64> = (download(&y16).iter().zip(&dy))
            .map(|(&y, &g)| if y > 0.0 { g } else { 0.0 })
            .collect();
        assert_eq!(download(&dx16), mask16, "n={n}: f16 mask");
    }
    // d/dh and d/dshortcut of w . relu(h + s) through the tape.
    let n = 9;
    let (h, s, w) = (data(&mut r, n), data(&mut r, n), data(&mut r, n));
    let loss_of =
        |h: &[f64], s: &[f64]| dot(&w, &reference::relu_forward(&reference::add_forward(h, s)));
    let ph = std::rc::Rc::new(Param::new("h", upload(&gpu, &[n], &h)));
    let ps = std::rc::Rc::new(Param::new("s", upload(&gpu, &[n], &s)));
    let g = Graph::new(&gpu);
    let y = ew::add_relu(&g, g.param(&ph), g.param(&ps), Precision::F32).unwrap();
    let y = view::reshape(&g, y, &[1, n]).unwrap();
    let wv = g.input(upload(&gpu, &[1, n], &w));
    let loss = view::reshape(&g, linear(&g, wv, y, None).unwrap(), &[1]).unwrap();
    g.backward(loss).unwrap();
    let idx: Vec<usize> = (0..n).collect();
    let fh = finite_difference(&mut |x| loss_of(x, &s), &h, &idx, 1e-4);
    let fs = finite_difference(&mut |x| loss_of(&h, x), &s, &idx, 1e-4);
    assert_rel_close("d/dh", &download(&ph.grad().unwrap()), &fh, 1e-5);
    assert_rel_close("d/dshortcut", &download(&ps.grad().unwrap()), &fs, 1e-5);
}
