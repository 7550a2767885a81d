mod common;

use std::rc::Rc;

use approx::assert_abs_diff_eq;
use common::*;
use taming::autograd::{Graph, Param};
use taming::ops::ntxent;
use taming::reference::ntxent as reference;
use taming::reference::small_ops::{l2_normalize, l2_normalize_backward};

/// Unit rows, rounded to f32 so that GPU and reference see the same numbers.
fn unit_rows(r: &mut rand::rngs::StdRng, rows: usize, d: usize) -> Vec<f64> {
    l2_normalize(&data(r, rows * d), d, 1e-12)
        .into_iter()
        .map(|x| x as f32 as f64)
        .collect()
}

#[test]
fn loss_and_gradient_match_reference_at_odd_sizes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(50);
    // 2N and d multiples of 4 (the last two) take the broadcast products on a CPU device: the
    // 32-column kernel for both products at d = 36, the 16-column one for dU at d = 12.
    let sizes = [
        (1, 5, 0.1),
        (3, 17, 0.1),
        (33, 128, 0.1),
        (7, 3, 0.5),
        (34, 36, 0.2),
        (32, 12, 0.1),
    ];
    for (n, d, tau) in sizes {
        let rows = 2 * n;
        let u = unit_rows(&mut r, rows, d);
        let (u1, u2) = (
            upload(&gpu, &[n, d], &u[..n * d]),
            upload(&gpu, &[n, d], &u[n * d..]),
        );
        let (loss, saved) = ntxent::ntxent_forward(&u1, &u2, tau as f32).unwrap();
        assert_eq!(loss.shape(), [1]);
        let want = reference::ntxent(&u, rows, d, tau);
        assert_rel_close(
            &format!("N={n} d={d} loss"),
            &download(&loss),
            &[want],
            1e-5,
        );
        let upstream = 0.7;
        let dl = upload(&gpu, &[1], &[upstream]);
        let (d1, d2) = ntxent::ntxent_backward(&saved, &dl).unwrap();
        let got: Vec<f64> = download(&d1).into_iter().chain(download(&d2)).collect();
        let want: Vec<f64> = reference::ntxent_backward(&u, rows, d, tau)
            .iter()
            .map(|g| g * upstream)
            .collect();
        assert_rel_close(&format!("N={n} d={d} gradient"), &got, &want, 1e-5);
    }
}

#[test]
fn one_image_has_zero_loss_and_gradient() {
    // With N = 1 each row's only other row is its positive: the loss is log(1) = 0.
    let mut r = rng(51);
    let u = unit_rows(&mut r, 2, 4);
    assert_abs_diff_eq!(reference::ntxent(&u, 2, 4, 0.1), 0.0, epsilon = 1e-12);
    for g in reference::ntxent_backward(&u, 2, 4, 0.1) {
        assert_abs_diff_eq!(g, 0.0, epsilon = 1e-12);
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut r = rng(52);
    let (rows, d, tau) = (6, 4, 0.2);
    let u = unit_rows(&mut r, rows, d);
    let idx: Vec<usize> = (0..u.len()).collect();
    let numeric = finite_difference(&mut |u| reference::ntxent(u, rows, d, tau), &u, &idx, 1e-6);
    assert_rel_close(
        "reference dL/du",
        &reference::ntxent_backward(&u, rows, d, tau),
        &numeric,
        1e-7,
    );
    let Some(gpu) = gpu() else { return };
    let (u1, u2) = (
        upload(&gpu, &[3, d], &u[..3 * d]),
        upload(&gpu, &[3, d], &u[3 * d..]),
    );
    let (_, saved) = ntxent::ntxent_forward(&u1, &u2, tau as f32).unwrap();
    let (d1, d2) = ntxent::ntxent_backward(&saved, &upload(&gpu, &[1], &[1.0])).unwrap();
    let got: Vec<f64> = download(&d1).into_iter().chain(download(&d2)).collect();
    assert_rel_close("GPU dL/du", &got, &numeric, 1e-5);
}

/// The tape op on raw embeddings: normalisation, loss and gradients through both, against the
/// reference chain.
#[test]
fn taped_loss_of_raw_embeddings_matches_reference_chain() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(53);
    let (n, d, tau) = (9, 16, 0.1);
    let z: Vec<f64> = data(&mut r, 2 * n * d).iter().map(|x| 3.0 * x).collect();
    // The embeddings as parameters, so that the tape hands their gradients back.
    let p1 = Rc::new(Param::new("z1", upload(&gpu, &[n, d], &z[..n * d])));
    let p2 = Rc::new(Param::new("z2", upload(&gpu, &[n, d], &z[n * d..])));
    let g = Graph::new(&gpu);
    let loss = ntxent::nt_xent(&g, g.param(&p1), g.param(&p2), tau as f32).unwrap();
    g.backward(loss).unwrap();
    let u = l2_normalize(&z, d, 1e-12);
    let want_loss = reference::ntxent(&u, 2 * n, d, tau);
    assert_rel_close("loss", &download(&g.value(loss)), &[want_loss], 1e-5);
    let du = reference::ntxent_backward(&u, 2 * n, d, tau);
    let want = l2_normalize_backward(&z, &du, d, 1e-12);
    let got: Vec<f64> = download(&p1.grad().unwrap())
        .into_iter()
        .chain(download(&p2.grad().unwrap()))
        .collect();
    assert_rel_close("dL/dz", &got, &want, 1e-4);
}

#[test]
fn large_logits_stay_finite() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(54);
    let (n, d) = (16, 8);
    let u = unit_rows(&mut r, 2 * n, d);
    let (u1, u2) = (
        upload(&gpu, &[n, d], &u[..n * d]),
        upload(&gpu, &[n, d], &u[n * d..]),
    );
    // Temperature 0.001: logits up to 1000, far beyond exp's f32 range without the max shift.
    let (loss, _) = ntxent::ntxent_forward(&u1, &u2, 0.001).unwrap();
    let want = reference::ntxent(&u, 2 * n, d, 0.001);
    assert_rel_close("loss at tau 0.001", &download(&loss), &[want], 1e-4);
    let e = ntxent::ntxent_forward(&u1, &u2, 0.0)
        .err()
        .expect("a zero temperature must fail")
        .to_string();
    assert!(e.contains("temperature"), "{e}");
}
