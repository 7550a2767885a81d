//! What a sweep measured: one record per finished run, gathered from the runs' folders into
//! `results.json` and `results.csv`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::experiment::preset::SweepSpec;
use crate::experiment::run::{run_dir, RunSpec, RESULT_FILE};
use crate::io::{read_file, write_atomically};
use crate::simclr::{EpochRecord, LinearEvalConfig, LinearEvalResult, PretrainConfig};

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub id: String,
    pub run: RunSpec,
    /// Linear-evaluation test accuracy in percent.
    pub test_accuracy: f64,
    /// Seconds of the pre-training epochs (summed over resumed parts); 0 for the baseline.
    pub pretrain_seconds: f64,
    pub probe_seconds: f64,
    /// None for the random-encoder baseline.
    pub pretrain: Option<PretrainConfig>,
    /// Per pre-training epoch: loss, learning rate, kNN accuracy if monitored, time.
    pub history: Vec<EpochRecord>,
    pub probe: LinearEvalConfig,
    pub linear_eval: LinearEvalResult,
    pub adapter: String,
    /// When the run finished (RFC 3339, UTC).
    pub finished: String,
}

impl RunResult {
    pub fn load(path: &Path) -> Result<RunResult> {
        serde_json::from_slice(&read_file(path)?).map_err(|e| Error::File {
            path: path.to_path_buf(),
            detail: format!("is not a run result: {e}"),
        })
    }

    /// The final epoch's NT-Xent loss (None for the baseline).
    pub fn final_loss(&self) -> Option<f64> {
        self.history.last().map(|e| e.loss)
    }
}

/// Every finished run of a sweep, with the runs still missing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepResults {
    pub sweep: SweepSpec,
    /// In the grid's order.
    pub runs: Vec<RunResult>,
    /// Ids of the grid's runs without a result (other shards, or an interrupted sweep).
    pub missing: Vec<String>,
}

impl SweepResults {
    /// Gathers the results in `out` of the grid of `sweep`.
    pub fn gather(out: &Path, sweep: &SweepSpec) -> Result<SweepResults> {
        let (mut runs, mut missing) = (Vec::new(), Vec::new());
        for run in sweep.runs() {
            let path = run_dir(out, &run).join(RESULT_FILE);
            if path.is_file() {
                runs.push(RunResult::load(&path)?);
            } else {
                missing.push(run.id());
            }
        }
        Ok(SweepResults {
            sweep: sweep.clone(),
            runs,
            missing,
        })
    }

    /// Test accuracies (percent) of the runs of `method` ("random" for the baseline) at
    /// `crop` (None: any).
    pub fn accuracies(&self, method: &str, crop: Option<f64>) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| r.run.method_name() == method)
            .filter(|r| crop.is_none() || r.run.crop == crop)
            .map(|r| r.test_accuracy)
            .collect()
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        write_atomically(path, &crate::json::to_pretty_bytes(self)?)
    }

    /// One row per finished run.
    pub fn csv(&self) -> Result<String> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let rows: Vec<CsvRow> = (self.runs.iter())
            .map(|r| CsvRow {
                id: r.id.clone(),
                method: r.run.method_name(),
                crop: opt(r.run.crop),
                alpha: opt(r.run.alpha),
                seed: r.run.seed,
                test_accuracy: format!("{:.2}", r.test_accuracy),
                final_loss: opt(r.final_loss()),
                best_val_loss: r.linear_eval.best_val_loss.to_string(),
                probe_best_epoch: r.linear_eval.best_epoch,
                probe_epochs: r.linear_eval.epochs_run,
                pretrain_epochs: r.history.len(),
                pretrain_seconds: format!("{:.1}", r.pretrain_seconds),
                probe_seconds: format!("{:.1}", r.probe_seconds),
                adapter: r.adapter.clone(),
                finished: r.finished.clone(),
            })
            .collect();
        crate::io::csv_text(&rows)
    }
}

/// A row of results.csv: numbers formatted as the table shows them.
#[derive(Serialize, Default)]
struct CsvRow {
    id: String,
    method: &'static str,
    crop: String,
    alpha: String,
    seed: u64,
    test_accuracy: String,
    final_loss: String,
    best_val_loss: String,
    probe_best_epoch: usize,
    probe_epochs: usize,
    pretrain_epochs: usize,
    pretrain_seconds: String,
    probe_seconds: String,
    adapter: String,
    finished: String,
}
