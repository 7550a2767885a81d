//! The device's FMA ceiling (`shaders/peak.wgsl`): a kernel that does nothing but independent
//! fused multiply-adds, at a chosen number of accumulators per invocation. The bench times it
//! in the same run as the real kernels and reports each of them as a share of the best figure;
//! on lavapipe the figure depends on the accumulator count (each scalar of an invocation is one
//! SIMD register shared by 8 invocations), which is what the kernels' tiles are chosen by.

use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct PeakParams {
        a: f32,
        b: f32,
        invocations: u32,
        _pad: u32,
    }
}

/// How an invocation holds its accumulators: `Scalar(n)` f32s (n a multiple of 4, at most 32)
/// or `Vec4(n)` vec4s (n <= 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accumulators {
    Scalar(u32),
    Vec4(u32),
}

impl Accumulators {
    /// The scalars an invocation carries.
    pub fn scalars(self) -> u32 {
        match self {
            Accumulators::Scalar(n) => n,
            Accumulators::Vec4(n) => 4 * n,
        }
    }
}

/// The multiplier and addend of every multiply-add: |a| < 1 keeps the chains finite.
pub const PEAK_A: f32 = 0.999;
pub const PEAK_B: f32 = 0.001;

/// One run of the probe: `invocations` invocations, each `iters` rounds of its accumulators'
/// multiply-adds; returns per invocation the sum of its chains (so that the work is kept).
/// The flops are `2 * acc.scalars() * iters * invocations`.
pub fn fma_probe(
    gpu: &crate::Gpu,
    acc: Accumulators,
    iters: u32,
    invocations: u32,
) -> Result<Tensor> {
    let (entry, count, fits) = match acc {
        Accumulators::Scalar(n) => ("peak_scalar", n, n % 4 == 0 && (4..=32).contains(&n)),
        Accumulators::Vec4(n) => ("peak_vec4", n, (1..=8).contains(&n)),
    };
    if !fits || iters == 0 || invocations == 0 {
        return Err(Error::shape(
            "fma_probe",
            format!(
                "{acc:?} x {iters} rounds x {invocations} invocations: scalars come in fours \
                 up to 32, vec4s up to 8, rounds and invocations at least 1"
            ),
        ));
    }
    let out = Tensor::uninit(gpu, &[invocations as usize], "FMA probe sums")?;
    let p = PeakParams {
        a: PEAK_A,
        b: PEAK_B,
        invocations,
        _pad: 0,
    };
    let kernel = Kernel::new(Shader::Peak, entry)
        .with("WG", WG)
        .with("ACC", count)
        .with("ITERS", iters);
    gpu.dispatch(
        &kernel,
        &p,
        &[Access::Write(out.buffer())],
        invocations.div_ceil(WG),
    )?;
    Ok(out)
}

/// What `fma_probe` computes for invocation `id`, in f64 (for tests).
pub fn fma_probe_reference(acc: Accumulators, iters: u32, id: u32) -> f64 {
    let x = id as f64 * 1e-6;
    let starts: Vec<f64> = match acc {
        Accumulators::Scalar(n) => (0..n).map(|i| x + i as f64).collect(),
        Accumulators::Vec4(n) => (0..n)
            .flat_map(|i| [0.0, 0.25, 0.5, 0.75].map(|c| x + c + i as f64))
            .collect(),
    };
    let (a, b) = (PEAK_A as f64, PEAK_B as f64);
    starts
        .into_iter()
        .map(|mut v| {
            for _ in 0..iters {
                v = v * a + b;
            }
            v
        })
        .sum()
}

/// Where the probe's loads read: a storage buffer, each lane its own vec4 or one vec4 for all
/// lanes (its address built from the workgroup id and the loop counter), or workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadAddress {
    PerLane,
    Shared,
    Workgroup,
}

/// Floats the load probe reads from: 4096 vec4s, 64 KiB, in cache.
pub const LOAD_PROBE_SOURCE: usize = 4096 * 4;

/// The load probe's source, made once (outside the timed calls).
pub fn load_probe_source(gpu: &crate::Gpu) -> Result<Tensor> {
    let values: Vec<f32> = (0..LOAD_PROBE_SOURCE)
        .map(|i| 1.0 - (i % 97) as f32 * 1e-3)
        .collect();
    Tensor::from_slice(gpu, &[LOAD_PROBE_SOURCE], &values)
}

/// The load probe: `invocations` invocations, each `iters` rounds of one vec4 storage load
/// feeding 16 multiply-adds (flops: `32 * iters * invocations`), so that its rate against
/// `fma_probe`'s says what a load costs on this device.
pub fn load_probe(
    source: &Tensor,
    address: LoadAddress,
    iters: u32,
    invocations: u32,
) -> Result<Tensor> {
    let gpu = source.gpu();
    if iters == 0 || invocations == 0 {
        return Err(Error::shape(
            "load_probe",
            format!("{iters} rounds x {invocations} invocations: both must be at least 1"),
        ));
    }
    let source: Vec<f32> = (0..4096 * 4)
        .map(|i| 1.0 - (i % 97) as f32 * 1e-3)
        .collect();
    let source = Tensor::from_slice(gpu, &[4096 * 4], &source)?;
    let out = Tensor::uninit(gpu, &[invocations as usize], "load probe sums")?;
    let p = PeakParams {
        a: PEAK_A,
        b: PEAK_B,
        invocations,
        _pad: 0,
    };
    let entry = match address {
        LoadAddress::Workgroup => "peak_shared",
        _ => "peak_load",
    };
    let kernel = Kernel::new(Shader::Peak, entry)
        .with("WG", WG)
        .with("ITERS", iters)
        .with("SAME", (address == LoadAddress::Shared) as u32);
    let bufs = [Access::Write(out.buffer()), Access::Read(source.buffer())];
    gpu.dispatch(&kernel, &p, &bufs, invocations.div_ceil(WG))?;
    Ok(out)
}

/// The broadcast probe (needs the SUBGROUP feature): per round 8 subgroup broadcasts and 36
/// multiply-adds (flops: `72 * iters * invocations`).
pub fn broadcast_probe(gpu: &crate::Gpu, iters: u32, invocations: u32) -> Result<Tensor> {
    if !gpu.has_subgroups() {
        return Err(Error::InvalidArgument(format!(
            "the adapter {} has no subgroup operations",
            gpu.adapter()
        )));
    }
    let out = Tensor::uninit(gpu, &[invocations as usize], "broadcast probe sums")?;
    let p = PeakParams {
        a: PEAK_A,
        b: PEAK_B,
        invocations,
        _pad: 0,
    };
    let kernel = Kernel::new(Shader::PeakSubgroup, "peak_broadcast")
        .with("WG", WG)
        .with("ITERS", iters);
    gpu.dispatch(
        &kernel,
        &p,
        &[Access::Write(out.buffer())],
        invocations.div_ceil(WG),
    )?;
    Ok(out)
}
