//! The label check: on images whose class is written in one corner pixel, the oracle learns it
//! and RC's view label accuracy is what the share of boxes covering that pixel predicts; views
//! that are the whole image score the oracle's whole-image accuracy; the same seed gives the
//! same table and a cached oracle is reused; bad settings are refused and change no file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use approx::assert_abs_diff_eq;
use common::*;
use taming::crop::Method;
use taming::data::{load_dir, Dataset, Split};
use taming::experiment::label_report::{write_label_check, LABEL_CSV, LABEL_JSON};
use taming::label_check::{label_check, label_check_on, LabelCheckSpec, OracleSpec, ORACLE_DIR};
use taming::Gpu;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taming-label-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// 8x8 black images of two classes; the class is only in pixel (0, 0): 128 or 255.
fn corner_marked(n: usize, seed: u64) -> Dataset {
    let mut rng = rng(seed);
    let mut pixels = vec![0u8; n * 64];
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
    for (image, &label) in pixels.chunks_mut(64).zip(&labels) {
        image[0] = [128, 255][label as usize];
        // A few dim pixels elsewhere, so that views without the marker are not all alike.
        for _ in 0..3 {
            use rand::Rng;
            image[rng.random_range(9..64)] = rng.random_range(1..40);
        }
    }
    let names = vec!["dim".to_string(), "bright".to_string()];
    Dataset::new(pixels, labels, [1, 8, 8], names, Path::new("corner-marked")).unwrap()
}

fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn rc_view_accuracy_at_a_small_crop_is_the_share_of_boxes_that_cover_the_class_pixel() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let (train, test) = (corner_marked(1024, 1), corner_marked(600, 2));
    // Crop 0.77 of 8x8 is 7x7: the left edge is 0 or 1, so a box holds pixel (0, 0) with
    // probability 1/2 x 1/2. Views without it show the oracle nothing of the class, so it is
    // right on half of them (the test split is balanced): 1/4 + 3/4 x 1/2 = 62.5 %.
    let mut spec = LabelCheckSpec::new(vec![Method::Rc], vec![0.77], vec![1.0]);
    spec.augment = false;
    spec.views = 4;
    spec.oracle = OracleSpec {
        epochs: 12,
        batch: 64,
        lr: 0.01,
        ..OracleSpec::default()
    };
    let out = scratch("corner");
    let r = label_check_on(&gpu, &spec, &train, &test, &out, false).unwrap();
    assert_eq!(
        r.whole_image_accuracy, 100.0,
        "the oracle learns the marker"
    );
    let cell = &r.cells[0];
    assert_eq!((cell.view_size, cell.images), ([7, 7], 600));
    let acc = cell.shares.view_accuracy;
    assert!(
        acc.low <= 62.5 && 62.5 <= acc.high,
        "view label accuracy {acc:?}: the analytic 62.5 % lies outside its 95 % interval"
    );
    // The oracle gives views without the marker one class c (they show it nothing else to go
    // by). A pair keeps its label when both views do: both hold the marker (1/16), one does and
    // the label is c (2 x 3/16 x 1/2), neither does and the label is c (9/16 x 1/2): 17/32, so
    // 46.875 % of pairs are false positives. The two views agree unless exactly one holds the
    // marker and the label is not c: 1 - 3/16 = 81.25 %.
    for (what, e, want) in [
        (
            "false-positive pairs",
            cell.shares.false_positive_pairs,
            46.875,
        ),
        ("pair agreement", cell.shares.pair_agreement, 81.25),
    ] {
        assert!(
            e.low <= want && want <= e.high,
            "{what} {e:?}: expected {want} %"
        );
    }
    assert_eq!(cell.shares.padding_share.mean, 0.0, "RC never pads");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn whole_image_views_score_the_oracles_accuracy_and_the_same_seed_gives_the_same_table() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let train = load_dir(None, Split::Train).unwrap().first(Some(512));
    let test = load_dir(None, Split::Test).unwrap().first(Some(300));
    // RC at crop 1 is the whole image; without flip and blur each view is the image itself.
    let mut spec = LabelCheckSpec::new(vec![Method::Rc, Method::Gcc], vec![1.0], vec![1.0]);
    spec.augment = false;
    spec.views = 2;
    spec.oracle = OracleSpec {
        epochs: 1,
        batch: 64,
        ..OracleSpec::default()
    };
    let (a, b) = (scratch("whole-a"), scratch("whole-b"));
    let first = label_check_on(&gpu, &spec, &train, &test, &a, false).unwrap();
    assert!(!first.oracle_reused);
    let whole = first.whole_image_accuracy;
    assert!(
        whole > 20.0 && whole < 100.0,
        "a partly trained oracle: {whole}"
    );
    let rc = first.cell(Method::Rc, 1.0).unwrap();
    assert_eq!(rc.shares.view_accuracy.mean, whole, "views = images");
    assert_eq!(rc.shares.pair_agreement.mean, 100.0);
    assert_abs_diff_eq!(
        rc.shares.false_positive_pairs.mean,
        100.0 - whole,
        epsilon = 1e-9
    );
    // GCC at crop 1 moves the box off the image: padding appears, and labels are lost.
    let gcc = first.cell(Method::Gcc, 1.0).unwrap();
    assert!(gcc.shares.padding_share.mean > 1.0, "{:?}", gcc.shares);

    // Another folder trains the same oracle again and measures the same table.
    let second = label_check_on(&gpu, &spec, &train, &test, &b, false).unwrap();
    assert_eq!(second.cells, first.cells);
    assert_eq!(
        std::fs::read(a.join(ORACLE_DIR).join("checkpoint.safetensors")).unwrap(),
        std::fs::read(b.join(ORACLE_DIR).join("checkpoint.safetensors")).unwrap(),
        "the same seed trains the same oracle"
    );
    // The first folder's oracle is reused, with the same result.
    let again = label_check_on(&gpu, &spec, &train, &test, &a, false).unwrap();
    assert!(again.oracle_reused);
    assert_eq!(again.cells, first.cells);

    // Written files: one CSV row per cell, the JSON reads back.
    write_label_check(&a, &first).unwrap();
    let csv = std::fs::read_to_string(a.join(LABEL_CSV)).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with(
        "method,crop,alpha,view_accuracy,view_accuracy_low,view_accuracy_high,pair_agreement,\
         false_positive_pairs,padding_share\n"
    ));
    let loaded = taming::experiment::label_report::load_label_check(&a)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.cells, first.cells);

    // An oracle cache from other settings is refused, naming the setting, and nothing changes.
    let before = files_of(&a);
    let mut other = spec.clone();
    other.oracle.epochs = 2;
    let msg = label_check_on(&gpu, &other, &train, &test, &a, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("other settings") && msg.contains("\"epochs\":1") && msg.contains(ORACLE_DIR),
        "{msg}"
    );
    assert_eq!(files_of(&a), before, "a refused check changes no file");
    assert!(a.join(LABEL_JSON).is_file());
    for dir in [a, b] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn bad_settings_are_refused_before_anything_is_read_or_written() {
    let cases: [(&[&str], &str); 6] = [
        (&["--crops", "1.5"], "crop size 1.5"),
        (&["--crops", "0"], "crop size 0"),
        (&["--views", "0"], "--views 0"),
        (&["--methods", "rc,xyz"], "unknown crop method"),
        (&["--crops", "0.3"], "--alphas"),
        (&["--methods", "rc,rc"], "names rc twice"),
    ];
    for (args, want) in cases {
        let out = scratch("bad");
        let result = std::process::Command::new(env!("CARGO_BIN_EXE_taming"))
            .arg("label-check")
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} left {}", out.display());
    }
    // The library refuses the same before touching the data.
    let spec = LabelCheckSpec::new(vec![Method::Rc], vec![0.4], vec![1.0, 2.0]);
    let gpu = match Gpu::new(None) {
        Ok(g) => g,
        Err(_) => return,
    };
    let msg = label_check(&gpu, &spec, &scratch("lib"), false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("2 values for 1 crop"), "{msg}");
}
