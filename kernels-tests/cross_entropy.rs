mod common;

use common::*;
use taming::ops::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use taming::reference::small_ops as reference;
use taming::Tensor;

fn labels(r: &mut rand::rngs::StdRng, n: usize, classes: usize) -> Vec<u32> {
    use rand::Rng;
    (0..n).map(|_| r.random_range(0..classes as u32)).collect()
}

#[test]
fn cross_entropy_matches_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(50);
    for (n, c) in [(1, 1), (1, 10), (33, 3), (7, 128), (512, 10)] {
        // Large logits check the max subtraction: exp(60) alone would be fine, exp(100) not.
        let logits: Vec<f64> = data(&mut r, n * c)
            .iter()
            .map(|v| (v * 100.0) as f32 as f64)
            .collect();
        let l = labels(&mut r, n, c);
        let (tl, tlab) = (
            upload(&gpu, &[n, c], &logits),
            Tensor::from_u32(&gpu, &[n], &l).unwrap(),
        );
        let loss = cross_entropy_forward(&tl, &tlab).unwrap();
        assert_rel_close(
            &format!("n{n} c{c} loss"),
            &download(&loss),
            &[reference::cross_entropy(&logits, &l, c)],
            1e-5,
        );
        let d = cross_entropy_backward(&tl, &tlab, &upload(&gpu, &[1], &[0.7])).unwrap();
        let want = reference::cross_entropy_backward(&logits, &l, c, 0.7);
        if want.iter().any(|v| *v != 0.0) {
            assert_rel_close(&format!("n{n} c{c} dlogits"), &download(&d), &want, 1e-5);
        }
    }
}

#[test]
fn cross_entropy_gradients_match_finite_differences() {
    let mut r = rng(51);
    let (n, c) = (4, 5);
    let logits = data(&mut r, n * c);
    let l = labels(&mut r, n, c);
    let idx: Vec<usize> = (0..logits.len()).collect();
    let numeric = finite_difference(
        &mut |x| reference::cross_entropy(x, &l, c),
        &logits,
        &idx,
        1e-6,
    );
    assert_rel_close(
        "reference d/dlogits",
        &reference::cross_entropy_backward(&logits, &l, c, 1.0),
        &numeric,
        1e-7,
    );
    let Some(gpu) = gpu() else { return };
    let tlab = Tensor::from_u32(&gpu, &[n], &l).unwrap();
    let d = cross_entropy_backward(
        &upload(&gpu, &[n, c], &logits),
        &tlab,
        &upload(&gpu, &[1], &[1.0]),
    )
    .unwrap();
    assert_rel_close("GPU d/dlogits", &download(&d), &numeric, 1e-5);
}

#[test]
fn cross_entropy_label_out_of_range_gives_nan_not_garbage() {
    let Some(gpu) = gpu() else { return };
    let tl = upload(&gpu, &[2, 3], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    let tlab = Tensor::from_u32(&gpu, &[2], &[1, 3]).unwrap();
    assert!(cross_entropy_forward(&tl, &tlab)
        .unwrap()
        .item()
        .unwrap()
        .is_nan());
}
