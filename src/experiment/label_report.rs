//! The label check's files: `label_check.json` (everything measured), `label_check.csv` (one
//! row per method and crop size), `label_check.md` (the tables in the paper's shape: rows crop
//! sizes, columns methods) and `label_check.svg`/`.png` (view label accuracy against crop size),
//! each written through a temporary file; and the sentence that compares the check's ranking
//! with the sweep's linear-probe ranking.

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::SeriesLabelPosition;

use crate::crop::Method;
use crate::error::{Error, Result};
use crate::experiment::plot::{write_chart, Chart, Line};
use crate::experiment::results::SweepResults;
use crate::experiment::stats::mean_std;
use crate::io::{create_output_folder, read_file, write_atomically};
use crate::label_check::{CellResult, Estimate, LabelCheckResult};

pub const LABEL_JSON: &str = "label_check.json";
pub const LABEL_CSV: &str = "label_check.csv";
pub const LABEL_MD: &str = "label_check.md";
pub const LABEL_SVG: &str = "label_check.svg";
pub const LABEL_PNG: &str = "label_check.png";

/// Writes the five files of a check into `out`.
pub fn write_label_check(out: &Path, r: &LabelCheckResult) -> Result<()> {
    create_output_folder(out)?;
    write_atomically(&out.join(LABEL_JSON), &crate::json::to_pretty_bytes(r)?)?;
    write_atomically(&out.join(LABEL_CSV), csv(r)?.as_bytes())?;
    write_atomically(&out.join(LABEL_MD), label_check_markdown(r).as_bytes())?;
    write_chart(&chart(r), &out.join(LABEL_SVG), &out.join(LABEL_PNG))
}

/// The check recorded in `dir`, if there is one.
pub fn load_label_check(dir: &Path) -> Result<Option<LabelCheckResult>> {
    let path = dir.join(LABEL_JSON);
    if !path.is_file() {
        return Ok(None);
    }
    serde_json::from_slice(&read_file(&path)?)
        .map(Some)
        .map_err(|e| Error::File {
            path,
            detail: format!("is not a label check: {e}"),
        })
}

/// One row per method and crop size, shares in percent.
pub fn csv(r: &LabelCheckResult) -> Result<String> {
    let pct = |x: f64| format!("{x:.2}");
    let rows: Vec<CsvRow> = (r.cells.iter())
        .map(|c| {
            let v = &c.shares;
            CsvRow {
                method: c.method.to_string(),
                crop: c.crop.to_string(),
                alpha: c.alpha.map_or(String::new(), |a| a.to_string()),
                view_accuracy: pct(v.view_accuracy.mean),
                view_accuracy_low: pct(v.view_accuracy.low),
                view_accuracy_high: pct(v.view_accuracy.high),
                pair_agreement: pct(v.pair_agreement.mean),
                false_positive_pairs: pct(v.false_positive_pairs.mean),
                padding_share: pct(v.padding_share.mean),
            }
        })
        .collect();
    crate::io::csv_text(&rows)
}

/// A row of label_check.csv.
#[derive(serde::Serialize, Default)]
struct CsvRow {
    method: String,
    crop: String,
    alpha: String,
    view_accuracy: String,
    view_accuracy_low: String,
    view_accuracy_high: String,
    pair_agreement: String,
    false_positive_pairs: String,
    padding_share: String,
}

fn interval(e: &Estimate) -> String {
    format!("{:.1} [{:.1}, {:.1}]", e.mean, e.low, e.high)
}

/// One table in the paper's shape: rows crop sizes, columns methods.
fn table(r: &LabelCheckResult, title: &str, value: &dyn Fn(&CellResult) -> String) -> String {
    let s = &r.spec;
    let mut md = format!("{title}\n\n| crop p |");
    let mut rule = String::from("|---|");
    for m in &s.methods {
        let alpha = if m.uses_alpha() { " (alpha)" } else { "" };
        let _ = write!(md, " {}{alpha} |", m.name().to_uppercase());
        rule += "---:|";
    }
    let _ = writeln!(md, "\n{rule}");
    for (&crop, &alpha) in s.crops.iter().zip(&s.alphas) {
        let _ = write!(md, "| {crop} |");
        for &m in &s.methods {
            let text = r.cell(m, crop).map_or("-".into(), value);
            let alpha = if m.uses_alpha() {
                format!(" ({alpha})")
            } else {
                String::new()
            };
            let _ = write!(md, " {text}{alpha} |");
        }
        md.push('\n');
    }
    md
}

