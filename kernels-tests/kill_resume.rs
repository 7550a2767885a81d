//! Killed at any instant, resumed to the same bits; and the same bits whatever the number of
//! lavapipe threads. A small `taming pretrain` and a tiny `taming reproduce` run as child
//! processes; each is killed with SIGKILL at seeded random instants (during start-up, an epoch,
//! a checkpoint write, the probe, the label check, the report) and started again with the same
//! command until it finishes. After every kill, every file under its final name must be whole
//! (it loads); at the end, the weights, the losses and the results (everything but timings)
//! must equal those of an uninterrupted run. Writes are held open for a while
//! (`TAMING_WRITE_DELAY_MS`) so that some kills land inside them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::experiment::label_report::LABEL_JSON;
use taming::experiment::preset::{LABEL_DIR, SWEEP_FILE};
use taming::experiment::run::{RESULT_FILE, RUNS_DIR};
use taming::experiment::{RESULTS_CSV, RESULTS_JSON};
use taming::simclr::checkpoint::{Checkpoint, CHECKPOINT_FILE, SIDECAR_FILE};

const EXE: &str = env!("CARGO_BIN_EXE_taming");
/// How long each atomic write holds its temporary file before the rename.
const WRITE_DELAY_MS: &str = "250";

fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taming-kill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn spawn(args: &[String], threads: &str) -> Child {
    Command::new(EXE)
        .args(args)
        .env("TAMING_WRITE_DELAY_MS", WRITE_DELAY_MS)
        .env("LP_NUM_THREADS", threads)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the taming binary")
}

/// Runs to the end; returns the seconds it took.
fn run_to_end(args: &[String], threads: &str) -> f64 {
    let start = Instant::now();
    let out = spawn(args, threads).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "taming {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed().as_secs_f64()
}

/// Every file below `dir`, relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Whether a file under its final name is whole: it parses as what it is.
fn check_whole(dir: &Path) -> Result<(), String> {
    for rel in files(dir) {
        let path = dir.join(&rel);
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".tmp") {
            continue; // a temporary file: never read under its final name
        }
        let bytes = std::fs::read(&path).unwrap();
        let whole = match name.as_str() {
            CHECKPOINT_FILE => Checkpoint::load(path.parent().unwrap())
                .map(|ck| !ck.tensors.is_empty())
                .map_err(|e| e.to_string()),
            n if n.ends_with(".json") => serde_json::from_slice::<serde_json::Value>(&bytes)
                .map(|_| true)
                .map_err(|e| e.to_string()),
            n if n.ends_with(".png") => Ok(bytes.starts_with(b"\x89PNG") && bytes.len() > 100),
            n if n.ends_with(".svg") => Ok(String::from_utf8_lossy(&bytes)
                .trim_end()
                .ends_with("</svg>")),
            n if n.ends_with(".md") || n.ends_with(".csv") => Ok(!bytes.is_empty()),
            _ => Ok(true),
        };
        match whole {
            Ok(true) => {}
            Ok(false) => return Err(format!("{} is not whole", rel.display())),
            Err(e) => return Err(format!("{} is not whole: {e}", rel.display())),
        }
    }
    Ok(())
}

/// What a kill interrupted, told by what it left: a temporary file means a write.
fn kill_landed_in_a_write(dir: &Path) -> bool {
    files(dir)
        .iter()
        .any(|f| f.file_name().unwrap().to_string_lossy().contains(".tmp"))
}

/// Starts `args` again and again, each time killing it after a random delay in
/// (0, `longest`) s, `kills` times (fewer if it finishes first), checking the files after each
/// kill; then lets it finish. Returns (kills made, kills inside a write).
// A child that exits on its own is reaped by `try_wait`.
#[allow(clippy::zombie_processes)]
fn kill_and_resume(
    args: &[String],
    dir: &Path,
    kills: usize,
    longest: f64,
    rng: &mut ChaCha8Rng,
) -> (usize, usize) {
    let (mut made, mut in_write) = (0, 0);
    for k in 0..kills {
        let mut child = spawn(args, "2");
        let delay = rng.random_range(0.05..longest);
        let deadline = Instant::now() + Duration::from_secs_f64(delay);
        let mut finished = None;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(status) = finished {
            assert!(
                status.success(),
                "kill {k}: the resumed command failed on its own"
            );
            return (made, in_write);
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        made += 1;
        if kill_landed_in_a_write(dir) {
            in_write += 1;
        }
        if let Err(e) = check_whole(dir) {
            panic!("after kill {k} at {delay:.2} s: {e}");
        }
    }
    run_to_end(args, "2");
    (made, in_write)
}

/// A checkpoint's tensors as (name, shape, bit patterns), and its history without timings.
type CheckpointBits = (Vec<(String, Vec<usize>, Vec<u32>)>, serde_json::Value);

/// The weights and the deterministic part of the history of a checkpoint.
fn checkpoint_bits(dir: &Path) -> CheckpointBits {
    let ck = Checkpoint::load(dir).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u32>)> = ck
        .tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().map(|x| x.to_bits()).collect()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let history: serde_json::Value = serde_json::from_str(&ck.metadata["history"]).unwrap();
    (tensors, without_timings(history))
}

