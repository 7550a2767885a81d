//! What a sweep measured: one record per finished run, gathered from the runs' folders into
//! `results.json` and `results.csv`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{read_file, write_atomically};
use crate::error::{Error, Result};
use crate::experiment::preset::{run_dir, RunSpec, SweepSpec, RESULT_FILE};
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
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "id,method,crop,alpha,seed,test_accuracy,final_loss,best_val_loss,probe_best_epoch,\
             probe_epochs,pretrain_epochs,pretrain_seconds,probe_seconds,adapter,finished\n",
        );
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for r in &self.runs {
            s += &format!(
                "{},{},{},{},{},{:.2},{},{},{},{},{},{:.1},{:.1},\"{}\",{}\n",
                r.id,
                r.run.method_name(),
                opt(r.run.crop),
                opt(r.run.alpha),
                r.run.seed,
                r.test_accuracy,
                opt(r.final_loss()),
                r.linear_eval.best_val_loss,
                r.linear_eval.best_epoch,
                r.linear_eval.epochs_run,
                r.history.len(),
                r.pretrain_seconds,
                r.probe_seconds,
                r.adapter.replace('"', "'"),
                r.finished
            );
        }
        s
    }
}
