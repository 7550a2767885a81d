mod common;

use common::*;
use taming::ops::pool;
use taming::reference::small_ops as reference;

#[test]
fn global_avg_pool_matches_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(30);
    for shape in [
        [1usize, 1, 1, 1],
        [33, 3, 7, 5],
        [2, 17, 1, 3],
        [64, 512, 4, 4],
    ] {
        let (rows, hw) = (shape[0] * shape[1], shape[2] * shape[3]);
        let x = data(&mut r, rows * hw);
        let dy = data(&mut r, rows);
        let y = pool::global_avg_pool_forward(&upload(&gpu, &shape, &x)).unwrap();
        assert_eq!(y.shape(), [shape[0], shape[1]]);
        assert_rel_close(
            &format!("{shape:?} forward"),
            &download(&y),
            &reference::global_avg_pool(&x, rows, hw),
            1e-6,
        );
        let dx = pool::global_avg_pool_backward(&upload(&gpu, &[shape[0], shape[1]], &dy), &shape)
            .unwrap();
        assert_rel_close(
            &format!("{shape:?} backward"),
            &download(&dx),
            &reference::global_avg_pool_backward(&dy, hw),
            1e-6,
        );
    }
}

#[test]
fn global_avg_pool_gradient_matches_finite_differences() {
    let mut r = rng(31);
    let (rows, hw) = (6, 5);
    let (x, up) = (data(&mut r, rows * hw), data(&mut r, rows));
    let idx: Vec<usize> = (0..x.len()).collect();
    let numeric = finite_difference(
        &mut |x| dot(&up, &reference::global_avg_pool(x, rows, hw)),
        &x,
        &idx,
        1e-5,
    );
    assert_rel_close(
        "reference d/dx",
        &reference::global_avg_pool_backward(&up, hw),
        &numeric,
        1e-8,
    );
    let Some(gpu) = gpu() else { return };
    let dx = pool::global_avg_pool_backward(&upload(&gpu, &[2, 3], &up), &[2, 3, 1, 5]).unwrap();
    assert_rel_close("GPU d/dx", &download(&dx), &numeric, 1e-6);
}
