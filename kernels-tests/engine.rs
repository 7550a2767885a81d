//! The engine's promises beyond single kernels: limits give clear errors, a training step
//! reuses its buffers and submits once, the same seed gives the same result.

mod common;

use common::*;
use rand::SeedableRng;
use taming::autograd::Graph;
use taming::gpu::{Access, Kernel, Shader, WG};
use taming::nn::{Encoder, SmallCnn};
use taming::ops::cross_entropy::cross_entropy;
use taming::optim::Adam;
use taming::{Error, Tensor};

#[test]
fn a_tensor_above_the_storage_binding_limit_is_a_clear_error() {
    let Some(gpu) = gpu() else { return };
    let limit = gpu.limits().max_storage_buffer_binding_size as usize;
    let err = Tensor::uninit(&gpu, &[limit / 4 + 1], "huge activation").unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("huge activation") && msg.contains(&limit.to_string()),
        "{msg}"
    );
}

#[test]
fn a_backward_returning_the_wrong_number_of_gradients_is_an_error_naming_the_op() {
    let Some(gpu) = gpu() else { return };
    let param = std::rc::Rc::new(taming::autograd::Param::new(
        "w",
        Tensor::full(&gpu, &[1], 1.0).unwrap(),
    ));
    for returned in [0, 2] {
        let g = Graph::new(&gpu);
        let x = g.param(&param);
        let value = g.value(x);
        // One input, but `returned` gradients.
        let y = g.record("broken_op", value, &[x], move |grad, _| {
            Ok(vec![Some(grad.clone()); returned])
        });
        let msg = g.backward(y).unwrap_err().to_string();
        assert!(
            msg.contains("broken_op") && msg.contains(&format!("{returned} gradients")),
            "{msg}"
        );
    }
}

#[test]
fn a_kernel_that_fails_validation_is_an_error_naming_its_shader_and_entry_point() {
    let Some(gpu) = gpu() else { return };
    let out = Tensor::zeros(&gpu, &[4]).unwrap();
    let params = [4u32, 0, 0, 0];
    let missing = Kernel::new(Shader::Elementwise, "no_such_entry_point").with("WG", WG);
    let err = gpu
        .dispatch(&missing, &params, &[Access::Write(out.buffer())], 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shaders/elementwise.wgsl") && err.contains("no_such_entry_point"),
        "{err}"
    );
    // The device is still usable afterwards.
    assert_eq!(out.to_vec().unwrap(), vec![0.0; 4]);
}

#[test]
fn gradients_of_a_value_used_twice_are_summed() {
    let Some(gpu) = gpu() else { return };
    let param = std::rc::Rc::new(taming::autograd::Param::new(
        "w",
        Tensor::full(&gpu, &[1], 1.0).unwrap(),
    ));
    let g = Graph::new(&gpu);
    let x = g.param(&param);
    // y = x + x: each input receives the upstream gradient (ones), so x's gradient is 2.
    let y = taming::ops::elementwise::add(&g, x, x).unwrap();
    g.backward(y).unwrap();
    let grad = param.grad().expect("a gradient").to_vec().unwrap();
    assert_eq!(grad, vec![2.0]);
}

/// Four training steps of the small CNN; returns the losses and, per step, the buffers created
/// and the submits.
fn train(seed: u64) -> Option<(Vec<f32>, Vec<usize>, Vec<u64>)> {
    let gpu = gpu()?;
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let model = SmallCnn::new(&gpu, &mut r, 3, 10).unwrap();
    let mut opt = Adam::new(model.params(), 1e-3);
    let x = upload(&gpu, &[4, 3, 9, 9], &data(&mut r, 4 * 3 * 81));
    let labels = Tensor::from_u32(&gpu, &[4], &[1, 2, 3, 4]).unwrap();
    let (mut losses, mut created, mut submits) = (vec![], vec![], vec![]);
    for _ in 0..4 {
        let (b0, s0) = (gpu.buffers_created(), gpu.counters().1);
        let g = Graph::new(&gpu);
        let xv = g.input(x.clone());
        let loss = cross_entropy(&g, model.forward(&g, xv, true).unwrap(), &labels).unwrap();
        g.backward(loss).unwrap();
        opt.step().unwrap();
        losses.push(g.value(loss).item().unwrap());
        created.push(gpu.buffers_created() - b0);
        submits.push(gpu.counters().1 - s0);
    }
    Some((losses, created, submits))
}

