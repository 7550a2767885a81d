//! `cargo bench --bench kernels`: every kernel at ResNet-18 CIFAR shapes (batch 64), forward and
//! backward, against its CPU reference; then one ResNet-18 training step end to end.
//!
//! GPU time: one warm-up call, then 5 rounds of calls recorded and submitted together; the median
//! round's wall-clock per call. CPU reference time: the plain f64 loops of `taming::reference`, one run at
//! a smaller batch (`--cpu-batch`, default 4) scaled linearly to the GPU's batch, because the
//! reference convolution at batch 64 takes minutes. Options: `--quick` (fewer repetitions and
//! shapes), `--no-cpu` (skip the reference timings), `--batch N`, `--only peak,conv,ops,views,pretrain,step`, `--conv-algo NAME`
//! (`-- --help` lists them).
//! The views section times the affine sampling kernel and the whole view pipeline; the step
//! section prints the pipeline's cost next to the training step's.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::augment::{Normalization, ViewPipeline};
use taming::autograd::Graph;
use taming::crop::{CropSpec, Method};
use taming::nn::{Encoder, ModelKind, ResNet18};
use taming::ops::affine_sample::{self as sample, pack_view_info, PackedImages, Source, ViewInfo};
use taming::ops::batchnorm::{
    batch_norm_backward, batch_norm_backward_with, batch_norm_forward, batch_norm_forward_with,
    BatchNormState, BnOptions, BnReduction,
};
use taming::ops::conv2d::{self as conv, Conv2dConfig, ConvAlgo, ConvShape};
use taming::ops::precision::{to_f16, to_f32};
use taming::ops::stn::{self, Placement};
use taming::ops::{cross_entropy, elementwise as ew, l2norm, linear, ntxent, pool, saliency};
use taming::optim::{Adam, Optimizer};
use taming::reference;
use taming::simclr::stn::{LearntPlacement, PlacementTally};
use taming::simclr::{simclr_step, PretrainConfig, StnObjective};
use taming::tensor::Precision;
use taming::{Gpu, Result, Tensor};

/// The bench's sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// The device's FMA ceiling (always measured when a section with GFLOP/s lines runs).
    Peak,
    Conv,
    Ops,
    Views,
    Pretrain,
    Step,
}

/// `cargo bench --bench kernels -- [OPTIONS]`.
#[derive(clap::Parser)]
struct Options {
    /// Fewer repetitions and shapes.
    #[arg(long)]
    quick: bool,
    /// Run only these sections, e.g. conv,ops; all when not given.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Skip the CPU reference timings.
    #[arg(long = "no-cpu", action = clap::ArgAction::SetFalse)]
    cpu: bool,
    /// The GPU's batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// The batch the CPU reference is timed at (then scaled to --batch).
    #[arg(long, default_value_t = 4)]
    cpu_batch: usize,
    /// Force a convolution algorithm wherever it applies (as TAMING_CONV_ALGO does for a run).
    #[arg(long, value_enum)]
    conv_algo: Option<ConvAlgo>,
    /// The convolutions' operands stored as f16 (the tiled kernel; needs SHADER_F16).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn options() -> Options {
    <Options as clap::Parser>::parse()
}

fn random(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn tensor(gpu: &Gpu, rng: &mut StdRng, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_slice(gpu, shape, &random(rng, shape.iter().product()))
}

/// Rounds of GPU timing; the median round is reported, since a shared machine adds noise.
const ROUNDS: usize = 5;

/// Milliseconds per run of `f` on the GPU: after a warm-up run, `ROUNDS` rounds of `calls` runs
/// each recorded and submitted together; the median round's time divided by `calls`.
fn gpu_ms(gpu: &Gpu, calls: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    gpu.wait()?;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..calls {
            f()?;
        }
        gpu.wait()?;
        rounds.push(t.elapsed().as_secs_f64() * 1e3 / calls as f64);
    }
    rounds.sort_by(f64::total_cmp);
    Ok(rounds[ROUNDS / 2])
}

