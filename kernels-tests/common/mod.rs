//! Shared helpers of the kernel tests: the device, random data, and comparisons that say where
//! they failed.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use taming::{Gpu, Tensor};

/// The adapter found at run time, in poison mode (every buffer an op allocates starts as NaN).
/// With `CI=true` a missing adapter fails the test; elsewhere the test is skipped with a message.
pub fn gpu() -> Option<Gpu> {
    match Gpu::new(None) {
        Ok(gpu) => {
            gpu.set_poison(true);
            Some(gpu)
        }
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI needs a GPU adapter: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter ({e})");
            None
        }
    }
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Data rounded to f32, so that GPU and reference see identical inputs.
pub fn data(rng: &mut StdRng, n: usize) -> Vec<f64> {
    uniform(rng, n, -1.0, 1.0)
        .into_iter()
        .map(|x| x as f32 as f64)
        .collect()
}

pub fn upload(gpu: &Gpu, shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::from_slice(gpu, shape, &to_f32(v)).expect("upload")
}

pub fn download(t: &Tensor) -> Vec<f64> {
    t.to_vec()
        .expect("readback")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Relative error `||a - b|| / ||b||` must be below `rel`, every element finite (an element the
/// kernel never wrote is NaN from the poison), and lengths equal. Fails with the name, the
/// relative error and the first mismatching indices.
pub fn assert_rel_close(name: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: length {} but the reference has {}",
        got.len(),
        want.len()
    );
    if let Some(i) = got.iter().position(|x| !x.is_finite()) {
        panic!(
            "{name}: element {i} is {} (unwritten or overflowed); reference {}",
            got[i], want[i]
        );
    }
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = want.iter().map(|b| b * b).sum::<f64>().sqrt();
    let err = diff / norm.max(1e-30);
    if err >= rel {
        let mut worst: Vec<usize> = (0..got.len()).collect();
        worst.sort_by(|&i, &j| {
            (got[j] - want[j])
                .abs()
                .total_cmp(&(got[i] - want[i]).abs())
        });
        let shown: Vec<String> = worst
            .iter()
            .take(5)
            .map(|&i| format!("[{i}] got {:.6e} want {:.6e}", got[i], want[i]))
            .collect();
        panic!(
            "{name}: relative error {err:.3e} >= {rel:.0e}; worst: {}",
            shown.join(", ")
        );
    }
}

/// Central finite differences of a scalar function at `x`, for the coordinates `idx`.
pub fn finite_difference(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x: &[f64],
    idx: &[usize],
    h: f64,
) -> Vec<f64> {
    let mut xp = x.to_vec();
    idx.iter()
        .map(|&i| {
            xp[i] = x[i] + h;
            let fp = f(&xp);
            xp[i] = x[i] - h;
            let fm = f(&xp);
            xp[i] = x[i];
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

/// `sum(w * y)`, the scalar whose gradient with respect to `y` is `w`.
pub fn dot(w: &[f64], y: &[f64]) -> f64 {
    w.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// An empty scratch folder `taming-PREFIX-NAME-PID` under the system's temporary folder.
pub fn fresh_dir(prefix: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("taming-{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Asserts that the checkpoints in `a` and `b` hold the same tensors, bit for bit (`what`
/// names the case in a failure); returns their names and shapes, sorted by name.
pub fn assert_same_checkpoints(
    a: &std::path::Path,
    b: &std::path::Path,
    what: &str,
) -> Vec<(String, Vec<usize>)> {
    use taming::simclr::checkpoint::Checkpoint;
    let (mut a, mut b) = (Checkpoint::load(a).unwrap(), Checkpoint::load(b).unwrap());
    assert_eq!(a.tensors.len(), b.tensors.len(), "{what}: tensor counts");
    a.tensors.sort_by(|x, y| x.0.cmp(&y.0));
    b.tensors.sort_by(|x, y| x.0.cmp(&y.0));
    for ((na, _, va), (nb, _, vb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb, "{what}");
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{what}: {na} differs after resuming"
        );
    }
    a.tensors.into_iter().map(|(n, s, _)| (n, s)).collect()
}

/// Runs `config` straight through in one folder and, in another, stopped after `stop_after`
/// epochs and resumed; returns (straight folder, split folder, straight history, resumed
/// history).
pub fn straight_and_resumed(
    gpu: &Gpu,
    config: &taming::simclr::PretrainConfig,
    prefix: &str,
    stop_after: usize,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    Vec<taming::simclr::EpochRecord>,
    Vec<taming::simclr::EpochRecord>,
) {
    use taming::simclr::{pretrain, RunOptions};
    let (whole, split) = (fresh_dir(prefix, "whole"), fresh_dir(prefix, "split"));
    let straight = pretrain(gpu, config, &whole, &RunOptions::default()).unwrap();
    let stop = RunOptions {
        stop_after: Some(stop_after),
        ..RunOptions::default()
    };
    pretrain(gpu, config, &split, &stop).unwrap();
    let resume = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let resumed = pretrain(gpu, config, &split, &resume).unwrap();
    (whole, split, straight, resumed)
}

/// `v` rounded to the nearest f16, as the reference of an f16 operand sees it.
pub fn round_f16(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| half::f16::from_f64(x).to_f64()).collect()
}

/// An f16 tensor of `v` (rounded to the nearest f16).
pub fn upload_f16(gpu: &Gpu, shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::from_slice_f16(gpu, shape, &to_f32(v)).expect("upload f16")
}

/// On an adapter without f16 shaders: checks that `attempt` is refused with a message naming
/// SHADER_F16, says that the f16 test is skipped, and returns true; false where the adapter
/// has them.
pub fn lacks_f16<T: std::fmt::Debug>(
    gpu: &Gpu,
    attempt: impl FnOnce() -> taming::Result<T>,
) -> bool {
    if gpu.has_f16() {
        return false;
    }
    let msg = attempt().unwrap_err().to_string();
    assert!(msg.contains("SHADER_F16"), "{msg}");
    eprintln!(
        "SKIPPED: {} has no f16 shaders (the refusal checked)",
        gpu.adapter()
    );
    true
}