#[test]
fn steady_state_training_steps_create_no_buffers_and_submit_once() {
    let Some((losses, created, submits)) = train(80) else {
        return;
    };
    // Step 1 fills the pool; step 2 needs a few more, because Adam's moments (made in step 1)
    // now stay alive beside the step's activations. From then on, nothing new.
    assert!(created[0] > 0, "the first step allocates");
    assert_eq!(
        &created[2..],
        &[0, 0],
        "steady-state steps must reuse pooled buffers"
    );
    assert_eq!(
        &submits[1..],
        &[1, 1, 1],
        "one submit per step: the loss readback"
    );
    assert!(losses.iter().all(|l| l.is_finite()));
}

#[test]
fn the_same_seed_gives_bitwise_the_same_losses() {
    let (Some(a), Some(b)) = (train(81), train(81)) else {
        return;
    };
    assert_eq!(a.0, b.0);
}

/// The ceiling probes compute what they claim (so the bench's flop counts are real work): every
/// invocation's sum of chains against the f64 recurrence, and the load probe's sums finite.
#[test]
fn the_fma_and_load_probes_compute_their_chains() {
    use taming::ops::peak::{
        fma_probe, fma_probe_reference, load_probe, load_probe_source, Accumulators, LoadAddress,
    };
    let Some(gpu) = gpu() else { return };
    for acc in [
        Accumulators::Scalar(4),
        Accumulators::Scalar(28),
        Accumulators::Vec4(3),
    ] {
        let sums = download(&fma_probe(&gpu, acc, 37, 70).unwrap());
        let expected: Vec<f64> = (0..70).map(|id| fma_probe_reference(acc, 37, id)).collect();
        assert_rel_close(&format!("{acc:?}"), &sums, &expected, 1e-5);
    }
    assert!(fma_probe(&gpu, Accumulators::Scalar(6), 1, 1).is_err());
    assert!(fma_probe(&gpu, Accumulators::Vec4(9), 1, 1).is_err());
    for address in [
        LoadAddress::PerLane,
        LoadAddress::Shared,
        LoadAddress::Workgroup,
    ] {
        let source = load_probe_source(&gpu).unwrap();
        let sums = download(&load_probe(&source, address, 50, 70).unwrap());
        assert!(
            sums.iter().all(|s| s.is_finite() && *s > 0.0),
            "{address:?}: {sums:?}"
        );
    }
    if gpu.has_subgroups() {
        let sums = download(&taming::ops::peak::broadcast_probe(&gpu, 20, 70).unwrap());
        assert!(sums.iter().all(|s| s.is_finite()), "{sums:?}");
    }
}

/// With `TAMING_PROFILE` set every dispatch is timed under its kernel's entry point. The
/// variable is read once per process, so the test runs itself again with it set.
#[test]
fn the_profile_counts_each_kernels_dispatches_only_when_asked() {
    const NAME: &str = "the_profile_counts_each_kernels_dispatches_only_when_asked";
    let Some(gpu) = gpu() else { return };
    let x = Tensor::from_slice(&gpu, &[3], &[1.0, -2.0, 3.0]).unwrap();
    let relu = |a: &Tensor| taming::ops::elementwise::relu_forward(a).unwrap();
    relu(&relu(&x)).to_vec().unwrap();
    let profile = taming::gpu::take_profile();
    if std::env::var_os(taming::gpu::PROFILE_ENV).is_none() {
        assert!(profile.is_empty(), "{profile:?}");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(taming::gpu::PROFILE_ENV, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("1 passed"),
            "the profiled run did not run the test: {text}"
        );
        return;
    }
    let relus: Vec<_> = profile
        .iter()
        .filter(|k| k.entry == "relu_forward")
        .collect();
    assert_eq!(relus.len(), 1, "{profile:?}");
    assert_eq!(relus[0].calls, 2, "{profile:?}");
    assert!(relus[0].seconds > 0.0, "{profile:?}");
    assert!(
        taming::gpu::take_profile().is_empty(),
        "take_profile resets"
    );
}
