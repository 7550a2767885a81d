mod common;

use std::rc::Rc;

use common::*;
use taming::autograd::Param;
use taming::ops::{linear::linear, view};
use taming::optim::{Adam, Sgd};
use taming::reference::optim as reference;
use taming::Tensor;

/// Sets the parameter's gradient to `g` by back-propagating `g . p` (a 1 x n by n x 1 product).
fn set_grad(gpu: &taming::Gpu, p: &Rc<Param>, g: &[f64]) {
    let graph = taming::autograd::Graph::new(gpu);
    let n = g.len();
    let weight = view::reshape(&graph, graph.param(p), &[1, n]).unwrap();
    let gw = graph.input(upload(gpu, &[1, n], g));
    let loss = view::reshape(&graph, linear(&graph, gw, weight, None).unwrap(), &[1]).unwrap();
    graph.backward(loss).unwrap();
}

#[test]
fn sgd_with_momentum_and_weight_decay_matches_reference_over_three_steps() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(60);
    let n = 1037;
    let mut want = data(&mut r, n);
    let p = Rc::new(Param::new("p", upload(&gpu, &[n], &want)));
    let mut opt = Sgd::new(vec![p.clone()], 0.05, 0.9, 5e-4);
    let mut buf = None;
    for step in 0..3 {
        let g = data(&mut r, n);
        set_grad(&gpu, &p, &g);
        assert_rel_close(
            &format!("gradient before step {step}"),
            &download(&p.grad().unwrap()),
            &g,
            1e-6,
        );
        opt.step().unwrap();
        assert!(p.grad().is_none(), "step clears the gradient");
        reference::sgd_step(&mut want, &g, &mut buf, 0.05, 0.9, 5e-4);
        assert_rel_close(
            &format!("sgd step {step}"),
            &download(&p.value),
            &want,
            1e-6,
        );
    }
}

#[test]
fn adam_matches_reference_over_three_steps() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(61);
    let n = 333;
    let mut want = data(&mut r, n);
    let p = Rc::new(Param::new("p", upload(&gpu, &[n], &want)));
    let mut opt = Adam::new(vec![p.clone()], 0.01);
    opt.weight_decay = 1e-4;
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    for t in 1..=3 {
        let g = data(&mut r, n);
        set_grad(&gpu, &p, &g);
        opt.step().unwrap();
        reference::adam_step(
            &mut want,
            &g,
            &mut m,
            &mut v,
            t,
            0.01,
            (0.9, 0.999),
            1e-8,
            1e-4,
        );
        assert_rel_close(&format!("adam step {t}"), &download(&p.value), &want, 1e-5);
    }
}

#[test]
fn gradients_accumulate_across_backward_calls_until_the_step() {
    let Some(gpu) = gpu() else { return };
    let p = Rc::new(Param::new(
        "p",
        Tensor::from_slice(&gpu, &[3], &[1.0, 2.0, 3.0]).unwrap(),
    ));
    set_grad(&gpu, &p, &[1.0, 1.0, 1.0]);
    set_grad(&gpu, &p, &[0.5, -1.0, 2.0]);
    assert_rel_close(
        "accumulated",
        &download(&p.grad().unwrap()),
        &[1.5, 0.0, 3.0],
        1e-7,
    );
}
