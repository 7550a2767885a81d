mod common;

use common::*;
use taming::ops::l2norm::{l2_normalize_backward, l2_normalize_forward, L2NORM_EPS};
use taming::reference::small_ops as reference;

#[test]
fn l2_normalize_matches_reference_at_odd_shapes_including_a_zero_row() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(40);
    let eps = L2NORM_EPS as f64;
    for (rows, d) in [(1, 1), (3, 7), (33, 128), (1024, 128)] {
        let mut x = data(&mut r, rows * d);
        x[..d].iter_mut().for_each(|v| *v = 0.0);
        let dy = data(&mut r, rows * d);
        let tx = upload(&gpu, &[rows, d], &x);
        let y = l2_normalize_forward(&tx).unwrap();
        assert_rel_close(
            &format!("{rows}x{d} forward"),
            &download(&y),
            &reference::l2_normalize(&x, d, eps),
            1e-5,
        );
        // Skip the zero row in the gradient comparison: its gradient is dy / eps, about 1e12.
        let dx = download(&l2_normalize_backward(&tx, &upload(&gpu, &[rows, d], &dy)).unwrap());
        let want = reference::l2_normalize_backward(&x, &dy, d, eps);
        assert!(
            dx[..d].iter().all(|v| v.is_finite()),
            "zero row gradient must stay finite"
        );
        assert_rel_close(&format!("{rows}x{d} backward"), &dx[d..], &want[d..], 1e-5);
    }
}

#[test]
fn l2_normalize_gradients_match_finite_differences() {
    let mut r = rng(41);
    let (rows, d) = (3, 5);
    let (x, up) = (data(&mut r, rows * d), data(&mut r, rows * d));
    let idx: Vec<usize> = (0..x.len()).collect();
    let numeric = finite_difference(
        &mut |x| dot(&up, &reference::l2_normalize(x, d, 1e-12)),
        &x,
        &idx,
        1e-6,
    );
    assert_rel_close(
        "reference d/dx",
        &reference::l2_normalize_backward(&x, &up, d, 1e-12),
        &numeric,
        1e-7,
    );
    let Some(gpu) = gpu() else { return };
    let dx = l2_normalize_backward(
        &upload(&gpu, &[rows, d], &x),
        &upload(&gpu, &[rows, d], &up),
    )
    .unwrap();
    assert_rel_close("GPU d/dx", &download(&dx), &numeric, 1e-5);
}
