//! The smoke run: a model memorises one fixed random batch with Adam and cross-entropy. If the
//! loss falls, every kernel of a training step (forward, backward, update) works on this device.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::autograd::Graph;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::cross_entropy::cross_entropy;
use crate::optim::Adam;
use crate::tensor::Tensor;

pub use crate::nn::ModelKind as Model;

pub struct SmokeReport {
    pub losses: Vec<f32>,
    pub images_per_second: f64,
}

impl SmokeReport {
    /// The first and the last loss.
    pub fn first_and_last(&self) -> (f32, f32) {
        let first = self.losses.first().copied().unwrap_or(f32::NAN);
        (first, self.losses.last().copied().unwrap_or(first))
    }

    /// The verdict: with more than one step the loss must have fallen.
    pub fn check(&self) -> Result<()> {
        let (first, last) = self.first_and_last();
        if self.losses.len() > 1 && last >= first {
            return Err(Error::Gpu(format!(
                "smoke: the loss did not fall ({first:.4} -> {last:.4})"
            )));
        }
        Ok(())
    }
}

/// Trains `model` for `steps` steps on one batch of `batch` random 3x`size`x`size` images with
/// random labels out of 10 classes; prints each step's loss.
pub fn smoke(
    gpu: &Gpu,
    model: Model,
    batch: usize,
    size: usize,
    steps: usize,
    seed: u64,
) -> Result<SmokeReport> {
    if batch < 2 || steps == 0 || size < 4 {
        return Err(Error::InvalidArgument(
            "smoke: needs --batch >= 2, --steps >= 1 and --size >= 4".into(),
        ));
    }
    // The batch is made on the CPU first: check that the GPU could hold it before making it.
    let bytes = [batch, 3, size, size, 4]
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    gpu.check_fits(
        bytes,
        &format!("the smoke batch ({batch} images of 3x{size}x{size})"),
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let encoder = model.build(gpu, &mut rng, 3, 10)?;
    let pixels: Vec<f32> = (0..batch * 3 * size * size)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let images = Tensor::from_slice(gpu, &[batch, 3, size, size], &pixels)?;
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let labels = Tensor::from_u32(gpu, &[batch], &labels)?;
    let mut adam = Adam::new(encoder.params(), 1e-3);
    let mut losses = Vec::with_capacity(steps);
    let mut timed = 0.0;
    for step in 0..steps {
        let start = Instant::now();
        let g = Graph::new(gpu);
        let x = g.input(images.clone());
        let loss = cross_entropy(&g, encoder.forward(&g, x, true)?, &labels)?;
        g.backward(loss)?;
        adam.step()?;
        let value = g.value(loss).item()?;
        // The first step compiles the pipelines; leave it out of the throughput.
        if step > 0 {
            timed += start.elapsed().as_secs_f64();
        }
        println!("step {:>3}  loss {value:.4}", step + 1);
        if !value.is_finite() {
            return Err(Error::Gpu(format!(
                "smoke: the loss became {value} at step {}",
                step + 1
            )));
        }
        losses.push(value);
    }
    let images_per_second = if steps > 1 {
        (batch * (steps - 1)) as f64 / timed
    } else {
        f64::NAN
    };
    Ok(SmokeReport {
        losses,
        images_per_second,
    })
}
