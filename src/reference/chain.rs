//! A CPU tape over the reference ops, in f64: builds a network's forward pass from the same
//! reference functions the kernels are tested against, and back-propagates through it. The
//! model tests compare every parameter gradient of a GPU network with this chain.

use std::collections::HashMap;

use crate::reference::{batchnorm as bn, conv2d as conv, elementwise as ew, small_ops as small};
use crate::shapes::{Conv2dConfig, ConvShape};

type Backward = Box<dyn Fn(&[f64]) -> Vec<(usize, Vec<f64>)>>;

#[derive(Default)]
pub struct CpuTape {
    values: Vec<Vec<f64>>,
    shapes: Vec<Vec<usize>>,
    backward: Vec<Option<Backward>>,
    names: HashMap<usize, String>,
}

impl CpuTape {
    pub fn new() -> CpuTape {
        CpuTape::default()
    }

    fn push(&mut self, value: Vec<f64>, shape: Vec<usize>, back: Option<Backward>) -> usize {
        self.values.push(value);
        self.shapes.push(shape);
        self.backward.push(back);
        self.values.len() - 1
    }

    pub fn value(&self, v: usize) -> &[f64] {
        &self.values[v]
    }

    pub fn input(&mut self, value: Vec<f64>, shape: &[usize]) -> usize {
        self.push(value, shape.to_vec(), None)
    }

    /// A named leaf whose gradient `backward` reports.
    pub fn param(&mut self, name: &str, params: &HashMap<String, (Vec<usize>, Vec<f64>)>) -> usize {
        let (shape, value) = params
            .get(name)
            .unwrap_or_else(|| panic!("reference chain: no parameter named {name}"));
        let id = self.push(value.clone(), shape.clone(), None);
        self.names.insert(id, name.to_string());
        id
    }

    pub fn conv2d(&mut self, x: usize, w: usize, stride: usize, pad: usize) -> usize {
        let s = ConvShape::new(
            &self.shapes[x],
            &self.shapes[w],
            Conv2dConfig { stride, pad },
        )
        .expect("valid conv shapes");
        let (xv, wv) = (self.values[x].clone(), self.values[w].clone());
        let y = conv::conv2d_forward(&xv, &wv, None, &s);
        let back: Backward = Box::new(move |dy| {
            vec![
                (x, conv::conv2d_backward_input(dy, &wv, &s)),
                (w, conv::conv2d_backward_weight(&xv, dy, &s)),
            ]
        });
        self.push(y, s.output().to_vec(), Some(back))
    }

    /// Training-mode batch norm (momentum 0.1, eps 1e-5), batch statistics.
    pub fn batch_norm(&mut self, x: usize, gamma: usize, beta: usize) -> usize {
        let shape: [usize; 4] = self.shapes[x].clone().try_into().expect("NCHW");
        let (xv, gv, bv) = (
            self.values[x].clone(),
            self.values[gamma].clone(),
            self.values[beta].clone(),
        );
        let c = shape[1];
        let fwd = bn::batch_norm_train(
            &xv,
            shape,
            &gv,
            &bv,
            &mut vec![0.0; c],
            &mut vec![1.0; c],
            0.1,
            1e-5,
        );
        let y = fwd.y.clone();
        let back: Backward = Box::new(move |dy| {
            let (dx, dg, db) = bn::batch_norm_train_backward(&xv, dy, shape, &gv, &fwd, 1e-5);
            vec![(x, dx), (gamma, dg), (beta, db)]
        });
        self.push(y, shape.to_vec(), Some(back))
    }

