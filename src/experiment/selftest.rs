//! `taming selftest`: every kernel the engine has, and every convolution algorithm the adapter
//! accepts for each pass, run against the CPU references of [`crate::reference`] with NaN-poisoned
//! outputs. The kernel tests do the same at many more shapes; this is their quick form for a
//! machine that has an adapter but no build tree (a lent GPU), where a kernel that only a
//! discrete GPU selects has never run before.

use std::rc::Rc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::batchnorm::{
    batch_norm_backward_with, batch_norm_forward_with, BatchNormState, BnOptions, BnReduction,
};
use crate::ops::conv2d::{self as conv, Conv2dConfig, ConvAlgo, ConvShape, Pass};
use crate::ops::linear::{self, ProductAlgo};
use crate::ops::precision::to_f16;
use crate::ops::{cross_entropy as ce, elementwise as ew, l2norm, ntxent, pool, reduce};
use crate::reference;
use crate::tensor::{Precision, Tensor};

/// The shapes the self-test runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelftestShapes {
    /// Odd, small shapes (seconds, on any adapter).
    Small,
    /// The small shapes and ResNet-18's layer shapes at `batch` images: full workgroup tiles,
    /// long reductions and large dispatches.
    ResNet18 { batch: usize },
}

/// One comparison of a kernel's output with its reference.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    /// `||got - want|| / ||want||` (infinite when an element is not finite or the op failed).
    pub rel_error: f64,
    pub tolerance: f64,
    /// Why the check failed beyond its error: a non-finite element, a length, the op's error.
    pub problem: Option<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.rel_error < self.tolerance
    }
}

/// Every check of one self-test.
#[derive(Clone, Debug)]
pub struct SelftestReport {
    pub adapter: String,
    pub checks: Vec<Check>,
}

impl SelftestReport {
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed()).collect()
    }

    /// An error listing the failed checks, if any failed.
    pub fn ensure_passed(&self) -> Result<()> {
        let failed = self.failures();
        if failed.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = failed.iter().map(|c| c.name.as_str()).collect();
        Err(Error::Gpu(format!(
            "selftest: {} of {} checks failed on {}: {}",
            failed.len(),
            self.checks.len(),
            self.adapter,
            names.join("; ")
        )))
    }
}

/// Compares `got` with `want`: equal lengths, every element finite (an element the kernel never
/// wrote is NaN from the poison), relative error below `tolerance`.
pub fn compare(name: &str, got: Result<Vec<f32>>, want: &[f64], tolerance: f64) -> Check {
    let fail = |problem: String| Check {
        name: name.to_string(),
        rel_error: f64::INFINITY,
        tolerance,
        problem: Some(problem),
    };
    let got = match got {
        Ok(got) => got,
        Err(e) => return fail(format!("the op failed: {e}")),
    };
    if got.len() != want.len() {
        return fail(format!(
            "{} elements, the reference has {}",
            got.len(),
            want.len()
        ));
    }
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        return fail(format!(
            "element {i} is {} (unwritten or overflowed)",
            got[i]
        ));
    }
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, w)| (g as f64 - w).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    Check {
        name: name.to_string(),
        rel_error: diff / norm.max(1e-30),
        tolerance,
        problem: None,
    }
}

/// Runs every check on `gpu`; a check that fails is recorded, not raised, so that one broken
/// kernel does not hide the others. Poisons the device's new buffers while it runs.
pub fn selftest(gpu: &Gpu, shapes: SelftestShapes, seed: u64) -> Result<SelftestReport> {
    let was_poisoned = gpu.poisoned();
    gpu.set_poison(true);
    let mut t = Tester {
        gpu,
        rng: StdRng::seed_from_u64(seed),
        checks: Vec::new(),
    };
    let result = t.run_all(shapes);
    gpu.set_poison(was_poisoned);
    result?;
    Ok(SelftestReport {
        adapter: gpu.adapter().to_string(),
        checks: t.checks,
    })
}