/// The check's tables, for label_check.md and the sweep's report.
pub fn tables_markdown(r: &LabelCheckResult) -> String {
    let mut md = table(
        r,
        "View label accuracy (%): views the oracle still labels with their image's label, \
         [95 % interval over images]",
        &|c| interval(&c.shares.view_accuracy),
    );
    md += "\n";
    md += &table(
        r,
        "False-positive pairs (%): pairs in which at least one view lost the label",
        &|c| interval(&c.shares.false_positive_pairs),
    );
    md += "\n";
    md += &table(
        r,
        "Pair agreement (%): pairs whose two views the oracle labels alike",
        &|c| interval(&c.shares.pair_agreement),
    );
    md += "\n";
    md += &table(
        r,
        "Zero padding (% of a view's pixels) and views entirely outside the image (% of views)",
        &|c| {
            format!(
                "{:.1} / {:.1}",
                c.shares.padding_share.mean, c.shares.empty_views
            )
        },
    );
    md
}

/// The settings and the oracle, in a few lines.
fn preamble(r: &LabelCheckResult) -> String {
    let s = &r.spec;
    let data = s
        .data
        .as_ref()
        .map_or("the shipped Fashion-MNIST sample".to_string(), |d| {
            d.display().to_string()
        });
    let o = &r.oracle.key;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "- Data: {data}; {} test images, {} view pair{} each per strategy and crop size, seed {}",
        r.test_images,
        s.views,
        if s.views == 1 { "" } else { "s" },
        s.seed
    );
    let _ = writeln!(
        md,
        "- Views drawn as pre-training draws them: `{}` padding, {}",
        s.pad.name(),
        if s.augment {
            "random flip, 3x3 Gaussian blur (sigma 0.1-2.0)"
        } else {
            "no flip, no blur"
        }
    );
    let _ = writeln!(
        md,
        "- Oracle: {} trained with the labels on {} training images, whole images and every \
         strategy and crop size of the check in turn, {} epoch{} (batch {}, Adam lr {} \
         cosine), {:.0} s{}; accuracy on whole test images **{:.2} %**",
        o.spec.model.name(),
        o.train_images,
        o.spec.epochs,
        if o.spec.epochs == 1 { "" } else { "s" },
        o.spec.batch,
        o.spec.lr,
        r.oracle.train_seconds,
        if r.oracle_reused {
            " (read from its cache)"
        } else {
            ""
        },
        r.whole_image_accuracy
    );
    let _ = writeln!(
        md,
        "- Measured on: {}; {:.0} s in all",
        r.adapter, r.seconds
    );
    md
}

/// Plain statements computed from the check.
fn findings(r: &LabelCheckResult) -> Vec<String> {
    let s = &r.spec;
    let mut lines = Vec::new();
    for &crop in &s.crops {
        let cells: Vec<&CellResult> = s.methods.iter().filter_map(|&m| r.cell(m, crop)).collect();
        let best = cells.iter().max_by(|a, b| {
            let (x, y) = (a.shares.view_accuracy.mean, b.shares.view_accuracy.mean);
            x.total_cmp(&y)
        });
        if let (Some(best), true) = (best, cells.len() >= 2) {
            // Methods whose interval overlaps the best one's cannot be told apart from it.
            let tied: Vec<String> = cells
                .iter()
                .filter(|c| c.method != best.method)
                .filter(|c| c.shares.view_accuracy.high >= best.shares.view_accuracy.low)
                .map(|c| c.method.name().to_uppercase())
                .collect();
            lines.push(format!(
                "At crop {crop}, {} keeps the label in the most views ({:.1} %){}.",
                best.method.name().to_uppercase(),
                best.shares.view_accuracy.mean,
                match tied.len() {
                    0 => String::new(),
                    _ => format!(", within the 95 % interval of {}", tied.join(", ")),
                }
            ));
        }
    }
    lines.push(format!(
        "Whole test images: the oracle labels {:.2} % correctly. Views can score above that: \
         the oracle trains on whole images in only one step of every {} (the rest are views).",
        r.whole_image_accuracy,
        r.cells.len() + 1
    ));
    lines
}