/// Like `gpu_ms`, but the fastest round: for a ceiling, noise from other work on the machine
/// only ever slows a round down.
fn gpu_best_ms(gpu: &Gpu, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    gpu.wait()?;
    let mut best = f64::INFINITY;
    for _ in 0..2 * ROUNDS {
        let t = Instant::now();
        f()?;
        gpu.wait()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// Milliseconds of one run of `f` on the CPU.
fn cpu_ms<T>(f: impl FnOnce() -> T) -> f64 {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed().as_secs_f64() * 1e3
}

/// The FMA ceiling measured at the start of this run (GFLOP/s), for the shares of the table.
static PEAK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// One table line; `work` is counted in the unit's base (flops, bytes, texels) and shown with
/// the unit's prefix (G or M). GFLOP/s lines end with their share of the measured peak.
fn row(name: &str, gpu_ms: f64, work: f64, unit: &str, cpu_ms: Option<f64>) {
    let prefix = if unit.starts_with('M') { 1e6 } else { 1e9 };
    let rate = work / (gpu_ms * 1e-3) / prefix;
    let (cpu, speedup) = match cpu_ms {
        Some(c) => (format!("{c:.1}"), format!("{:.1}x", c / gpu_ms)),
        None => ("-".into(), "-".into()),
    };
    let share = match (unit, PEAK.get()) {
        ("GFLOP/s", Some(peak)) => format!("{:>5.0} % of peak", 100.0 * rate / peak),
        _ => String::new(),
    };
    println!("{name:<44} {gpu_ms:>10.3} {rate:>9.2} {unit:<7} {cpu:>11} {speedup:>9} {share}");
}

/// The FMA-bound probe at 4 to 32 scalar accumulators per invocation and 1 to 8 vec4s; prints
/// each figure and the best as `peak: NN.N GFLOP/s`, and returns the best.
fn bench_peak(gpu: &Gpu, o: &Options) -> Result<f64> {
    use taming::ops::peak::{fma_probe, Accumulators};
    let (iters, invocations) = (if o.quick { 512 } else { 2048 }, 16_384u32);
    let mut configs: Vec<Accumulators> = [4, 8, 12, 16, 20, 24, 28, 32]
        .map(Accumulators::Scalar)
        .into();
    configs.extend([1, 2, 4, 6, 8].map(Accumulators::Vec4));
    println!(
        "device ceiling: independent FMA chains per invocation ({invocations} invocations x {iters} rounds; fastest of {} runs)",
        2 * ROUNDS
    );
    let mut best = 0.0f64;
    for acc in configs {
        let ms = gpu_best_ms(gpu, || fma_probe(gpu, acc, iters, invocations).map(drop))?;
        let flops = 2.0 * (acc.scalars() * iters) as f64 * invocations as f64;
        let rate = flops / (ms * 1e-3) / 1e9;
        best = best.max(rate);
        let name = match acc {
            Accumulators::Scalar(n) => format!("{n} scalar accumulators"),
            Accumulators::Vec4(n) => format!("{n} vec4 accumulators ({} scalars)", 4 * n),
        };
        println!("  {name:<42} {ms:>10.3} {rate:>9.2} GFLOP/s");
    }
    // What a load costs: one vec4 storage load per 16 multiply-adds, inside the loop.
    use taming::ops::peak::{load_probe, load_probe_source, LoadAddress};
    let source = load_probe_source(gpu)?;
    for address in [
        LoadAddress::PerLane,
        LoadAddress::Shared,
        LoadAddress::Workgroup,
    ] {
        let ms = gpu_best_ms(gpu, || {
            load_probe(&source, address, iters, invocations).map(drop)
        })?;
        let loads = iters as f64 * invocations as f64 / 8.0;
        let rate = 32.0 * iters as f64 * invocations as f64 / (ms * 1e-3) / 1e9;
        let name = match address {
            LoadAddress::PerLane => "1 vec4 load per 16 FMAs, per-lane address",
            LoadAddress::Shared => "1 vec4 load per 16 FMAs, shared address",
            LoadAddress::Workgroup => "1 vec4 load per 16 FMAs, workgroup memory",
        };
        println!(
            "  {name:<42} {ms:>10.3} {rate:>9.2} GFLOP/s ({:.1} ns per 8-lane vec4 load, both cores)",
            ms * 1e6 * 2.0 / loads
        );
    }
    if gpu.has_subgroups() {
        let ms = gpu_best_ms(gpu, || {
            taming::ops::peak::broadcast_probe(gpu, iters, invocations).map(drop)
        })?;
        let rate = 72.0 * iters as f64 * invocations as f64 / (ms * 1e-3) / 1e9;
        println!(
            "  {:<42} {ms:>10.3} {rate:>9.2} GFLOP/s",
            "8 subgroup broadcasts per 36 FMAs"
        );
    }
    println!("peak: {best:.1} GFLOP/s\n");
    Ok(best)
}

/// The CPU's model name and the widest vector extension it has, for every figure's heading.
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = (info.lines())
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let flags = (info.lines())
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vector = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2"
    } else {
        "no AVX2"
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores, {vector}")
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// (name, Cin, Cout, H=W of the input, kernel, stride): the distinct convolutions of ResNet-18.
const CONVS: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("stem 3->64 3x3 32x32", 3, 64, 32, 3, 1),
    ("64->64 3x3 32x32", 64, 64, 32, 3, 1),
    ("64->128 3x3 s2 32->16", 64, 128, 32, 3, 2),
    ("64->128 1x1 s2 (shortcut)", 64, 128, 32, 1, 2),
    ("128->128 3x3 16x16", 128, 128, 16, 3, 1),
    ("128->256 3x3 s2 16->8", 128, 256, 16, 3, 2),
    ("256->256 3x3 8x8", 256, 256, 8, 3, 1),
    ("256->512 3x3 s2 8->4", 256, 512, 8, 3, 2),
    ("512->512 3x3 4x4", 512, 512, 4, 3, 1),
];

fn bench_convs(gpu: &Gpu, rng: &mut StdRng, o: &Options) -> Result<()> {
    // Each convolution call takes long enough to time alone.
    let reps = 1;
    let convs = if o.quick { &CONVS[..2] } else { CONVS };
    for &(name, cin, cout, hw, k, stride) in convs {
        let cfg = Conv2dConfig { stride, pad: k / 2 };
        let (xs, ws) = ([o.batch, cin, hw, hw], [cout, cin, k, k]);
        let s = ConvShape::new(&xs, &ws, cfg)?;
        let (mut x, mut w) = (tensor(gpu, rng, &xs)?, tensor(gpu, rng, &ws)?);
        if o.precision == Precision::F16 {
            (x, w) = (to_f16(&x)?, to_f16(&w)?);
        }
        let dy = tensor(gpu, rng, &s.output())?;
        let fwd = gpu_ms(gpu, reps, || {
            conv::conv2d_forward(&x, &w, None, cfg).map(drop)
        })?;
        let bin = gpu_ms(gpu, reps, || {
            conv::conv2d_backward_input(&dy, &w, &xs, cfg).map(drop)
        })?;
        let bw = gpu_ms(gpu, reps, || {
            conv::conv2d_backward_weight(&x, &dy, &ws, cfg).map(drop)
        })?;
        let cpu = o.cpu.then(|| {
            let cb = o.cpu_batch.min(o.batch);
            let cs = ConvShape::new(&[cb, cin, hw, hw], &ws, cfg).expect("valid shape");
            let scale = o.batch as f64 / cb as f64;
            let xr = to_f64(&random(rng, cb * cin * hw * hw));
            let wr = to_f64(&random(rng, ws.iter().product()));
            let dyr = to_f64(&random(rng, cs.output().iter().product()));
            (
                scale * cpu_ms(|| reference::conv2d::conv2d_forward(&xr, &wr, None, &cs)),
                scale * cpu_ms(|| reference::conv2d::conv2d_backward_input(&dyr, &wr, &cs)),
                scale * cpu_ms(|| reference::conv2d::conv2d_backward_weight(&xr, &dyr, &cs)),
            )
        });
        row(
            &format!("conv {name} fwd"),
            fwd,
            s.flops(),
            "GFLOP/s",
            cpu.map(|c| c.0),
        );
        row(
            &format!("conv {name} bwd input"),
            bin,
            s.flops(),
            "GFLOP/s",
            cpu.map(|c| c.1),
        );
        row(
            &format!("conv {name} bwd weight"),
            bw,
            s.flops(),
            "GFLOP/s",
            cpu.map(|c| c.2),
        );
    }
    Ok(())
}

/// One line of the table of small ops: the GPU call, its work for the rate (bytes or flops),
/// and the CPU reference timed beside it (None where there is none).
struct OpBench<'a> {
    name: String,
    work: f64,
    unit: &'static str,
    gpu: Box<dyn FnMut() -> Result<()> + 'a>,
    cpu: Option<Box<dyn FnOnce() + 'a>>,
}