/// (input NCHW, weight [Cout, Cin, KH, KW], stride, pad): both strides, 1x1 to 5x5, channel
/// counts off every tile size, stride-2 input gradients by phases and by dilation.
const SMALL_CONVS: &[([usize; 4], [usize; 4], usize, usize)] = &[
    ([1, 3, 7, 5], [17, 3, 3, 3], 1, 1),
    ([3, 17, 7, 5], [3, 17, 3, 3], 2, 1),
    ([2, 5, 9, 11], [7, 5, 1, 1], 2, 0),
    ([2, 3, 9, 13], [4, 3, 2, 5], 2, 1),
    ([2, 3, 13, 13], [4, 3, 3, 3], 2, 2),
    ([2, 37, 6, 7], [21, 37, 3, 3], 1, 1),
    ([3, 20, 9, 9], [35, 20, 3, 3], 2, 1),
    ([2, 8, 16, 16], [33, 8, 3, 3], 1, 1),
    // Channels in sixteens: the 16-channel subgroup kernel.
    ([2, 16, 11, 9], [32, 16, 3, 3], 2, 1),
];

/// ResNet-18's (CIFAR variant) convolutions at `n` images: the stem, a 3x3 of every stage, the
/// stride-2 3x3s and 1x1 shortcuts.
fn resnet18_convs(n: usize) -> Vec<([usize; 4], [usize; 4], usize, usize)> {
    vec![
        ([n, 3, 32, 32], [64, 3, 3, 3], 1, 1),
        ([n, 64, 32, 32], [64, 64, 3, 3], 1, 1),
        ([n, 64, 32, 32], [128, 64, 3, 3], 2, 1),
        ([n, 64, 32, 32], [128, 64, 1, 1], 2, 0),
        ([n, 128, 16, 16], [128, 128, 3, 3], 1, 1),
        ([n, 256, 8, 8], [512, 256, 3, 3], 2, 1),
        ([n, 512, 4, 4], [512, 512, 3, 3], 1, 1),
    ]
}

/// (rows, inputs, outputs) of the linear layers and products.
const SMALL_PRODUCTS: &[(usize, usize, usize)] = &[(37, 29, 13), (64, 128, 32), (5, 3, 70)];

/// The f16 convolutions' bound against the f32 reference (see `Tester::conv`).
const F16_TOLERANCE: f64 = 2e-3;

struct Tester<'a> {
    gpu: &'a Gpu,
    rng: StdRng,
    checks: Vec<Check>,
}