    /// ReLU whose ties are resolved as `observed` (another implementation's output of the same
    /// ReLU) resolved them. A pre-activation within rounding of 0 (|x| <= `tie`) can land on either
    /// side in f32; everywhere else the two must agree, or this returns the first disagreement.
    pub fn relu_matching(&mut self, x: usize, observed: &[f64], tie: f64) -> Result<usize, String> {
        let xv = &self.values[x];
        if observed.len() != xv.len() {
            return Err(format!(
                "relu: observed {} values, reference has {}",
                observed.len(),
                xv.len()
            ));
        }
        let mut mask = Vec::with_capacity(xv.len());
        for (i, (&v, &o)) in xv.iter().zip(observed).enumerate() {
            let (mine, theirs) = (v > 0.0, o > 0.0);
            if mine != theirs && v.abs() > tie {
                return Err(format!(
                    "relu element {i}: reference input {v:e} but observed output {o:e}"
                ));
            }
            mask.push(if v.abs() <= tie { theirs } else { mine });
        }
        let y: Vec<f64> = xv
            .iter()
            .zip(&mask)
            .map(|(&v, &m)| if m { v.max(0.0) } else { 0.0 })
            .collect();
        let back: Backward = Box::new(move |dy| {
            vec![(
                x,
                dy.iter()
                    .zip(&mask)
                    .map(|(&g, &m)| if m { g } else { 0.0 })
                    .collect(),
            )]
        });
        let shape = self.shapes[x].clone();
        Ok(self.push(y, shape, Some(back)))
    }

    pub fn add(&mut self, a: usize, b: usize) -> usize {
        let y = ew::add_forward(&self.values[a], &self.values[b]);
        let back: Backward = Box::new(move |dy| vec![(a, dy.to_vec()), (b, dy.to_vec())]);
        let shape = self.shapes[a].clone();
        self.push(y, shape, Some(back))
    }

    pub fn global_avg_pool(&mut self, x: usize) -> usize {
        let s = self.shapes[x].clone();
        let (rows, hw) = (s[0] * s[1], s[2] * s[3]);
        let y = small::global_avg_pool(&self.values[x], rows, hw);
        let back: Backward = Box::new(move |dy| vec![(x, small::global_avg_pool_backward(dy, hw))]);
        self.push(y, vec![s[0], s[1]], Some(back))
    }

    pub fn linear(&mut self, x: usize, w: usize, b: usize) -> usize {
        let (n, fin, fout) = (self.shapes[x][0], self.shapes[x][1], self.shapes[w][0]);
        let (xv, wv) = (self.values[x].clone(), self.values[w].clone());
        let y = small::linear_forward(&xv, &wv, Some(&self.values[b]), n, fin, fout);
        let back: Backward = Box::new(move |dy| {
            vec![
                (x, small::linear_backward_input(dy, &wv, n, fin, fout)),
                (w, small::linear_backward_weight(&xv, dy, n, fin, fout)),
                (b, small::sum_channels(dy, n, fout, 1)),
            ]
        });
        self.push(y, vec![n, fout], Some(back))
    }

    pub fn cross_entropy(&mut self, logits: usize, labels: &[u32]) -> usize {
        let classes = self.shapes[logits][1];
        let lv = self.values[logits].clone();
        let labels = labels.to_vec();
        let loss = small::cross_entropy(&lv, &labels, classes);
        let back: Backward = Box::new(move |dy| {
            vec![(
                logits,
                small::cross_entropy_backward(&lv, &labels, classes, dy[0]),
            )]
        });
        self.push(vec![loss], vec![1], Some(back))
    }

    /// Gradients of the one-element `loss` with respect to every named parameter.
    pub fn backward(&self, loss: usize) -> HashMap<String, Vec<f64>> {
        let mut grads: Vec<Option<Vec<f64>>> = vec![None; self.values.len()];
        grads[loss] = Some(vec![1.0]);
        let mut out = HashMap::new();
        for i in (0..=loss).rev() {
            let Some(g) = grads[i].take() else { continue };
            if let Some(name) = self.names.get(&i) {
                out.insert(name.clone(), g);
                continue;
            }
            let Some(back) = &self.backward[i] else {
                continue;
            };
            for (j, gj) in back(&g) {
                match &mut grads[j] {
                    Some(acc) => acc.iter_mut().zip(&gj).for_each(|(a, b)| *a += b),
                    slot => *slot = Some(gj),
                }
            }
        }
        out
    }
}