fn op<'a>(
    name: impl Into<String>,
    work: f64,
    unit: &'static str,
    gpu: impl FnMut() -> Result<()> + 'a,
    cpu: Option<Box<dyn FnOnce() + 'a>>,
) -> OpBench<'a> {
    OpBench {
        name: name.into(),
        work,
        unit,
        gpu: Box::new(gpu),
        cpu,
    }
}

/// A CPU reference call to time; its result is only kept from being optimised away.
fn cpu<'a, T>(f: impl FnOnce() -> T + 'a) -> Option<Box<dyn FnOnce() + 'a>> {
    Some(Box::new(move || {
        std::hint::black_box(f());
    }))
}

fn bench_small_ops(gpu: &Gpu, rng: &mut StdRng, o: &Options) -> Result<()> {
    let reps = if o.quick { 3 } else { 10 };
    let n = o.batch;
    // Batch norm, ReLU and the residual addition at [N, 64, 32, 32].
    let shape = [n, 64, 32, 32];
    let numel: usize = shape.iter().product();
    let (x, dy) = (tensor(gpu, rng, &shape)?, tensor(gpu, rng, &shape)?);
    let (gamma, beta) = (Tensor::full(gpu, &[64], 1.0)?, Tensor::zeros(gpu, &[64])?);
    let st = BatchNormState {
        running_mean: Tensor::zeros(gpu, &[64])?,
        running_var: Tensor::full(gpu, &[64], 1.0)?,
        momentum: 0.1,
        eps: 1e-5,
    };
    let (_, stats) = batch_norm_forward(&x, &gamma, &beta, &st, true)?;
    let bytes = 4.0 * numel as f64;
    let xr = to_f64(&random(rng, numel));
    let g64 = vec![1.0; 64];
    let (mut rm, mut rv) = (vec![0.0; 64], vec![1.0; 64]);
    let bn_saved =
        reference::batchnorm::batch_norm_train(&xr, shape, &g64, &g64, &mut rm, &mut rv, 0.1, 1e-5);
    // The saliency of the guided crops: the small CNN's last map on 28x28 Fashion-MNIST.
    let sal_values = random(rng, n * 128 * 49);
    let sal_map = Tensor::from_slice(gpu, &[n, 128, 7, 7], &sal_values)?;
    // Global average pooling at [N, 512, 4, 4]; the linear head 512 -> 128.
    let p4 = tensor(gpu, rng, &[n, 512, 4, 4])?;
    let g512 = tensor(gpu, rng, &[n, 512])?;
    let pr = to_f64(&random(rng, n * 512 * 16));
    let (w, dyl) = (tensor(gpu, rng, &[128, 512])?, tensor(gpu, rng, &[n, 128])?);
    let fl = linear::linear_flops(n, 512, 128);
    let (lxr, wr, dyr) = (
        to_f64(&random(rng, n * 512)),
        to_f64(&random(rng, 128 * 512)),
        to_f64(&random(rng, n * 128)),
    );
    // L2 normalisation and cross-entropy at 1024 x 128.
    let z = tensor(gpu, rng, &[1024, 128])?;
    let zr = to_f64(&random(rng, 1024 * 128));
    let zb = 4.0 * (1024 * 128) as f64;
    let labels: Vec<u32> = (0..1024).map(|i| i % 128).collect();
    let tl = Tensor::from_u32(gpu, &[1024], &labels)?;
    let one = Tensor::full(gpu, &[1], 1.0)?;
    // NT-Xent at the paper's batch: 2N = 1024 normalised embeddings of width 128. The rate
    // counts the two matmuls (similarities, and the gradient M U): 2 x 2 (2N)^2 d flops.
    let (nn, d) = (512, 128);
    let u_rows = reference::small_ops::l2_normalize(&to_f64(&random(rng, 2 * nn * d)), d, 1e-12);
    let u32s: Vec<f32> = u_rows.iter().map(|&x| x as f32).collect();
    let u1 = Tensor::from_slice(gpu, &[nn, d], &u32s[..nn * d])?;
    let u2 = Tensor::from_slice(gpu, &[nn, d], &u32s[nn * d..])?;
    let nt_flops = 2.0 * (2 * nn * 2 * nn * d) as f64;
    let (_, saved) = ntxent::ntxent_forward(&u1, &u2, 0.1)?;
    // Adam over ResNet-18's 11.2M parameters: reads p, g, m, v and writes p, m, v.
    let count = 11_173_962;
    let p = std::rc::Rc::new(taming::autograd::Param::new(
        "p",
        tensor(gpu, rng, &[count])?,
    ));
    let g = tensor(gpu, rng, &[count])?;
    let mut adam = Adam::new(vec![p.clone()], 0.01);
    let (mut adam_p, adam_g) = (to_f64(&random(rng, count)), to_f64(&random(rng, count)));
    let (mut m, mut v) = (vec![0.0; count], vec![0.0; count]);
    // The learnt placement at the quick preset's pre-training shape: 256 images of 28x28, two
    // 17x17 views each, and the blur's backward over those views.
    let (sb, at) = (256, Placement::gcc([28, 28], [17, 17], 1.5, 0.5, 0.2));
    let stn_r = to_f64(&random(rng, sb * 4));
    let stn_draws: Vec<f64> = (0..2 * sb)
        .flat_map(|_| {
            [
                rng.random_range(-2.0..2.0),
                rng.random_range(-2.0..2.0),
                0.0,
            ]
        })
        .collect();
    let stn_r_t = Tensor::from_slice(
        gpu,
        &[sb, 4],
        &stn_r.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    )?;
    let stn_d_t = Tensor::from_slice(
        gpu,
        &[2 * sb, 3],
        &stn_draws.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    )?;
    let stn_dm = tensor(gpu, rng, &[2 * sb, 6])?;
    let blur_views = 2 * sb;
    let blur_dy = tensor(gpu, rng, &[blur_views, 1, 17, 17])?;
    let blur_info: Vec<ViewInfo> = (0..blur_views)
        .map(|i| ViewInfo {
            blur: [0.6, 0.2],
            ..ViewInfo::whole(i as u32)
        })
        .collect();
    let blur_info = Tensor::from_u32(gpu, &[blur_views, 8], &pack_view_info(&blur_info))?;
    let blur_x = to_f64(&random(rng, blur_views * 17 * 17));
    let blur_weights = vec![[0.6, 0.2]; blur_views];

    // x as f16, for the cast back (`--precision f16`'s storage), where the device has f16.
    let half_x = match gpu.has_f16() {
        true => Some(to_f16(&x)?),
        false => None,
    };
    let table = vec![
        op(
            format!("stn view matrices [{sb}] fwd"),
            4.0 * (sb * 4 + 2 * sb * 3 + 2 * sb * 6) as f64,
            "GB/s",
            || stn::view_matrices_forward(&stn_r_t, &stn_d_t, &at).map(drop),
            cpu(|| reference::stn::view_matrices(&stn_r, &stn_draws, &at)),
        ),
        op(
            format!("stn view matrices [{sb}] bwd"),
            4.0 * (sb * 4 + 2 * sb * 3 + 2 * sb * 6) as f64,
            "GB/s",
            || stn::view_matrices_backward(&stn_r_t, &stn_d_t, &at, &stn_dm).map(drop),
            None,
        ),
        op(
            format!("blur-normalise bwd [{blur_views},1,17,17]"),
            8.0 * blur_dy.numel() as f64,
            "GB/s",
            || {
                taming::ops::blur_normalize::blur_normalize_backward(&blur_dy, &blur_info, &[0.3])
                    .map(drop)
            },
            // The forward's reference: the backward is its transpose, as much work.
            cpu(|| {
                reference::augment::blur_normalize(
                    &blur_x,
                    [blur_views, 1, 17, 17],
                    &blur_weights,
                    &[0.0],
                    &[0.3],
                )
            }),
        ),
        op(
            format!("batch norm fwd [{n},64,32,32]"),
            4.0 * bytes,
            "GB/s",
            || batch_norm_forward(&x, &gamma, &beta, &st, true).map(drop),
            cpu(|| {
                let (mut rm, mut rv) = (vec![0.0; 64], vec![1.0; 64]);
                reference::batchnorm::batch_norm_train(
                    &xr, shape, &g64, &g64, &mut rm, &mut rv, 0.1, 1e-5,
                )
            }),
        ),
        op(
            format!("batch norm bwd [{n},64,32,32]"),
            5.0 * bytes,
            "GB/s",
            || batch_norm_backward(&x, &dy, &gamma, &stats, &st, true).map(drop),
            cpu(|| {
                reference::batchnorm::batch_norm_train_backward(
                    &xr, &xr, shape, &g64, &bn_saved, 1e-5,
                )
            }),
        ),
        op(
            format!("relu fwd [{n},64,32,32]"),
            2.0 * bytes,
            "GB/s",
            || ew::relu_forward(&x).map(drop),
            cpu(|| reference::elementwise::relu_forward(&xr)),
        ),
        op(
            format!("relu bwd [{n},64,32,32]"),
            3.0 * bytes,
            "GB/s",
            || ew::relu_backward(&x, &dy).map(drop),
            cpu(|| reference::elementwise::relu_backward(&xr, &xr)),
        ),
        op(
            format!("add (residual) [{n},64,32,32]"),
            3.0 * bytes,
            "GB/s",
            || ew::add_forward(&x, &dy).map(drop),
            cpu(|| reference::elementwise::add_forward(&xr, &xr)),
        ),
        op(
            format!("add + relu (residual end) [{n},64,32,32]"),
            3.0 * bytes,
            "GB/s",
            || ew::add_relu_forward(&x, &dy, Precision::F32).map(drop),
            cpu(|| {
                let sum = reference::elementwise::add_forward(&xr, &xr);
                reference::elementwise::relu_forward(&sum)
            }),
        ),
        op(
            format!("global avg pool fwd [{n},512,4,4]"),
            4.0 * (n * 512 * 17) as f64,
            "GB/s",
            || pool::global_avg_pool_forward(&p4).map(drop),
            cpu(|| reference::small_ops::global_avg_pool(&pr, n * 512, 16)),
        ),
        op(
            format!("global avg pool bwd [{n},512,4,4]"),
            4.0 * (n * 512 * 17) as f64,
            "GB/s",
            || pool::global_avg_pool_backward(&g512, &[n, 512, 4, 4]).map(drop),
            None,
        ),
        op(
            format!("linear fwd {n}x512 -> 128"),
            fl,
            "GFLOP/s",
            || linear::linear_forward(&g512, &w, None).map(drop),
            cpu(|| reference::small_ops::linear_forward(&lxr, &wr, None, n, 512, 128)),
        ),
        op(
            "linear bwd input",
            fl,
            "GFLOP/s",
            || linear::linear_backward_input(&dyl, &w).map(drop),
            cpu(|| reference::small_ops::linear_backward_input(&dyr, &wr, n, 512, 128)),
        ),
        op(
            "linear bwd weight",
            fl,
            "GFLOP/s",
            || linear::linear_backward_weight(&g512, &dyl).map(drop),
            cpu(|| reference::small_ops::linear_backward_weight(&lxr, &dyr, n, 512, 128)),
        ),
        op(
            "l2 normalise fwd 1024x128",
            2.0 * zb,
            "GB/s",
            || l2norm::l2_normalize_forward(&z).map(drop),
            cpu(|| reference::small_ops::l2_normalize(&zr, 128, 1e-12)),
        ),
        op(
            "l2 normalise bwd 1024x128",
            3.0 * zb,
            "GB/s",
            || l2norm::l2_normalize_backward(&z, &z).map(drop),
            cpu(|| reference::small_ops::l2_normalize_backward(&zr, &zr, 128, 1e-12)),
        ),
        op(
            "cross-entropy fwd 1024x128",
            zb,
            "GB/s",
            || cross_entropy::cross_entropy_forward(&z, &tl).map(drop),
            cpu(|| reference::small_ops::cross_entropy(&zr, &labels, 128)),
        ),
        op(
            "cross-entropy bwd 1024x128",
            2.0 * zb,
            "GB/s",
            || cross_entropy::cross_entropy_backward(&z, &tl, &one).map(drop),
            cpu(|| reference::small_ops::cross_entropy_backward(&zr, &labels, 128, 1.0)),
        ),
        op(
            "NT-Xent fwd 2N=1024 d=128",
            nt_flops / 2.0,
            "GFLOP/s",
            || ntxent::ntxent_forward(&u1, &u2, 0.1).map(drop),
            cpu(|| reference::ntxent::ntxent(&u_rows, 2 * nn, d, 0.1)),
        ),
        op(
            "NT-Xent bwd 2N=1024 d=128",
            nt_flops / 2.0,
            "GFLOP/s",
            || ntxent::ntxent_backward(&saved, &one).map(drop),
            cpu(|| reference::ntxent::ntxent_backward(&u_rows, 2 * nn, d, 0.1)),
        ),
        op(
            format!("saliency summary [{n},128,7,7] -> 28x28"),
            4.0 * sal_map.numel() as f64,
            "GB/s",
            || saliency::saliency_summary(&sal_map, [28, 28], 0.1, false).map(drop),
            cpu(|| {
                sal_values
                    .chunks(128 * 49)
                    .map(|m| reference::saliency::saliency_summary(m, [128, 7, 7], [28, 28], 0.1))
                    .collect::<Vec<_>>()
            }),
        ),
        op(
            "adam step 11.2M params",
            4.0 * 7.0 * count as f64,
            "GB/s",
            || {
                p.set_grad(Some(g.clone()));
                adam.step()
            },
            cpu(|| {
                reference::optim::adam_step(
                    &mut adam_p,
                    &adam_g,
                    &mut m,
                    &mut v,
                    1,
                    0.01,
                    (0.9, 0.999),
                    1e-8,
                    0.0,
                )
            }),
        ),
    ];
    // Batch norm with the ReLU fused (against the two lines above it and relu's), and with the
    // reduction the automatic choice does not take where the device has it.
    let fused = BnOptions {
        relu: true,
        reduction: None,
        ..BnOptions::default()
    };
    let mut table = table;
    // Beside the unfused lines: before relu's.
    let mut at = (table.iter())
        .position(|b| b.name.starts_with("relu fwd"))
        .unwrap_or(table.len());
    table.insert(
        at,
        op(
            format!("batch norm + relu fused fwd [{n},64,32,32]"),
            4.0 * bytes,
            "GB/s",
            || batch_norm_forward_with(&x, &gamma, &beta, &st, true, fused).map(drop),
            None,
        ),
    );
    table.insert(
        at + 1,
        op(
            format!("batch norm + relu fused bwd [{n},64,32,32]"),
            5.0 * bytes,
            "GB/s",
            || {
                batch_norm_backward_with(&x, &dy, (&gamma, &beta), &stats, &st, true, fused)
                    .map(drop)
            },
            None,
        ),
    );
    let chosen = BnReduction::choose(gpu).0;
    for reduction in BnReduction::ALL {
        if reduction == chosen || !reduction.accepted_by(gpu) {
            continue;
        }
        let other = BnOptions {
            relu: false,
            reduction: Some(reduction),
            ..BnOptions::default()
        };
        let (st, x, dy, gamma, beta, stats) = (&st, &x, &dy, &gamma, &beta, &stats);
        at += 2;
        table.insert(
            at,
            op(
                format!("batch norm fwd, {reduction} sums [{n},64,32,32]"),
                4.0 * bytes,
                "GB/s",
                move || batch_norm_forward_with(x, gamma, beta, st, true, other).map(drop),
                None,
            ),
        );
        table.insert(
            at + 1,
            op(
                format!("batch norm bwd, {reduction} sums [{n},64,32,32]"),
                5.0 * bytes,
                "GB/s",
                move || {
                    batch_norm_backward_with(x, dy, (gamma, beta), stats, st, true, other).map(drop)
                },
                None,
            ),
        );
    }
    // The storage casts of `--precision f16` (6 bytes an element: 4 one way, 2 the other).
    if let Some(hx) = &half_x {
        table.push(op(
            format!("cast f32 -> f16 [{n},64,32,32]"),
            1.5 * bytes,
            "GB/s",
            || to_f16(&x).map(drop),
            cpu(|| {
                xr.iter()
                    .map(|&v| half::f16::from_f64(v))
                    .collect::<Vec<_>>()
            }),
        ));
        table.push(op(
            format!("cast f16 -> f32 [{n},64,32,32]"),
            1.5 * bytes,
            "GB/s",
            move || to_f32(hx).map(drop),
            None,
        ));
    }
    for bench in table {
        let t = gpu_ms(gpu, reps, bench.gpu)?;
        let cpu_time = match (o.cpu, bench.cpu) {
            (true, Some(f)) => Some(cpu_ms(f)),
            _ => None,
        };
        row(&bench.name, t, bench.work, bench.unit, cpu_time);
    }
    Ok(())
}

