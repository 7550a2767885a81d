//! `taming selftest`: its comparison fails on every kind of wrong output, its checks pass on
//! this adapter, and the command says what it ran and exits non-zero on bad arguments.

mod common;

use std::process::Command;

use common::*;
use taming::experiment::selftest::{compare, selftest, SelftestShapes};
use taming::Error;

const EXE: &str = env!("CARGO_BIN_EXE_taming");

#[test]
fn compare_fails_on_wrong_values_non_finite_elements_lengths_and_op_errors() {
    let want = [1.0, -2.0, 3.0];
    let ok = compare("exact", Ok(vec![1.0, -2.0, 3.0]), &want, 1e-6);
    assert!(ok.passed() && ok.rel_error == 0.0, "{ok:?}");
    let close = compare("close", Ok(vec![1.0, -2.0, 3.000001]), &want, 1e-5);
    assert!(close.passed(), "{close:?}");
    let wrong = compare("wrong", Ok(vec![1.0, -2.0, 3.1]), &want, 1e-5);
    assert!(!wrong.passed() && wrong.problem.is_none(), "{wrong:?}");
    assert!(
        (wrong.rel_error - 0.1 / 14f64.sqrt()).abs() < 1e-6,
        "{wrong:?}"
    );
    let unwritten = compare("nan", Ok(vec![1.0, f32::NAN, 3.0]), &want, 1e-5);
    assert!(!unwritten.passed(), "{unwritten:?}");
    assert!(
        unwritten.problem.as_deref().unwrap().contains("element 1"),
        "{unwritten:?}"
    );
    let infinite = compare("inf", Ok(vec![f32::INFINITY, -2.0, 3.0]), &want, 1e-5);
    assert!(!infinite.passed(), "{infinite:?}");
    let short = compare("short", Ok(vec![1.0, -2.0]), &want, 1e-5);
    assert!(!short.passed(), "{short:?}");
    assert!(
        short.problem.as_deref().unwrap().contains("2 elements"),
        "{short:?}"
    );
    let failed = compare("error", Err(Error::Gpu("lost".into())), &want, 1e-5);
    assert!(!failed.passed(), "{failed:?}");
    assert!(
        failed.problem.as_deref().unwrap().contains("lost"),
        "{failed:?}"
    );
}

#[test]
fn selftest_passes_every_check_on_this_adapter_and_covers_every_algorithm() {
    let Some(gpu) = gpu() else { return };
    let report = selftest(&gpu, SelftestShapes::Small, 0).unwrap();
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|c| format!("{} ({:.1e}, {:?})", c.name, c.rel_error, c.problem))
        .collect();
    assert!(failures.is_empty(), "failed: {failures:#?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    for algo in taming::ops::conv2d::ConvAlgo::ALL {
        let prefix = format!("conv2d {algo} ");
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no check of {algo}"
        );
    }
    for algo in taming::ops::linear::ProductAlgo::ALL {
        let prefix = format!("linear {algo} ");
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no check of {algo}"
        );
    }
    for kernel in [
        "nt-xent backward",
        "batch norm input gradient",
        "cross-entropy backward",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(kernel)),
            "no check of {kernel}"
        );
    }
    // The poison the self-test turns on for its own buffers is turned back as it was.
    assert!(gpu.poisoned());
}

#[test]
fn selftest_rejects_an_empty_batch() {
    let Some(gpu) = gpu() else { return };
    let err = selftest(&gpu, SelftestShapes::ResNet18 { batch: 0 }, 0).unwrap_err();
    assert!(
        err.to_string().contains("batch must be at least 1"),
        "{err}"
    );
}

#[test]
fn selftest_command_prints_its_adapter_and_counts_and_rejects_bad_arguments() {
    let Some(_gpu) = gpu() else { return };
    let out = Command::new(EXE).args(["selftest"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("adapter: ") && stdout.contains(" checks, 0 failed"),
        "{stdout}"
    );
    let out = Command::new(EXE)
        .args(["selftest", "--shapes", "resnet18", "--batch", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("at least 1"),
        "{stderr}"
    );
    let out = Command::new(EXE)
        .args(["selftest", "--shapes", "huge"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("huge"), "{stderr}");
}
