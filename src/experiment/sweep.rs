//! Running a sweep: the grid of runs of a [`SweepSpec`], the deterministic split into shards,
//! and the execution of one shard. Every run lives in its own folder `runs/<id>/` (the
//! pre-training checkpoint, then `result.json`); a run whose result exists is skipped and a run
//! with only a checkpoint resumes from it, so an interrupted sweep continues where it stopped.

use std::path::Path;
use std::time::Instant;

use crate::augment::ViewPipeline;
use crate::data::{load_splits, Dataset};
use crate::error::{Error, Result};
use crate::experiment::label_report::{load_label_check, write_label_check, LABEL_MD};
use crate::experiment::preset::{SweepSpec, LABEL_DIR, SWEEP_FILE};
use crate::experiment::results::RunResult;
use crate::experiment::run::{
    encoder_to_evaluate, run_dir, EncoderSource, EncoderToEvaluate, RunSpec, RESULT_FILE, RUNS_DIR,
};
use crate::gpu::Gpu;
use crate::io::{create_output_folder, read_file, remove_stale_temporaries, write_atomically};
use crate::label_check::{label_check_on, LabelCheckSpec};
use crate::simclr::{linear_eval, pretrain, RunOptions};

/// Which slice of the grid a process runs: runs `index`, `index + count`, ... (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The runs of this shard; the shards of one count are disjoint and cover the grid.
    pub fn select(self, runs: &[RunSpec]) -> Vec<RunSpec> {
        runs.iter()
            .skip(self.index)
            .step_by(self.count)
            .cloned()
            .collect()
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `i/n` with 0 <= i < n.
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Shard { index, count }),
            _ => Err(format!(
                "--shard {s:?} is not i/n with 0 <= i < n (e.g. 0/4 for the first of 4 shards)"
            )),
        }
    }
}

/// How to run a shard, beyond what is run.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub shard: Shard,
    /// Draw the pre-training progress bars.
    pub progress: bool,
    /// Stop after executing this many runs (skipped runs do not count); for tests.
    pub stop_after_runs: Option<usize>,
}

/// What a shard did.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardOutcome {
    /// Ids of the runs executed now, in order.
    pub executed: Vec<String>,
    /// Ids of the runs found finished in the output folder.
    pub skipped: Vec<String>,
}

/// Checks that `out` holds no sweep, or one with the same settings; returns whether it holds
/// one. Writes nothing.
pub fn check_sweep_folder(out: &Path, spec: &SweepSpec) -> Result<bool> {
    let path = out.join(SWEEP_FILE);
    if !path.is_file() {
        return Ok(false);
    }
    let existing = load_sweep(out)?;
    if existing != *spec {
        return Err(Error::File {
            path,
            detail: format!(
                "holds a sweep with other settings ({}); use another --out, or the same \
                 preset and options as before",
                crate::json::differences(&existing, spec)
            ),
        });
    }
    Ok(true)
}

/// Writes `sweep.json`, or checks that the one already in `out` has the same settings.
pub fn record_sweep(out: &Path, spec: &SweepSpec) -> Result<()> {
    if check_sweep_folder(out, spec)? {
        return Ok(());
    }
    create_output_folder(&out.join(RUNS_DIR))?;
    write_atomically(&out.join(SWEEP_FILE), &crate::json::to_pretty_bytes(spec)?)
}

/// The sweep settings recorded in `out`.
pub fn load_sweep(out: &Path) -> Result<SweepSpec> {
    let path = out.join(SWEEP_FILE);
    let bytes = read_file(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::File {
        path,
        detail: format!("is not a sweep description: {e}"),
    })
}

/// The training images the sweep's runs pre-train and probe on (limited) and the test images.
fn sweep_data(spec: &SweepSpec) -> Result<(Dataset, Dataset)> {
    load_splits(spec.data.as_deref(), spec.train_limit)
}

/// Runs the runs of `options.shard` that `out` does not hold yet, writing each result as it
/// finishes. Prints one line per run with the estimated time left.
pub fn run_shard(
    gpu: &Gpu,
    spec: &SweepSpec,
    out: &Path,
    options: &SweepOptions,
) -> Result<ShardOutcome> {
    spec.validate()?;
    spec.precision.check(gpu)?;
    let grid = spec.runs();
    if options.shard.index >= grid.len() {
        return Err(Error::InvalidArgument(format!(
            "--shard {}/{}: the sweep has only {} runs, so this shard would run nothing; use \
             at most {} shards",
            options.shard.index,
            options.shard.count,
            grid.len(),
            grid.len()
        )));
    }
    // Everything is checked before the folder is made or sweep.json is written.
    let (train, test) = sweep_data(spec)?;
    for run in &grid {
        if let Some(config) = spec.pretrain_config(run) {
            config.validate()?;
            config.check_data(&train)?;
        }
    }
    record_sweep(out, spec)?;
    let runs = options.shard.select(&grid);
    let mut outcome = ShardOutcome {
        executed: Vec::new(),
        skipped: Vec::new(),
    };
    let mut clock = RunClock::default();
    let mut stopped = false;
    for (k, run) in runs.iter().enumerate() {
        let dir = run_dir(out, run);
        let tag = format!("[{}/{}] {}", k + 1, runs.len(), run.id());
        if let Some(done) = finished_result(&dir, spec, run)? {
            println!("{tag}: finished before, {:.2} %", done.test_accuracy);
            outcome.skipped.push(run.id());
            continue;
        }
        if options.stop_after_runs == Some(outcome.executed.len()) {
            stopped = true;
            break;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::File {
            path: dir.clone(),
            detail: format!("cannot create the run's folder: {e}"),
        })?;
        remove_stale_temporaries(&dir, &[RESULT_FILE]);
        let start = Instant::now();
        let result = execute(gpu, spec, run, &dir, &train, &test, options.progress)?;
        write_atomically(
            &dir.join(RESULT_FILE),
            &crate::json::to_pretty_bytes(&result)?,
        )?;
        clock.record(run, &result, start.elapsed().as_secs_f64());
        let left: Vec<RunSpec> = runs[k + 1..]
            .iter()
            .filter(|r| !run_dir(out, r).join(RESULT_FILE).is_file())
            .cloned()
            .collect();
        let eta = clock.estimate(&left);
        println!(
            "{tag}: test accuracy {:.2} % (pre-training {:.0} s, probe {:.0} s); {}",
            result.test_accuracy,
            result.pretrain_seconds,
            result.probe_seconds,
            match (left.len(), eta) {
                (0, _) => "no runs left in this shard".into(),
                (n, Some(s)) => format!("{n} runs left in this shard, about {:.0} min", s / 60.0),
                (n, None) => format!("{n} runs left in this shard"),
            }
        );
        outcome.executed.push(run.id());
    }
    // One label check per sweep: the first shard runs it after its runs.
    if let (Some(check), 0, false) = (spec.label_check_spec(), options.shard.index, stopped) {
        run_label_check(
            gpu,
            &check,
            &out.join(LABEL_DIR),
            &train,
            &test,
            options.progress,
        )?;
    }
    Ok(outcome)
}