/// One SimCLR training step of ResNet-18: two views of 20x20 crops, each through its own
/// forward pass (batch-norm statistics per view batch), NT-Xent at temperature 0.1, backward and
/// Adam.
fn bench_step(gpu: &Gpu, rng: &mut StdRng, o: &Options, views_ms: Option<f64>) -> Result<()> {
    let n = o.batch;
    let model = ResNet18::new(gpu, rng, 3, 128)?;
    let mut adam = Adam::new(model.params(), 0.01);
    let (v1, v2) = (
        tensor(gpu, rng, &[n, 3, 20, 20])?,
        tensor(gpu, rng, &[n, 3, 20, 20])?,
    );
    let mut step = || -> Result<Tensor> {
        let g = Graph::new(gpu).with_precision(o.precision);
        let z1 = model.forward(&g, g.input(v1.clone()), true)?;
        let z2 = model.forward(&g, g.input(v2.clone()), true)?;
        let loss = ntxent::nt_xent(&g, z1, z2, 0.1)?;
        g.backward(loss)?;
        adam.step()?;
        Ok(g.value(loss))
    };
    let steps = if o.quick { 1 } else { 3 };
    step()?.item()?;
    taming::gpu::take_profile();
    let (d0, s0) = gpu.counters();
    let t = Instant::now();
    let mut last = None;
    for _ in 0..steps {
        last = Some(step()?);
    }
    let loss = last.expect("at least one step").item()?;
    let secs = t.elapsed().as_secs_f64() / steps as f64;
    let (d1, s1) = gpu.counters();
    println!(
        "ResNet-18 training step ({}), 2 views x {n} of 3x20x20, fwd+bwd+Adam: {:.1} ms/step, {:.1} images/s \
         ({} dispatches per step; {} submits in {steps} steps, the loss read once at the end; loss {loss:.3})",
        o.precision,
        secs * 1e3,
        n as f64 / secs,
        (d1 - d0) / steps as u64,
        s1 - s0,
    );
    if let Some(v) = views_ms {
        println!(
            "view pipeline for the same batch ({n} images, 2 views each): {v:.1} ms = {:.2} % of the step",
            100.0 * v / (secs * 1e3)
        );
    }
    print_kernel_profile(steps);
    Ok(())
}