/// label_check.md.
pub fn label_check_markdown(r: &LabelCheckResult) -> String {
    let mut md = String::from("# Label preservation of the cropping strategies\n\n");
    md += &preamble(r);
    md += "\n";
    md += &tables_markdown(r);
    md += "\n## What the check shows\n\n";
    for line in findings(r) {
        let _ = writeln!(md, "- {line}");
    }
    md
}

/// The check's section in the sweep's report: its tables and how its ranking compares with the
/// linear probe's.
pub fn report_section(r: &LabelCheckResult, sweep: &SweepResults) -> String {
    let mut md = String::from("## Label preservation of the views\n\n");
    md += &preamble(r);
    md += "\n";
    md += &tables_markdown(r);
    md += "\n";
    for line in findings(r) {
        let _ = writeln!(md, "- {line}");
    }
    if let Some(line) = ranking_sentence(r, sweep) {
        let _ = writeln!(md, "- {line}");
    }
    md
}

/// Ranks of `v` (1 = smallest), ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation of two equally long series (None when either is constant).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let cov: f64 = ra
        .iter()
        .zip(&rb)
        .map(|(x, y)| (x - mean) * (y - mean))
        .sum();
    let var = |r: &[f64]| r.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
    let d = (var(&ra) * var(&rb)).sqrt();
    (d > 0.0).then(|| cov / d)
}

/// One computed sentence: does the ranking of label preservation match that of the
/// linear-probe accuracy, over the cells both measured?
pub fn ranking_sentence(r: &LabelCheckResult, sweep: &SweepResults) -> Option<String> {
    let mut pairs = Vec::new();
    let mut crops_compared = 0;
    let mut crops_matching = 0;
    for &crop in &r.spec.crops {
        let mut here: Vec<(Method, f64, f64)> = Vec::new();
        for c in r.cells.iter().filter(|c| (c.crop - crop).abs() < 1e-12) {
            if let Some((probe, _)) = mean_std(&sweep.accuracies(c.method.name(), Some(crop))) {
                here.push((c.method, c.shares.view_accuracy.mean, probe));
                pairs.push((c.shares.view_accuracy.mean, probe));
            }
        }
        if here.len() >= 2 {
            crops_compared += 1;
            let top = |k: fn(&(Method, f64, f64)) -> f64| {
                here.iter()
                    .max_by(|a, b| k(a).total_cmp(&k(b)))
                    .map(|x| x.0)
            };
            if top(|x| x.1) == top(|x| x.2) {
                crops_matching += 1;
            }
        }
    }
    if pairs.len() < 3 {
        return None;
    }
    let (label, probe): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
    let rho = spearman(&label, &probe)?;
    let verdict = match rho {
        x if x >= 0.7 => "match closely",
        x if x >= 0.3 => "match loosely",
        x if x > -0.3 => "do not match",
        _ => "run opposite to each other",
    };
    Some(format!(
        "The rankings of label preservation and of linear-probe accuracy {verdict}: Spearman's \
         rho over the {} method x crop cells is {rho:+.2}, and at {crops_matching} of \
         {crops_compared} crop sizes the strategy that keeps the label in most views is also \
         the one that probes best.",
        label.len()
    ))
}

/// The figure: view label accuracy against crop size, one line per method, 95 % intervals as
/// bars, the oracle's whole-image accuracy dashed.
fn chart(r: &LabelCheckResult) -> Chart {
    Chart {
        title: "Label preservation: oracle accuracy on views vs crop size".into(),
        y_desc: "view label accuracy (%)".into(),
        lines: r
            .spec
            .methods
            .iter()
            .map(|&m| Line {
                name: m.name().to_uppercase(),
                points: r
                    .spec
                    .crops
                    .iter()
                    .filter_map(|&c| r.cell(m, c))
                    .map(|c| {
                        let e = &c.shares.view_accuracy;
                        (c.crop, e.mean, e.low, e.high)
                    })
                    .collect(),
            })
            .collect(),
        reference: Some(("oracle, whole images".into(), r.whole_image_accuracy)),
        legend: SeriesLabelPosition::LowerRight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_for_the_reverse() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[3.0, 2.0, 1.0]), None);
        assert_eq!(ranks(&[5.0, 1.0, 5.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