impl Tester<'_> {
    fn run_all(&mut self, shapes: SelftestShapes) -> Result<()> {
        let mut convs = SMALL_CONVS.to_vec();
        let mut products = SMALL_PRODUCTS.to_vec();
        let mut contrastive = vec![(5, 24), (64, 128)];
        let mut batch_norms = vec![[3, 5, 7, 3], [300, 3, 2, 3]];
        if let SelftestShapes::ResNet18 { batch } = shapes {
            if batch == 0 {
                return Err(Error::InvalidArgument(
                    "the self-test's batch must be at least 1".into(),
                ));
            }
            convs.extend(resnet18_convs(batch));
            products.extend([
                (2 * batch, 512, 512),
                (2 * batch, 512, 128),
                (batch, 512, 10),
            ]);
            contrastive.push((batch, 128));
            batch_norms.push([batch, 64, 32, 32]);
        }
        for (xs, ws, stride, pad) in convs {
            self.conv(xs, ws, Conv2dConfig { stride, pad })?;
        }
        for (n, fin, fout) in products {
            self.linear(n, fin, fout)?;
        }
        for (n, d) in contrastive {
            self.nt_xent(n, d)?;
        }
        for shape in batch_norms {
            self.batch_norm(shape)?;
        }
        self.small_ops()
    }

    /// Values in [-1, 1), rounded to f32 so that both sides see the same inputs.
    fn data(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| self.rng.random_range(-1.0f32..1.0) as f64)
            .collect()
    }

    fn upload(&self, shape: &[usize], values: &[f64]) -> Result<Tensor> {
        let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        Tensor::from_slice(self.gpu, shape, &v)
    }

    fn check(&mut self, name: String, got: Result<Tensor>, want: &[f64], tolerance: f64) {
        let got = got.and_then(|t| t.to_vec());
        self.checks.push(compare(&name, got, want, tolerance));
    }

    /// Long reductions round more: the tolerance grows with the reduction's length.
    fn tolerance(reduction: usize) -> f64 {
        1e-5 * (reduction as f64 / 512.0).sqrt().max(1.0)
    }

    fn conv(&mut self, xs: [usize; 4], ws: [usize; 4], cfg: Conv2dConfig) -> Result<()> {
        let s = ConvShape::new(&xs, &ws, cfg)?;
        let x = self.data(xs.iter().product());
        let w = self.data(ws.iter().product());
        let b = self.data(ws[0]);
        let dy = self.data(s.output().iter().product());
        let (tx, tw, tb) = (
            self.upload(&xs, &x)?,
            self.upload(&ws, &w)?,
            self.upload(&[ws[0]], &b)?,
        );
        let tdy = self.upload(&s.output(), &dy)?;
        let y = reference::conv2d::conv2d_forward(&x, &w, Some(&b), &s);
        let dx = reference::conv2d::conv2d_backward_input(&dy, &w, &s);
        let dw = reference::conv2d::conv2d_backward_weight(&x, &dy, &s);
        let db = reference::conv2d::conv2d_backward_bias(&dy, &s);
        let case = format!("x{xs:?} w{ws:?} s{} p{}", cfg.stride, cfg.pad);
        let [_, cin, kh, kw] = ws;
        let [n, cout, ho, wo] = s.output();
        for algo in ConvAlgo::ALL {
            let some = Some(algo);
            if algo.accepts(Pass::Forward, &s, self.gpu) {
                let got = conv::conv2d_forward_with(&tx, &tw, Some(&tb), cfg, some);
                let tol = Self::tolerance(cin * kh * kw);
                self.check(format!("conv2d {algo} forward {case}"), got, &y, tol);
            }
            if algo.accepts(Pass::InputGradient, &s, self.gpu) {
                let got = conv::conv2d_backward_input_with(&tdy, &tw, &xs, cfg, some);
                let tol = Self::tolerance(cout * kh * kw);
                self.check(
                    format!("conv2d {algo} input gradient {case}"),
                    got,
                    &dx,
                    tol,
                );
            }
            if algo.accepts(Pass::WeightGradient, &s, self.gpu) {
                let got = conv::conv2d_backward_weight_with(&tx, &tdy, &ws, cfg, some);
                let tol = Self::tolerance(n * ho * wo);
                self.check(
                    format!("conv2d {algo} weight gradient {case}"),
                    got,
                    &dw,
                    tol,
                );
            }
        }
        let got = conv::conv2d_backward_bias(&tdy);
        let tol = Self::tolerance(n * ho * wo);
        self.check(format!("conv2d bias gradient {case}"), got, &db, tol);
        if self.gpu.has_f16() {
            // `--precision f16`: x and the weights as f16 (the tiled kernel), against the f32
            // reference; rounding both operands (2^-12 relative each) moves a sum of products
            // by about 4e-4 of its norm (the kernel tests compare at 1e-5 with the reference
            // on f16-rounded operands).
            let (hx, hw) = (to_f16(&tx)?, to_f16(&tw)?);
            let tol = F16_TOLERANCE;
            let got = conv::conv2d_forward(&hx, &hw, Some(&tb), cfg);
            self.check(format!("conv2d tiled f16 forward {case}"), got, &y, tol);
            let got = conv::conv2d_forward_stored(&hx, &hw, Some(&tb), cfg, Precision::F16);
            self.check(
                format!("conv2d tiled f16 forward, f16 y {case}"),
                got,
                &y,
                tol,
            );
            let got = conv::conv2d_backward_input(&tdy, &hw, &xs, cfg);
            let name = format!("conv2d tiled f16 input gradient {case}");
            self.check(name, got, &dx, tol);
            let got = conv::conv2d_backward_weight(&hx, &tdy, &ws, cfg);
            let name = format!("conv2d tiled f16 weight gradient {case}");
            self.check(name, got, &dw, tol);
        }
        Ok(())
    }

    fn linear(&mut self, n: usize, fin: usize, fout: usize) -> Result<()> {
        use reference::small_ops as r;
        let (x, w, b, dy) = (
            self.data(n * fin),
            self.data(fout * fin),
            self.data(fout),
            self.data(n * fout),
        );
        let (tx, tw, tb) = (
            self.upload(&[n, fin], &x)?,
            self.upload(&[fout, fin], &w)?,
            self.upload(&[fout], &b)?,
        );
        let tdy = self.upload(&[n, fout], &dy)?;
        let case = format!("[{n}, {fin}] -> {fout}");
        let y = r::linear_forward(&x, &w, Some(&b), n, fin, fout);
        let y_no_bias = r::linear_forward(&x, &w, None, n, fin, fout);
        let dx = r::linear_backward_input(&dy, &w, n, fin, fout);
        let dw = r::linear_backward_weight(&x, &dy, n, fin, fout);
        for algo in ProductAlgo::ALL {
            let some = Some(algo);
            let accepts = |pass, bias| algo.accepts_linear(pass, (n, fin, fout), bias, self.gpu);
            let tol = Self::tolerance(fin);
            if accepts(Pass::Forward, true) {
                let got = linear::linear_forward_with(&tx, &tw, Some(&tb), some);
                self.check(format!("linear {algo} forward {case}"), got, &y, tol);
            }
            if accepts(Pass::Forward, false) {
                let got = linear::linear_forward_with(&tx, &tw, None, some);
                let name = format!("linear {algo} forward, no bias {case}");
                self.check(name, got, &y_no_bias, tol);
            }
            if accepts(Pass::InputGradient, false) {
                let got = linear::linear_backward_input_with(&tdy, &tw, some);
                let tol = Self::tolerance(fout);
                self.check(
                    format!("linear {algo} input gradient {case}"),
                    got,
                    &dx,
                    tol,
                );
            }
            if accepts(Pass::WeightGradient, false) {
                let got = linear::linear_backward_weight_with(&tx, &tdy, some);
                let tol = Self::tolerance(n);
                self.check(
                    format!("linear {algo} weight gradient {case}"),
                    got,
                    &dw,
                    tol,
                );
            }
        }
        let db = r::sum_channels(&dy, n, fout, 1);
        let got = linear::linear_backward_bias(&tdy);
        self.check(
            format!("linear bias gradient {case}"),
            got,
            &db,
            Self::tolerance(n),
        );
        Ok(())
    }

    /// NT-Xent on `2n` unit rows of `d` features, forward and backward.
    fn nt_xent(&mut self, n: usize, d: usize) -> Result<()> {
        let u = reference::small_ops::l2_normalize(&self.data(2 * n * d), d, 1e-12);
        let u: Vec<f64> = u.iter().map(|&v| v as f32 as f64).collect();
        let (u1, u2) = (
            self.upload(&[n, d], &u[..n * d])?,
            self.upload(&[n, d], &u[n * d..])?,
        );
        let tau = 0.1;
        let case = format!("{} rows x {d}", 2 * n);
        let want = reference::ntxent::ntxent(&u, 2 * n, d, tau);
        let forward = ntxent::ntxent_forward(&u1, &u2, tau as f32);
        let (loss, saved) = match forward {
            Ok((loss, saved)) => (Ok(loss), Some(saved)),
            Err(e) => (Err(e), None),
        };
        let tol = Self::tolerance(2 * n);
        self.check(format!("nt-xent forward {case}"), loss, &[want], tol);
        if let Some(saved) = saved {
            let want = reference::ntxent::ntxent_backward(&u, 2 * n, d, tau);
            let got = (|| {
                let (d1, d2) = ntxent::ntxent_backward(&saved, &self.upload(&[1], &[1.0])?)?;
                let mut g = d1.to_vec()?;
                g.extend(d2.to_vec()?);
                Tensor::from_slice(self.gpu, &[g.len()], &g)
            })();
            self.check(format!("nt-xent backward {case}"), got, &want, tol);
        }
        Ok(())
    }

    /// Batch norm in training mode (forward, running statistics, backward) and evaluation mode,
    /// with every reduction the device runs, with and without the fused ReLU.
    fn batch_norm(&mut self, shape: [usize; 4]) -> Result<()> {
        use reference::batchnorm as r;
        let c = shape[1];
        // An offset mean checks that the variance is computed without cancellation.
        let x: Vec<f64> = self
            .data(shape.iter().product())
            .iter()
            .map(|v| (3.0 + 2.0 * v) as f32 as f64)
            .collect();
        let (gamma, beta, dy) = (self.data(c), self.data(c), self.data(x.len()));
        let rm0 = self.data(c);
        let rv0: Vec<f64> = self.data(c).iter().map(|v| 1.25 + 0.75 * v).collect();
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let want = r::batch_norm_train(&x, shape, &gamma, &beta, &mut rm, &mut rv, 0.1, 1e-5);
        let eval_y = r::batch_norm_eval(&x, shape, &gamma, &beta, &rm0, &rv0, 1e-5);
        let (tx, tg, tb) = (
            self.upload(&shape, &x)?,
            self.upload(&[c], &gamma)?,
            self.upload(&[c], &beta)?,
        );
        let tdy = self.upload(&shape, &dy)?;
        // Running statistics as they were before a forward pass updates them.
        let gpu = self.gpu;
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let fresh_state = || -> Result<Rc<BatchNormState>> {
            Ok(Rc::new(BatchNormState {
                running_mean: Tensor::from_slice(gpu, &[c], &f32s(&rm0))?,
                running_var: Tensor::from_slice(gpu, &[c], &f32s(&rv0))?,
                momentum: 0.1,
                eps: 1e-5,
            }))
        };
        let reduction = shape[0] * shape[2] * shape[3];
        let tol = Self::tolerance(reduction);
        for sums in BnReduction::ALL {
            if !sums.accepted_by(self.gpu) {
                continue;
            }
            for relu in [false, true] {
                let options = BnOptions {
                    relu,
                    reduction: Some(sums),
                    ..BnOptions::default()
                };
                let op = if relu {
                    "batch norm + relu"
                } else {
                    "batch norm"
                };
                let case = format!("({sums} sums) {shape:?}");
                let clip = |v: &[f64]| -> Vec<f64> {
                    v.iter()
                        .map(|&y| if relu { y.max(0.0) } else { y })
                        .collect()
                };
                let state = fresh_state()?;
                let got = batch_norm_forward_with(&tx, &tg, &tb, &state, false, options);
                let got = got.map(|(y, _)| y);
                self.check(
                    format!("{op} eval forward {case}"),
                    got,
                    &clip(&eval_y),
                    tol,
                );
                let forward = batch_norm_forward_with(&tx, &tg, &tb, &state, true, options);
                let (y, stats) = match forward {
                    Ok((y, stats)) => (Ok(y), Some(stats)),
                    Err(e) => (Err(e), None),
                };
                self.check(format!("{op} train forward {case}"), y, &clip(&want.y), tol);
                let got = Ok(state.running_mean.clone());
                self.check(format!("{op} running mean {case}"), got, &rm, tol);
                let got = Ok(state.running_var.clone());
                self.check(format!("{op} running variance {case}"), got, &rv, tol);
                let Some(stats) = stats else { continue };
                let passed: Vec<f64> = (dy.iter().zip(&want.y))
                    .map(|(&g, &y)| if relu && y <= 0.0 { 0.0 } else { g })
                    .collect();
                let (wdx, wdg, wdb) =
                    r::batch_norm_train_backward(&x, &passed, shape, &gamma, &want, 1e-5);
                let back =
                    batch_norm_backward_with(&tx, &tdy, (&tg, &tb), &stats, &state, true, options);
                let (dx, dg, db) = match back {
                    Ok((dx, dg, db)) => (Ok(dx), Ok(dg), Ok(db)),
                    Err(e) => {
                        let msg = e.to_string();
                        let err = || Err(Error::Gpu(msg.clone()));
                        (err(), err(), err())
                    }
                };
                // dx subtracts two means of dy: ten times the forward pass's rounding.
                self.check(format!("{op} input gradient {case}"), dx, &wdx, 10.0 * tol);
                self.check(format!("{op} gamma gradient {case}"), dg, &wdg, tol);
                self.check(format!("{op} beta gradient {case}"), db, &wdb, tol);
                if self.gpu.has_f16() {
                    // The output stored as f16 (`--precision f16`): rounded once.
                    let half = BnOptions {
                        output: Precision::F16,
                        ..options
                    };
                    let state = fresh_state()?;
                    let got = batch_norm_forward_with(&tx, &tg, &tb, &state, true, half);
                    let name = format!("{op} train forward, f16 output {case}");
                    self.check(name, got.map(|(y, _)| y), &clip(&want.y), F16_TOLERANCE);
                    // x stored as f16 (a convolution's f16 output), y f32.
                    let got = to_f16(&tx).and_then(|hx| {
                        batch_norm_forward_with(&hx, &tg, &tb, &state, true, options)
                    });
                    let name = format!("{op} train forward, f16 input {case}");
                    self.check(name, got.map(|(y, _)| y), &clip(&want.y), F16_TOLERANCE);
                }
            }
        }
        Ok(())
    }

    /// ReLU, addition, L2 normalisation, average pooling, cross-entropy and channel sums.
    fn small_ops(&mut self) -> Result<()> {
        use reference::small_ops as r;
        let shape = [3, 5, 7, 9];
        let x = self.data(shape.iter().product());
        let dy = self.data(x.len());
        let (tx, tdy) = (self.upload(&shape, &x)?, self.upload(&shape, &dy)?);
        let tol = 1e-6;
        let y = reference::elementwise::relu_forward(&x);
        self.check("relu forward".into(), ew::relu_forward(&tx), &y, tol);
        let dx = reference::elementwise::relu_backward(&y, &dy);
        let ty = self.upload(&shape, &y)?;
        self.check(
            "relu backward".into(),
            ew::relu_backward(&ty, &tdy),
            &dx,
            tol,
        );
        let sum = reference::elementwise::add_forward(&x, &dy);
        self.check("add".into(), ew::add_forward(&tx, &tdy), &sum, tol);
        // The residual block's end: relu(h + shortcut), and its mask on the way back.
        let y = reference::elementwise::relu_forward(&sum);
        let got = ew::add_relu_forward(&tx, &tdy, Precision::F32);
        self.check("add + relu forward".into(), got, &y, tol);
        let dx = reference::elementwise::relu_backward(&y, &x);
        let got = ew::add_relu_forward(&tx, &tdy, Precision::F32)
            .and_then(|ty| ew::relu_backward(&ty, &tx));
        self.check("add + relu backward".into(), got, &dx, tol);
        if self.gpu.has_f16() {
            // An f16 shortcut and an f16 output (`--precision f16`).
            let got = to_f16(&tdy).and_then(|hs| ew::add_relu_forward(&tx, &hs, Precision::F16));
            let name = "add + relu forward, f16 shortcut and output".into();
            self.check(name, got, &y, F16_TOLERANCE);
        }

        let (rows, d) = (13, 19);
        let (z, dz) = (self.data(rows * d), self.data(rows * d));
        let (tz, tdz) = (self.upload(&[rows, d], &z)?, self.upload(&[rows, d], &dz)?);
        let want = r::l2_normalize(&z, d, 1e-12);
        let got = l2norm::l2_normalize_forward(&tz);
        self.check("l2 normalise forward [13, 19]".into(), got, &want, 1e-5);
        let want = r::l2_normalize_backward(&z, &dz, d, 1e-12);
        let got = l2norm::l2_normalize_backward(&tz, &tdz);
        self.check("l2 normalise backward [13, 19]".into(), got, &want, 1e-5);

        let [n, c, h, w] = shape;
        let want = r::global_avg_pool(&x, n * c, h * w);
        let got = pool::global_avg_pool_forward(&tx);
        self.check("average pool forward [3, 5, 7, 9]".into(), got, &want, 1e-5);
        let dp = self.data(n * c);
        let want = r::global_avg_pool_backward(&dp, h * w);
        let got = self
            .upload(&[n, c], &dp)
            .and_then(|t| pool::global_avg_pool_backward(&t, &shape));
        self.check(
            "average pool backward [3, 5, 7, 9]".into(),
            got,
            &want,
            1e-5,
        );

        let (batch, classes) = (21, 10);
        let logits: Vec<f64> = self.data(batch * classes).iter().map(|v| 4.0 * v).collect();
        let labels: Vec<u32> = (0..batch).map(|_| self.rng.random_range(0..10)).collect();
        let tl = self.upload(&[batch, classes], &logits)?;
        let tlab = Tensor::from_u32(self.gpu, &[batch], &labels)?;
        let want = r::cross_entropy(&logits, &labels, classes);
        let got = ce::cross_entropy_forward(&tl, &tlab);
        self.check("cross-entropy forward [21, 10]".into(), got, &[want], 1e-5);
        let want = r::cross_entropy_backward(&logits, &labels, classes, 0.5);
        let got = self
            .upload(&[1], &[0.5])
            .and_then(|dl| ce::cross_entropy_backward(&tl, &tlab, &dl));
        self.check("cross-entropy backward [21, 10]".into(), got, &want, 1e-5);

        let want = r::sum_channels(&x, n, c, h * w);
        let got = reduce::sum_channels(&tx, n, c, h * w, 1.0);
        self.check("channel sums [3, 5, 63]".into(), got, &want, 1e-5);
        Ok(())
    }
}