/// With `TAMING_PROFILE` set: the time of each kernel over the `steps` timed steps just run,
/// slowest first (each dispatch was submitted and waited for alone).
fn print_kernel_profile(steps: usize) {
    let mut profile = taming::gpu::take_profile();
    if profile.is_empty() {
        return;
    }
    profile.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    let total: f64 = profile.iter().map(|k| k.seconds).sum();
    println!("  per kernel (TAMING_PROFILE), per step:");
    for k in &profile {
        println!(
            "    {:44} {:5} calls {:9.1} ms {:5.1} %",
            k.entry,
            k.calls / steps as u64,
            k.seconds * 1e3 / steps as f64,
            100.0 * k.seconds / total
        );
    }
}

/// The small CNN's SimCLR step as `taming pretrain` runs it (batch 256, GCC crops of 18x18 from
/// the shipped 28x28 Fashion-MNIST sample, views made on the device, NT-Xent, Adam), and its
/// convolutions and batch norms one by one, to show where the step's time goes.
fn bench_pretrain(gpu: &Gpu, rng: &mut StdRng, o: &Options) -> Result<()> {
    let batch = 256;
    println!("\nsmall CNN at its pre-training shapes (batch 256 x 2 views of 1x18x18):");
    let calls = if o.quick { 1 } else { 3 };
    let layers: [(&str, usize, usize, usize, usize); 3] = [
        ("conv1 1->32 3x3 18x18", 1, 32, 18, 1),
        ("conv2 32->64 3x3 s2 18->9", 32, 64, 18, 2),
        ("conv3 64->128 3x3 s2 9->5", 64, 128, 9, 2),
    ];
    for (name, cin, cout, hw, stride) in layers {
        let cfg = Conv2dConfig { stride, pad: 1 };
        let (xs, ws) = ([batch, cin, hw, hw], [cout, cin, 3, 3]);
        let s = ConvShape::new(&xs, &ws, cfg)?;
        let (x, w) = (tensor(gpu, rng, &xs)?, tensor(gpu, rng, &ws)?);
        let dy = tensor(gpu, rng, &s.output())?;
        let fwd = gpu_ms(gpu, calls, || {
            conv::conv2d_forward(&x, &w, None, cfg).map(drop)
        })?;
        row(&format!("{name} fwd"), fwd, s.flops(), "GFLOP/s", None);
        if cin > 1 {
            let bin = gpu_ms(gpu, calls, || {
                conv::conv2d_backward_input(&dy, &w, &xs, cfg).map(drop)
            })?;
            row(
                &format!("{name} bwd input"),
                bin,
                s.flops(),
                "GFLOP/s",
                None,
            );
        }
        let bw = gpu_ms(gpu, calls, || {
            conv::conv2d_backward_weight(&x, &dy, &ws, cfg).map(drop)
        })?;
        row(
            &format!("{name} bwd weight"),
            bw,
            s.flops(),
            "GFLOP/s",
            None,
        );
        let y = tensor(gpu, rng, &s.output())?;
        let (gamma, beta) = (
            Tensor::full(gpu, &[cout], 1.0)?,
            Tensor::zeros(gpu, &[cout])?,
        );
        let state = BatchNormState {
            running_mean: Tensor::zeros(gpu, &[cout])?,
            running_var: Tensor::full(gpu, &[cout], 1.0)?,
            momentum: 0.1,
            eps: 1e-5,
        };
        let bytes = 4.0 * y.numel() as f64;
        let bn = gpu_ms(gpu, calls, || {
            batch_norm_forward(&y, &gamma, &beta, &state, true).map(drop)
        })?;
        row(
            &format!("  batch norm fwd {:?}", s.output()),
            bn,
            2.0 * bytes,
            "GB/s",
            None,
        );
    }

    let data = taming::data::load_dir(None, taming::data::Split::Train)?;
    let images = data.upload(gpu)?;
    let spec = CropSpec::new(Method::Gcc, 0.42, 1.5)?;
    let pipeline = ViewPipeline::paper(spec, Normalization::of_dataset(&data)?);
    let model = taming::nn::SmallCnn::new(gpu, rng, 1, 128)?;
    let mut optimizer = Optimizer::Adam(Adam::new(model.params(), 0.01));
    let mut draw = StdRng::seed_from_u64(2);
    let mut step = |k: usize| {
        let indices = step_batch(k, batch);
        gcc_step(
            &pipeline,
            &images,
            &model,
            &mut optimizer,
            &mut draw,
            &indices,
        )
    };
    step(0)?.item()?;
    taming::gpu::take_profile();
    let steps = if o.quick { 2 } else { 5 };
    let t = Instant::now();
    let mut last = None;
    for k in 1..=steps {
        last = Some(step(k)?);
    }
    last.expect("steps").item()?;
    let secs = t.elapsed().as_secs_f64() / steps as f64;
    println!(
        "small CNN SimCLR step, batch {batch}, 2 views of 1x18x18 (views + fwd + bwd + Adam): \
         {:.1} ms/step, {:.1} images/s",
        secs * 1e3,
        batch as f64 / secs
    );
    print_kernel_profile(steps);
    bench_learnt_steps(gpu, &images, &pipeline, if o.quick { 2 } else { 8 })
}