/// A JSON value with every field that measures time (or says when) removed.
fn without_timings(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !(k.contains("second") || k == "finished" || k == "oracle_reused"))
                .map(|(k, v)| (k, without_timings(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_timings).collect()),
        other => other,
    }
}

fn json(path: &Path) -> serde_json::Value {
    without_timings(serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
}

fn pretrain_args(out: &Path) -> Vec<String> {
    [
        "pretrain",
        "--train-limit",
        "64",
        "--batch",
        "32",
        "--epochs",
        "3",
        "--seed",
        "3",
        "--method",
        "gcc",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string(), "--resume".into()])
    .collect()
}

#[test]
fn a_pretraining_killed_anywhere_resumes_to_the_same_bits_with_one_or_two_threads() {
    if common::gpu().is_none() {
        return;
    }
    let root = fresh("pretrain");
    let reference = root.join("reference");
    let seconds = run_to_end(&pretrain_args(&reference), "2");
    let want = checkpoint_bits(&reference);

    // Determinism: one lavapipe thread gives the same bits as two.
    let one_thread = root.join("one-thread");
    run_to_end(&pretrain_args(&one_thread), "1");
    assert!(
        checkpoint_bits(&one_thread) == want,
        "LP_NUM_THREADS=1 and 2 trained different weights or losses"
    );

    let killed = root.join("killed");
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let (made, in_write) =
        kill_and_resume(&pretrain_args(&killed), &killed, 6, 0.7 * seconds, &mut rng);
    assert!(
        made >= 2,
        "only {made} kills landed before the run finished"
    );
    let got = checkpoint_bits(&killed);
    assert!(
        got.1 == want.1,
        "the resumed run's history differs:\n{:?}\n{:?}",
        got.1,
        want.1
    );
    assert!(
        got.0 == want.0,
        "the resumed run's weights differ from the uninterrupted run's"
    );
    assert_eq!(
        files(&killed),
        [PathBuf::from(SIDECAR_FILE), PathBuf::from(CHECKPOINT_FILE)],
        "a resumed run leaves temporary files behind"
    );
    println!("pre-training: {made} kills ({in_write} inside a write), same bits as the uninterrupted run and as one thread");
    let _ = std::fs::remove_dir_all(&root);
}

fn reproduce_args(out: &Path) -> Vec<String> {
    [
        "reproduce",
        "--methods",
        "rc",
        "--crops",
        "0.4",
        "--baseline-seeds",
        "--epochs",
        "2",
        "--batch",
        "32",
        "--train-limit",
        "96",
        "--probe-epochs",
        "3",
        "--label-views",
        "1",
        "--oracle-epochs",
        "1",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

#[test]
fn a_sweep_killed_anywhere_resumes_to_the_same_results() {
    if common::gpu().is_none() {
        return;
    }
    let root = fresh("reproduce");
    let reference = root.join("reference");
    let seconds = run_to_end(&reproduce_args(&reference), "2");
    let killed = root.join("killed");
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (made, in_write) = kill_and_resume(
        &reproduce_args(&killed),
        &killed,
        7,
        0.7 * seconds,
        &mut rng,
    );
    assert!(
        made >= 2,
        "only {made} kills landed before the sweep finished"
    );
    for file in [
        RESULTS_JSON.to_string(),
        format!("{LABEL_DIR}/{LABEL_JSON}"),
        SWEEP_FILE.to_string(),
    ] {
        assert!(
            json(&killed.join(&file)) == json(&reference.join(&file)),
            "{file} of the killed and resumed sweep differs from the uninterrupted sweep's"
        );
    }
    for run in ["random-seed0", "rc-crop0.4-seed0"] {
        let (a, b) = (
            killed.join(RUNS_DIR).join(run),
            reference.join(RUNS_DIR).join(run),
        );
        assert!(
            json(&a.join(RESULT_FILE)) == json(&b.join(RESULT_FILE)),
            "{run}: result.json differs"
        );
    }
    assert!(
        checkpoint_bits(&killed.join(RUNS_DIR).join("rc-crop0.4-seed0"))
            == checkpoint_bits(&reference.join(RUNS_DIR).join("rc-crop0.4-seed0"))
    );
    // results.csv ends with timings; the columns before them (id to pretrain_epochs) agree.
    let accuracy_columns = |dir: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(RESULTS_CSV)).unwrap();
        text.lines()
            .map(|l| l.split(',').take(11).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(accuracy_columns(&killed), accuracy_columns(&reference));
    println!(
        "sweep: {made} kills ({in_write} inside a write), same results as the uninterrupted sweep"
    );
    let _ = std::fs::remove_dir_all(&root);
}