/// Runs the sweep's label check into `dir` unless it finished there with the same settings.
fn run_label_check(
    gpu: &Gpu,
    check: &LabelCheckSpec,
    dir: &Path,
    train: &Dataset,
    test: &Dataset,
    progress: bool,
) -> Result<()> {
    if let Some(done) = load_label_check(dir)? {
        if done.spec == *check {
            println!("label check: finished before, in {}", dir.display());
            return Ok(());
        }
    }
    println!(
        "label check: {} strategies x {} crop sizes, {} view pairs per test image",
        check.methods.len(),
        check.crops.len(),
        check.views
    );
    let result = label_check_on(gpu, check, train, test, dir, progress)?;
    write_label_check(dir, &result)?;
    println!(
        "label check: oracle {:.2} % on whole test images; {:.0} s; tables in {}",
        result.whole_image_accuracy,
        result.seconds,
        dir.join(LABEL_MD).display()
    );
    Ok(())
}

/// The time runs took so far, for the estimate of the time left: every run pays for its probe
/// (and set-up); pre-training costs about in proportion to the crop area (the view's pixels).
#[derive(Default)]
struct RunClock {
    /// Seconds per run outside pre-training.
    other: Vec<f64>,
    /// Pre-training seconds per unit of crop size.
    pretrain_per_crop: Vec<f64>,
}

impl RunClock {
    fn record(&mut self, run: &RunSpec, result: &RunResult, seconds: f64) {
        // A resumed run's pre-training seconds include epochs run before this process.
        self.other
            .push((seconds - result.pretrain_seconds).max(0.0));
        if let Some(crop) = run.crop.filter(|_| run.method.is_some()) {
            self.pretrain_per_crop.push(result.pretrain_seconds / crop);
        }
    }

    /// Seconds left for `left` (None until a pre-training run has finished, if one is left).
    fn estimate(&self, left: &[RunSpec]) -> Option<f64> {
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let other = mean(&self.other)?;
        left.iter()
            .map(|r| match (r.method, r.crop) {
                (Some(_), Some(crop)) => mean(&self.pretrain_per_crop).map(|p| other + p * crop),
                _ => Some(other),
            })
            .sum()
    }
}

/// The result in `dir` if the run finished there; an error if it was made with other settings.
fn finished_result(dir: &Path, spec: &SweepSpec, run: &RunSpec) -> Result<Option<RunResult>> {
    let path = dir.join(RESULT_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let result = RunResult::load(&path)?;
    if result.run != *run
        || result.pretrain != spec.pretrain_config(run)
        || result.probe != spec.probe_config(run)
    {
        return Err(Error::File {
            path,
            detail: "is the result of a run with other settings; use another --out".into(),
        });
    }
    Ok(Some(result))
}

/// Pre-trains (resuming a checkpoint in `dir` if there is one) and evaluates one run.
fn execute(
    gpu: &Gpu,
    spec: &SweepSpec,
    run: &RunSpec,
    dir: &Path,
    train: &Dataset,
    test: &Dataset,
    progress: bool,
) -> Result<RunResult> {
    let pretrain_config = spec.pretrain_config(run);
    let source = match &pretrain_config {
        Some(config) => {
            let options = RunOptions {
                resume: true,
                progress,
                stop_after: None,
            };
            pretrain(gpu, config, dir, &options)?;
            EncoderSource::Checkpoint(dir)
        }
        None => EncoderSource::Random {
            model: spec.model,
            seed: run.seed,
        },
    };
    let EncoderToEvaluate {
        encoder,
        normalization,
        history,
        ..
    } = encoder_to_evaluate(gpu, source, train)?;
    let pipeline = ViewPipeline::evaluation(normalization);
    let probe = spec.probe_config(run);
    let start = Instant::now();
    let eval = linear_eval(
        gpu,
        encoder.as_ref(),
        train,
        test,
        &pipeline,
        &probe,
        progress,
    )?;
    Ok(RunResult {
        id: run.id(),
        run: run.clone(),
        test_accuracy: 100.0 * eval.test_accuracy,
        pretrain_seconds: history.iter().fold(0.0, |sum, e| sum + e.seconds),
        probe_seconds: start.elapsed().as_secs_f64(),
        pretrain: pretrain_config,
        history,
        probe,
        linear_eval: eval,
        adapter: gpu.adapter().to_string(),
        finished: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    })
}
