//! Pre-training, checkpoints, resume, the NaN guard, the kNN monitor and the linear probe, on
//! tiny runs over the shipped Fashion-MNIST sample.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::augment::{Normalization, ViewPipeline};
use taming::crop::{CropSpec, Method};
use taming::data::{load_dir, Split};
use taming::nn::ModelKind;
use taming::simclr::checkpoint::Checkpoint;
use taming::simclr::knn::knn_accuracy;
use taming::simclr::{
    linear_eval, load_trained, pretrain, BackboneBn, LinearEvalConfig, LinearEvalResult,
    PretrainConfig, ProbeProtocol, RunOptions,
};
use taming::{Error, Tensor};

/// Two epochs of two steps on 64 images.
fn tiny_config() -> PretrainConfig {
    let mut c = PretrainConfig::new(Method::Gcc, 0.4, 1.5, 2);
    c.batch = 32;
    c.train_limit = Some(64);
    c.loss_every = 1;
    c
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let config = tiny_config();
    let (whole, split) = (fresh_dir("simclr", "whole"), fresh_dir("simclr", "split"));
    let straight = pretrain(&gpu, &config, &whole, &RunOptions::default()).unwrap();
    assert_eq!(straight.len(), 2);
    assert!(straight.iter().all(|r| r.loss.is_finite() && r.loss > 0.0));

    let stop = RunOptions {
        stop_after: Some(1),
        ..RunOptions::default()
    };
    assert_eq!(pretrain(&gpu, &config, &split, &stop).unwrap().len(), 1);
    // Without --resume an existing run is not overwritten.
    let e = pretrain(&gpu, &config, &split, &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");
    // Nor resumed with other settings.
    let mut other = config.clone();
    other.lr = 0.02;
    let resume = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let e = pretrain(&gpu, &other, &split, &resume).unwrap_err();
    assert!(
        e.to_string()
            .contains("lr: 0.01 in the checkpoint, 0.02 now"),
        "{e}"
    );

    let resumed = pretrain(&gpu, &config, &split, &resume).unwrap();
    assert_eq!(resumed.len(), 2);
    for (a, b) in straight.iter().zip(&resumed) {
        assert_eq!(a.loss, b.loss, "epoch {} loss", a.epoch);
    }
    // Weights, batch-norm statistics and Adam moments, bit for bit.
    let names = assert_same_checkpoints(&whole, &split, "gcc");
    assert!(names.iter().any(|(n, _)| n.starts_with("optim/m/")));
    assert!(names.iter().any(|(n, _)| n.ends_with("running_var")));
    let sidecar = std::fs::read_to_string(whole.join("checkpoint.json")).unwrap();
    assert!(sidecar.contains("\"epochs_done\": 2"), "{sidecar}");

    // The checkpoint loads as an encoder for evaluation.
    let trained = load_trained(&gpu, &whole).unwrap();
    assert_eq!(trained.history, straight);
    assert_eq!(trained.config, config);
    for dir in [whole, split] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let config = tiny_config();
    let dir = fresh_dir("simclr", "nan");
    let stop = RunOptions {
        stop_after: Some(1),
        ..RunOptions::default()
    };
    pretrain(&gpu, &config, &dir, &stop).unwrap();
    // Poison one weight of the embedding layer in the checkpoint, as a diverged step would. (A
    // NaN in a convolution can vanish in a ReLU, whose max(NaN, 0) may return 0.)
    let mut ck = Checkpoint::load(&dir).unwrap();
    let (_, _, values) = ck
        .tensors
        .iter_mut()
        .find(|(n, _, _)| n == "param/fc.weight")
        .unwrap();
    values[0] = f32::NAN;
    ck.save(&dir).unwrap();
    let before = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    let resume = RunOptions {
        resume: true,
        ..RunOptions::default()
    };
    let e = pretrain(&gpu, &config, &dir, &resume).unwrap_err();
    assert!(matches!(e, Error::Diverged(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("epoch 2") && msg.contains("checkpoint of epoch 1"),
        "{msg}"
    );
    let after = std::fs::read(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(before, after, "the last checkpoint was left as it was");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_settings_are_clear_errors() {
    let Some(gpu) = gpu() else { return };
    let dir = fresh_dir("simclr", "bad");
    let mut c = tiny_config();
    c.batch = 1;
    let e = pretrain(&gpu, &c, &dir, &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("at least 2 images"), "{e}");
    let mut c = tiny_config();
    c.batch = 65;
    let e = pretrain(&gpu, &c, &dir, &RunOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("larger than the 64 training images"),
        "{e}"
    );
    let mut c = tiny_config();
    c.crop = 0.0;
    let e = pretrain(&gpu, &c, &dir, &RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("crop size 0"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The GPU kNN vote against a plain CPU transcription on random features.
#[test]
fn knn_matches_a_brute_force_vote() {
    let Some(gpu) = gpu() else { return };
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let (n, q, d, classes, k) = (300, 57, 8, 4, 20);
    let bank: Vec<f32> = (0..n * d).map(|_| r.random_range(-1.0..1.0)).collect();
    let queries: Vec<f32> = (0..q * d).map(|_| r.random_range(-1.0..1.0)).collect();
    // Labels follow the sign pattern of two coordinates, so neighbours agree often.
    let label = |v: &[f32]| (v[0] > 0.0) as u32 * 2 + (v[1] > 0.0) as u32;
    let bank_labels: Vec<u32> = bank.chunks(d).map(label).collect();
    let query_labels: Vec<u32> = queries.chunks(d).map(label).collect();
    let unit = |v: &[f32]| {
        let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        v.iter().map(|x| *x as f64 / norm).collect::<Vec<f64>>()
    };
    let mut correct = 0;
    for (qi, qv) in queries.chunks(d).enumerate() {
        let qn = unit(qv);
        let mut sims: Vec<(f64, usize)> = bank
            .chunks(d)
            .enumerate()
            .map(|(i, b)| (unit(b).iter().zip(&qn).map(|(a, b)| a * b).sum(), i))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut votes = vec![0.0; classes];
        for &(s, i) in &sims[..k] {
            votes[bank_labels[i] as usize] += (s / 0.1).exp();
        }
        let best = (0..classes)
            .max_by(|&a, &b| votes[a].total_cmp(&votes[b]))
            .unwrap();
        correct += (best as u32 == query_labels[qi]) as usize;
    }
    let want = correct as f64 / q as f64;
    let got = knn_accuracy(
        &Tensor::from_slice(&gpu, &[n, d], &bank).unwrap(),
        &bank_labels,
        &Tensor::from_slice(&gpu, &[q, d], &queries).unwrap(),
        &query_labels,
        classes,
        k,
    )
    .unwrap();
    assert_eq!(got, want);
    assert!(got > 0.5, "neighbours should mostly agree: {got}");
}

/// The probes' shared set-up: 600 training and 300 test images of the shipped sample, a random
/// small CNN.
struct ProbeSetup {
    train: taming::data::Dataset,
    test: taming::data::Dataset,
    encoder: Box<dyn taming::nn::Encoder>,
    pipeline: ViewPipeline,
}

impl ProbeSetup {
    fn new(gpu: &taming::gpu::Gpu) -> ProbeSetup {
        let train = load_dir(None, Split::Train).unwrap().first(Some(600));
        let test = load_dir(None, Split::Test).unwrap().first(Some(300));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let encoder = ModelKind::SmallCnn.build(gpu, &mut rng, 1, 128).unwrap();
        let pipeline = ViewPipeline::paper(
            CropSpec::new(Method::Rc, 1.0, 1.0).unwrap(),
            Normalization::of_dataset(&train).unwrap(),
        );
        ProbeSetup {
            train,
            test,
            encoder,
            pipeline,
        }
    }

    fn probe(&self, gpu: &taming::gpu::Gpu, config: &LinearEvalConfig) -> LinearEvalResult {
        let s = self;
        linear_eval(
            gpu,
            s.encoder.as_ref(),
            &s.train,
            &s.test,
            &s.pipeline,
            config,
            false,
        )
        .unwrap()
    }

    /// The encoder's batch-norm running statistics.
    fn running(&self) -> Vec<Vec<f32>> {
        let buffers = self.encoder.buffers();
        buffers.iter().map(|(_, t)| t.to_vec().unwrap()).collect()
    }
}

#[test]
fn the_linear_probe_learns_from_frozen_features() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let setup = ProbeSetup::new(&gpu);
    let config = LinearEvalConfig {
        epochs: 15,
        ..LinearEvalConfig::default()
    };
    let result = setup.probe(&gpu, &config);
    assert_eq!(
        (result.train_images, result.val_images, result.test_images),
        (480, 120, 300)
    );
    assert!(result.epochs_run <= 15 && result.best_epoch >= 1);
    // Ten classes: chance is 10 %; random conv features separate Fashion-MNIST well.
    assert!(
        result.test_accuracy > 0.4,
        "probe accuracy {}",
        result.test_accuracy
    );
}

#[test]
fn the_paper_probe_without_augmentation_matches_the_fast_probe() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let setup = ProbeSetup::new(&gpu);
    let fast = LinearEvalConfig {
        epochs: 6,
        ..LinearEvalConfig::default()
    };
    // No crop shift, no flip, batch norm frozen: the same inputs by another road (views through
    // the encoder per step, standardised on the GPU).
    let paper = LinearEvalConfig {
        protocol: ProbeProtocol::Paper,
        pad: 0,
        flip: false,
        ..fast.clone()
    };
    let a = setup.probe(&gpu, &fast);
    let b = setup.probe(&gpu, &paper);
    assert_eq!((a.best_epoch, a.epochs_run), (b.best_epoch, b.epochs_run));
    assert!(
        (a.best_val_loss - b.best_val_loss).abs() < 1e-4 * a.best_val_loss,
        "validation loss {} vs {}",
        a.best_val_loss,
        b.best_val_loss
    );
    assert!(
        (a.test_accuracy - b.test_accuracy).abs() <= 1.0 / 300.0,
        "test accuracy {} vs {}",
        a.test_accuracy,
        b.test_accuracy
    );
}

#[test]
fn probes_learn_and_train_the_backbone_batch_norm_only_when_asked() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let setup = ProbeSetup::new(&gpu);
    let initial = setup.running();
    let mut config = LinearEvalConfig {
        epochs: 4,
        batch: 32,
        protocol: ProbeProtocol::Paper,
        backbone_bn: BackboneBn::Eval,
        ..LinearEvalConfig::default()
    };
    let frozen = setup.probe(&gpu, &config);
    assert_eq!(
        setup.running(),
        initial,
        "evaluation mode keeps the statistics"
    );
    config.backbone_bn = BackboneBn::Train;
    let trained = setup.probe(&gpu, &config);
    assert_ne!(setup.running(), initial, "training mode updates them");
    for (r, bn) in [(&frozen, "eval"), (&trained, "train")] {
        assert_eq!(
            (r.train_images, r.val_images, r.test_images),
            (480, 120, 300)
        );
        assert!(r.test_accuracy > 0.4, "batch norm {bn}: {r:?}");
    }
    // The fast protocol's stand-in: statistics re-estimated on the training images once.
    for ((_, t), v) in setup.encoder.buffers().iter().zip(&initial) {
        t.write(v).unwrap();
    }
    config.protocol = ProbeProtocol::Fast;
    let recalibrated = setup.probe(&gpu, &config);
    assert_ne!(
        setup.running(),
        initial,
        "recalibration updates the statistics"
    );
    assert!(recalibrated.test_accuracy > 0.4, "{recalibrated:?}");
}
