//! Layer 8: runs built on the whole engine: the reproduction sweep of `taming reproduce` and
//! its report, the smoke run of `taming smoke` and the crop previews of `taming crops`.

pub mod bench_train;
pub mod canvas;
pub mod crop_preview;
pub mod label_report;
pub mod plot;
pub mod preset;
pub mod report;
pub mod results;
pub mod run;
pub mod selftest;
pub mod slurm;
pub mod smoke;
pub mod stats;
pub mod sweep;

use std::path::Path;

use crate::error::Result;
use crate::experiment::results::SweepResults;
use crate::io::write_atomically;

pub const RESULTS_JSON: &str = "results.json";
pub const RESULTS_CSV: &str = "results.csv";
pub const REPORT_MD: &str = "report.md";
pub const PLOT_SVG: &str = "accuracy_vs_crop.svg";
pub const PLOT_PNG: &str = "accuracy_vs_crop.png";

/// Gathers every finished run in `out` (all shards) and writes results.json, results.csv,
/// report.md (with the label check's tables when `out/label_check` holds them) and the figure,
/// each through a temporary file.
pub fn write_report(out: &Path) -> Result<SweepResults> {
    let sweep = sweep::load_sweep(out)?;
    let results = SweepResults::gather(out, &sweep)?;
    results.write_json(&out.join(RESULTS_JSON))?;
    write_atomically(&out.join(RESULTS_CSV), results.csv()?.as_bytes())?;
    let label_check = label_report::load_label_check(&out.join(preset::LABEL_DIR))?;
    write_atomically(
        &out.join(REPORT_MD),
        report::report_markdown(&results, label_check.as_ref()).as_bytes(),
    )?;
    plot::write_plots(&results, &out.join(PLOT_SVG), &out.join(PLOT_PNG))?;
    Ok(results)
}