/// The images of step `k` of the pre-training benches: `batch` consecutive ones of the shipped
/// sample's 10,000.
fn step_batch(k: usize, batch: usize) -> Vec<u32> {
    (0..batch as u32)
        .map(|i| (i + (k * batch) as u32) % 10_000)
        .collect()
}

/// One SimCLR step as `taming pretrain --method gcc` takes it (views planned on the CPU and
/// made on the device, two forward passes, NT-Xent, backward, the update); returns the loss.
fn gcc_step<R: Rng>(
    pipeline: &ViewPipeline,
    images: &PackedImages,
    encoder: &dyn Encoder,
    optimizer: &mut Optimizer,
    rng: &mut R,
    indices: &[u32],
) -> Result<Tensor> {
    simclr_step(
        encoder,
        optimizer,
        pipeline,
        images,
        rng,
        indices,
        None,
        0.1,
        Precision::F32,
    )
}

/// The learnt placement's steps (`--method stn`) at the same batch and crop against the GCC
/// step: its warm-up (GCC through the differentiable views, no localiser) and both objectives.
/// The kinds of step take turns, one step each per round, and each reports its mean over the
/// rounds (an even number), so that a slow minute on a shared machine hits them all alike.
fn bench_learnt_steps(
    gpu: &Gpu,
    images: &PackedImages,
    pipeline: &ViewPipeline,
    rounds: usize,
) -> Result<()> {
    let batch = 256;
    let kinds = [
        ("GCC (taming pretrain --method gcc)", None),
        (
            "stn warm-up (GCC through the differentiable views)",
            Some((StnObjective::Consistency, 1, 1)),
        ),
        ("stn consistency", Some((StnObjective::Consistency, 0, 1))),
        (
            "stn consistency, --stn-every 2",
            Some((StnObjective::Consistency, 0, 2)),
        ),
        ("stn adversarial", Some((StnObjective::Adversarial, 0, 1))),
    ];
    struct Runner {
        encoder: Box<dyn Encoder>,
        optimizer: Optimizer,
        learnt: Option<(LearntPlacement, PlacementTally)>,
        draw: ChaCha8Rng,
    }
    let mut runners = Vec::new();
    for (_, stn) in kinds {
        let encoder = taming::simclr::initial_encoder(gpu, ModelKind::SmallCnn, 0, 1, 128)?;
        let optimizer = Optimizer::Adam(Adam::new(encoder.params(), 0.01));
        let learnt = match stn {
            Some((objective, warmup, every)) => {
                let mut config = PretrainConfig::new(Method::Stn, 0.42, 1.5, 2);
                config.stn.objective = objective;
                config.stn.warmup = Some(warmup);
                config.stn.every = every;
                let learnt = LearntPlacement::new(gpu, &config, 1, [28, 28])?;
                Some((learnt, PlacementTally::default()))
            }
            None => None,
        };
        runners.push(Runner {
            encoder,
            optimizer,
            learnt,
            draw: ChaCha8Rng::seed_from_u64(3),
        });
    }
    let step = |r: &mut Runner, k: usize| -> Result<f64> {
        let indices = step_batch(k, batch);
        let t = Instant::now();
        let loss = match &mut r.learnt {
            Some((learnt, tally)) => learnt.train_step(
                r.encoder.as_ref(),
                &mut r.optimizer,
                pipeline,
                images,
                &mut r.draw,
                &indices,
                0,
                k,
                0.1,
                tally,
            )?,
            None => gcc_step(
                pipeline,
                images,
                r.encoder.as_ref(),
                &mut r.optimizer,
                &mut r.draw,
                &indices,
            )?,
        };
        loss.item()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let mut times = vec![Vec::new(); runners.len()];
    for round in 0..=rounds {
        for (r, t) in runners.iter_mut().zip(&mut times) {
            let secs = step(r, round)?;
            // Round 0 compiles the kernels.
            if round > 0 {
                t.push(secs);
            }
        }
    }
    // Means, not medians: with --stn-every 2 the rounds alternate two kinds of step.
    let means: Vec<f64> = times
        .iter()
        .map(|t| t.iter().sum::<f64>() / t.len() as f64)
        .collect();
    println!("the learnt placement's steps, batch {batch}, mean of {rounds} interleaved rounds:");
    for ((name, _), secs) in kinds.iter().zip(&means) {
        println!(
            "  {name:<52} {:>8.1} ms/step {:>7.1} images/s {:>+6.0} % over GCC",
            secs * 1e3,
            batch as f64 / secs,
            100.0 * (secs / means[0] - 1.0)
        );
    }
    Ok(())
}

/// The affine sampling kernel at the shape (512 views of 3x32x32 -> 3x20x20, from the
/// resident u8 images; backward from f32 images), then the whole view pipeline (GCC crop 0.4,
/// flip, blur, normalise, CPU draws and upload included) for a 512-image batch and for the
/// step's batch. Returns the pipeline's time at the step's batch.
fn bench_views(gpu: &Gpu, rng: &mut StdRng, o: &Options) -> Result<f64> {
    let (n_images, v, out) = (4096, 512, 20);
    let bytes: Vec<u8> = (0..n_images * 3 * 32 * 32).map(|_| rng.random()).collect();
    let packed = PackedImages::upload(gpu, &bytes, [n_images, 3, 32, 32])?;
    let mut matrices = Vec::new();
    let mut info = Vec::new();
    for k in 0..v {
        let (angle, scale): (f32, f32) = (rng.random_range(-0.3..0.3), rng.random_range(0.6..1.2));
        let (c, s) = (angle.cos() * scale, angle.sin() * scale);
        matrices.extend([
            c,
            -s,
            rng.random_range(0.0..12.0),
            s,
            c,
            rng.random_range(0.0..12.0),
        ]);
        info.push(ViewInfo::whole((k * 7 % n_images) as u32));
    }
    let m = Tensor::from_slice(gpu, &[v, 6], &matrices)?;
    let info_t = Tensor::from_u32(gpu, &[v, 8], &pack_view_info(&info))?;
    let calls = if o.quick { 2 } else { 5 };
    let texels = (v * 3 * out * out) as f64;
    let fwd = gpu_ms(gpu, calls, || {
        sample::affine_sample_forward(Source::U8(&packed), &m, &info_t, [out, out]).map(drop)
    })?;
    // Reference inputs: the same views from the 512 images they read, as f64.
    let d = reference::affine_sample::SampleDims {
        images: n_images,
        channels: 3,
        in_h: 32,
        in_w: 32,
        out_h: out,
        out_w: out,
    };
    let x64: Vec<f64> = bytes.iter().map(|&b| b as f64 / 255.0).collect();
    let ref_views: Vec<_> = info
        .iter()
        .map(|i| reference::affine_sample::RefView {
            image: i.image as usize,
            rect: [0, 0, 32, 32],
        })
        .collect();
    let m64: Vec<[f64; 6]> = matrices
        .chunks(6)
        .map(|c| std::array::from_fn(|k| c[k] as f64))
        .collect();
    let cpu = o
        .cpu
        .then(|| cpu_ms(|| reference::affine_sample::affine_sample(&x64, &d, &ref_views, &m64)));
    // Rates in output texels (view pixels x channels) per second.
    row(
        "affine sample 512 x 3x32x32 u8 -> 3x20x20",
        fwd,
        texels,
        "Mtexel/s",
        cpu,
    );
    let images = tensor(gpu, rng, &[n_images.min(512), 3, 32, 32])?;
    let info_small: Vec<ViewInfo> = (0..v).map(|k| ViewInfo::whole((k % 512) as u32)).collect();
    let info_small = Tensor::from_u32(gpu, &[v, 8], &pack_view_info(&info_small))?;
    let dy = tensor(gpu, rng, &[v, 3, out, out])?;
    let bwd_m = gpu_ms(gpu, calls, || {
        sample::affine_sample_backward_matrix(Source::F32(&images), &m, &info_small, &dy).map(drop)
    })?;
    row(
        "affine sample bwd matrix (f32 source)",
        bwd_m,
        texels,
        "Mtexel/s",
        None,
    );
    let bwd_x = gpu_ms(gpu, calls, || {
        sample::affine_sample_backward_image(&images, &m, &info_small, &dy).map(drop)
    })?;
    row(
        "affine sample bwd image (f32 source)",
        bwd_x,
        texels,
        "Mtexel/s",
        None,
    );

    let spec = CropSpec::new(Method::Gcc, 0.4, 1.5)?;
    let pipeline = ViewPipeline::paper(spec, Normalization::paper_cifar10());
    let mut draw_rng = StdRng::seed_from_u64(1);
    let mut pipeline_ms = |batch: usize| -> Result<f64> {
        let indices: Vec<u32> = (0..batch as u32).map(|i| i * 3 % n_images as u32).collect();
        gpu_ms(gpu, calls, || {
            let plan = pipeline.plan(&mut draw_rng, &indices, [32, 32])?;
            pipeline.run(&packed, &plan).map(drop)
        })
    };
    let at_512 = pipeline_ms(512)?;
    println!(
        "view pipeline, 512 images -> 2 x 512 views 3x20x20 (GCC 0.4, flip, blur, normalise):          {at_512:.2} ms, {:.0} images/s",
        512.0 / (at_512 * 1e-3)
    );
    let at_batch = if o.batch == 512 {
        at_512
    } else {
        pipeline_ms(o.batch)?
    };
    Ok(at_batch)
}

fn main() -> Result<()> {
    let o = options();
    if let Some(algo) = o.conv_algo {
        // Read once, at the first convolution; nothing has run yet.
        std::env::set_var(conv::CONV_ALGO_ENV, algo.name());
    }
    let gpu = Gpu::new(None)?;
    let mut rng = StdRng::seed_from_u64(0);
    println!("adapter: {}", gpu.adapter());
    println!("host CPU: {}", cpu_model());
    match gpu.has_subgroups() {
        true => println!("subgroups: at least {} lanes", gpu.subgroup_min_size()),
        false => println!("subgroups: none"),
    }
    match o.conv_algo {
        Some(algo) => println!("convolutions: {algo} wherever it applies"),
        None => println!("convolutions: the automatic choice"),
    }
    if o.precision == Precision::F16 {
        taming::tensor::require_f16(&gpu)?;
        println!("convolutions: x and the weights stored as f16 (the tiled kernel), sums in f32");
    }
    println!(
        "batch {}; CPU reference timed at batch {} and scaled\n",
        o.batch,
        o.cpu_batch.min(o.batch)
    );
    let run = |section: Section| o.only.is_empty() || o.only.contains(&section);
    let rated = [
        Section::Peak,
        Section::Conv,
        Section::Ops,
        Section::Pretrain,
    ];
    if rated.into_iter().any(run) {
        let peak = bench_peak(&gpu, &o)?;
        PEAK.set(peak).expect("the peak is measured once");
    }
    println!(
        "{:<44} {:>10} {:>17} {:>11} {:>9} {}",
        "kernel", "GPU ms", "rate", "CPU ref ms", "speed-up", "share"
    );

    if run(Section::Conv) {
        bench_convs(&gpu, &mut rng, &o)?;
    }
    if run(Section::Ops) {
        bench_small_ops(&gpu, &mut rng, &o)?;
    }
    if run(Section::Pretrain) {
        bench_pretrain(&gpu, &mut rng, &o)?;
    }
    let mut views_ms = None;
    if run(Section::Views) {
        views_ms = Some(bench_views(&gpu, &mut rng, &o)?);
    }
    if run(Section::Step) {
        println!();
        bench_step(&gpu, &mut rng, &o, views_ms)?;
    }
    Ok(())
}
