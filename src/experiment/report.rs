//! `report.md`: the sweep's table in the paper's shape (mean +- std over seeds per method and
//! crop size, gain over RC), the random-encoder baseline, the paper's CIFAR-10 numbers beside
//! them for reference, and plain statements of whether the paper's pattern appears.

use std::fmt::Write;

use crate::crop::Method;
use crate::experiment::label_report;
use crate::experiment::preset::PAPER_CROPS;
use crate::experiment::results::SweepResults;
use crate::experiment::stats::mean_std;
use crate::label_check::LabelCheckResult;
use crate::simclr::stn::PlacementRecord;
use crate::simclr::StnObjective;

/// The paper's CIFAR-10 numbers (PAPER.md): 200 epochs, mean of 4 trials, at p = 0.2 .. 0.8.
const PAPER_RC: [f64; 4] = [63.2, 61.1, 57.6, 54.2];
const PAPER_GCC: [f64; 4] = [65.9, 67.8, 67.1, 66.6];
const PAPER_CGCC: [f64; 4] = [64.4, 62.1, 58.3, 54.8];
const PAPER_RANDOM: f64 = 31.5;

fn cell(v: &[f64]) -> String {
    match mean_std(v) {
        None => "-".into(),
        Some((m, _)) if v.len() == 1 => format!("{m:.2}"),
        Some((m, s)) => format!("{m:.2} ± {s:.2}"),
    }
}

fn paper_at(table: &[f64; 4], crop: f64) -> Option<f64> {
    PAPER_CROPS
        .iter()
        .position(|&p| (p - crop).abs() < 1e-9)
        .map(|i| table[i])
}

/// The whole report as markdown; the label check's section follows the accuracy table when
/// the sweep has one.
pub fn report_markdown(r: &SweepResults, label_check: Option<&LabelCheckResult>) -> String {
    let mut md = settings_section(r);
    let gains = accuracy_section(&mut md, r);
    let _ = writeln!(md, "## What the table shows\n");
    for line in findings(r, &gains) {
        let _ = writeln!(md, "- {line}");
    }
    if let Some(check) = label_check {
        let _ = writeln!(md);
        md += &label_report::report_section(check, r);
    }
    md += &runs_section(r);
    md
}

/// The title, the smoke-scale warning and the sweep's settings: data, pre-training, probe,
/// where and when it ran.
fn settings_section(r: &SweepResults) -> String {
    let s = &r.sweep;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Crop strategies under SimCLR: {} preset\n",
        s.preset.name()
    );
    if s.smoke_scale {
        let _ = writeln!(
            md,
            "> **Smoke scale.** A small network, a few epochs, a small data set: this sweep \
             checks that the pipeline runs end to end and learns. Its table is *not* the \
             paper's result and says little about the paper's claim; the paper's numbers are \
             beside it for reference only.\n"
        );
    }
    let adapters: std::collections::BTreeSet<&str> =
        r.runs.iter().map(|x| x.adapter.as_str()).collect();
    let finished: Vec<&str> = r.runs.iter().map(|x| x.finished.as_str()).collect();
    let data = s
        .data
        .as_ref()
        .map_or("the shipped Fashion-MNIST sample".to_string(), |d| {
            d.display().to_string()
        });
    let _ = writeln!(
        md,
        "- Data: {data}{}",
        match s.train_limit {
            Some(n) => format!(", first {n} training images"),
            None => String::new(),
        }
    );
    let _ =
        writeln!(
        md,
        "- Pre-training: {}, batch {}, {} epoch{}, Adam lr {}{} cosine, NT-Xent temperature 0.1",
        s.model.name(),
        s.batch,
        s.epochs,
        if s.epochs == 1 { "" } else { "s" },
        s.lr,
        if s.lr == 0.01 { "" } else { " (the paper's: 0.01)" }
    );
    let _ = writeln!(
        md,
        "- Linear evaluation: {} protocol (backbone batch norm {}, {} features), up to {} \
         epochs, seeds {:?}{}",
        s.probe.protocol.name(),
        s.probe.backbone_bn.name(),
        if s.probe.standardize {
            "standardised"
        } else {
            "raw"
        },
        s.probe.epochs,
        s.seeds,
        if s.baseline_seeds.is_empty() {
            String::new()
        } else {
            format!(" (random encoder also at seeds {:?})", s.baseline_seeds)
        }
    );
    let _ = writeln!(md, "- Strategies:");
    for m in &s.methods {
        let _ = writeln!(md, "  - {}: {}", m.name(), m.description());
    }
    if s.methods.iter().any(|m| m.is_guided()) {
        let (warmup, every) = s.guide.schedule(s.epochs);
        let _ = writeln!(
            md,
            "  - the guided methods (saliency, ccrop) draw unguided (GCC; ccrop: {}) for the \
             first {warmup} epoch{}, then from guides recomputed by the run's encoder every \
             {every} epoch{}; hot threshold {}, ContrastiveCrop's Beta({b}, {b}) at {}",
            if s.guide.ccrop_fixed_area {
                "RC at the same area"
            } else {
                "RandomResizedCrop"
            },
            if warmup == 1 { "" } else { "s" },
            if every == 1 { "" } else { "s" },
            s.guide.threshold,
            if s.guide.ccrop_fixed_area {
                "the run's fixed crop area, no resize"
            } else {
                "RandomResizedCrop's scale 0.2-1 with resize"
            },
            b = s.guide.ccrop_beta,
        );
    }
    if s.methods.contains(&Method::Stn) {
        let t = &s.stn;
        let warmup = t.warmup(s.epochs);
        let _ = writeln!(
            md,
            "  - the learnt placement (stn): {}its localiser trains on the {} objective (Adam, \
             lr {}), the spread floored at GCC's std at alpha {}{}",
            match warmup {
                0 => String::new(),
                1 => "views placed as GCC places them for the first epoch, then ".into(),
                w => format!("views placed as GCC places them for the first {w} epochs, then "),
            },
            t.objective,
            t.lr,
            match t.min_spread {
                Some(f) => f.to_string(),
                None => "0.5 (or the run's alpha if smaller)".into(),
            },
            match t.objective {
                StnObjective::Adversarial => format!(
                    ", the views' overlap held above IoU {} by a hinge of weight {}",
                    t.min_iou, t.hinge_weight
                ),
                StnObjective::Consistency => String::new(),
            }
        );
    }
    let _ = writeln!(
        md,
        "- Measured on: {}; runs finished {} .. {}",
        adapters.into_iter().collect::<Vec<_>>().join(", "),
        finished.iter().min().unwrap_or(&"-"),
        finished.iter().max().unwrap_or(&"-")
    );
    let run_seconds: f64 = r
        .runs
        .iter()
        .map(|x| x.pretrain_seconds + x.probe_seconds)
        .sum();
    let _ = writeln!(
        md,
        "- {} of {} runs finished; {:.1} min of pre-training and probing in all\n",
        r.runs.len(),
        r.runs.len() + r.missing.len(),
        run_seconds / 60.0
    );

    md
}

/// The accuracy table in the paper's shape (rows crop sizes, columns methods, the paper's
/// numbers beside) and the random-encoder baseline; returns GCC's gain over RC per crop size.
fn accuracy_section(md: &mut String, r: &SweepResults) -> Vec<(f64, f64)> {
    let s = &r.sweep;
    let seeds = s.seeds.len();
    let _ = writeln!(
        md,
        "## Linear-evaluation test accuracy (%), mean ± std over {seeds} seed{}\n",
        if seeds == 1 { "" } else { "s" }
    );
    let mut header = String::from("| crop p |");
    let mut rule = String::from("|---|");
    for m in &s.methods {
        let alpha = if m.uses_alpha() { " (alpha)" } else { "" };
        let _ = write!(header, " {}{alpha} |", m.name().to_uppercase());
        rule += "---|";
    }
    let has = |name: &str| s.methods.iter().any(|m| m.name() == name);
    if has("rc") && has("gcc") {
        header += " GCC − RC |";
        rule += "---|";
    }
    header += " paper RC | paper GCC | paper CGCC | paper gain |";
    rule += "---|---|---|---|";
    let _ = writeln!(md, "{header}\n{rule}");
    let mut gains = Vec::new();
    for (&crop, &alpha) in s.crops.iter().zip(&s.alphas) {
        let mut row = format!("| {crop} |");
        for m in &s.methods {
            let acc = r.accuracies(m.name(), Some(crop));
            let alpha = if m.uses_alpha() {
                format!(" ({alpha})")
            } else {
                String::new()
            };
            let _ = write!(row, " {}{alpha} |", cell(&acc));
        }
        if has("rc") && has("gcc") {
            let rc = mean_std(&r.accuracies("rc", Some(crop)));
            let gcc = mean_std(&r.accuracies("gcc", Some(crop)));
            match (rc, gcc) {
                (Some((rc, _)), Some((gcc, _))) => {
                    gains.push((crop, gcc - rc));
                    let _ = write!(row, " {:+.2} |", gcc - rc);
                }
                _ => row += " - |",
            }
        }
        let paper = |t: &[f64; 4]| paper_at(t, crop).map_or("-".into(), |v| format!("{v:.1}"));
        let gain = match (paper_at(&PAPER_GCC, crop), paper_at(&PAPER_RC, crop)) {
            (Some(g), Some(c)) => format!("{:+.1}", g - c),
            _ => "-".into(),
        };
        let _ = write!(
            row,
            " {} | {} | {} | {gain} |",
            paper(&PAPER_RC),
            paper(&PAPER_GCC),
            paper(&PAPER_CGCC)
        );
        let _ = writeln!(md, "{row}");
    }
    let random = r.accuracies("random", None);
    let _ = writeln!(
        md,
        "\nRandomly initialised frozen encoder, same probe: **{}** ({} seed{}); the paper's \
         random encoder on CIFAR-10: about {PAPER_RANDOM}.\n",
        cell(&random),
        random.len(),
        if random.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        md,
        "The paper's columns are CIFAR-10 with ResNet-18 for 200 epochs (GCC at its best alpha, \
         CGCC at its best alpha); they are there for reference, not as the target of this run.\n"
    );

    gains
}

/// One row per finished run, and the runs still missing.
fn runs_section(r: &SweepResults) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## Runs\n");
    let _ = writeln!(
        md,
        "| run | test accuracy | final loss | pre-training s | probe s | probe epochs (best) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for x in &r.runs {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {} | {:.0} | {:.0} | {} ({}) |",
            x.id,
            x.test_accuracy,
            x.final_loss().map_or("-".into(), |l| format!("{l:.3}")),
            x.pretrain_seconds,
            x.probe_seconds,
            x.linear_eval.epochs_run,
            x.linear_eval.best_epoch
        );
    }
    if !r.missing.is_empty() {
        let _ = writeln!(
            md,
            "\nMissing ({}): {}. Run the remaining shards (or rerun the same command to resume), \
             then `taming report --out DIR`.",
            r.missing.len(),
            r.missing.join(", ")
        );
    }
    md
}

/// Plain statements about the paper's pattern, computed from the means.
fn findings(r: &SweepResults, gains: &[(f64, f64)]) -> Vec<String> {
    let mut lines = Vec::new();
    let randoms = r.accuracies("random", None);
    if let Some((random, _)) = mean_std(&randoms) {
        let pretrained: Vec<_> = r.runs.iter().filter(|x| x.run.method.is_some()).collect();
        let above = |level: f64| {
            pretrained
                .iter()
                .filter(|x| x.test_accuracy > level)
                .count()
        };
        lines.push(format!(
            "{} of {} pre-trained runs score above the random encoder's mean ({random:.2} %).",
            above(random),
            pretrained.len()
        ));
        if randoms.len() >= 2 {
            let highest = randoms.iter().copied().fold(f64::MIN, f64::max);
            lines.push(format!(
                "{} of {} score above every random encoder (the highest of {} seeds: \
                 {highest:.2} %).",
                above(highest),
                pretrained.len(),
                randoms.len()
            ));
        }
    }
    if !gains.is_empty() {
        let wins = gains.iter().filter(|(_, g)| *g > 0.0).count();
        lines.push(format!(
            "GCC beats RC at {wins} of {} crop sizes (paper: at all four).",
            gains.len()
        ));
        if gains.len() >= 2 {
            let growing = gains.windows(2).all(|w| w[1].1 > w[0].1);
            lines.push(format!(
                "The gain {} with the crop size (paper: it grows from +2.7 to +12.4 points).",
                if growing {
                    "grows"
                } else {
                    "does not grow steadily"
                }
            ));
        }
        let holds = wins == gains.len() && gains.windows(2).all(|w| w[1].1 > w[0].1);
        lines.push(if holds {
            "The paper's pattern appears here.".into()
        } else {
            "The paper's pattern does not appear in this sweep.".into()
        });
    }
    let guided: Vec<_> = r
        .runs
        .iter()
        .filter(|x| x.run.method.is_some_and(|m| m.is_guided()))
        .collect();
    if !guided.is_empty() {
        let refresh: f64 = guided
            .iter()
            .flat_map(|x| &x.history)
            .filter_map(|e| e.refresh.map(|f| f.seconds))
            .sum();
        let epochs: f64 = guided
            .iter()
            .flat_map(|x| &x.history)
            .map(|e| e.seconds)
            .sum();
        lines.push(format!(
            "The guided runs spent {refresh:.0} s computing their guides, {:.1} % of their \
             {:.0} s of pre-training.",
            100.0 * refresh / (refresh + epochs).max(1e-9),
            refresh + epochs
        ));
    }
    let learnt: Vec<_> = r
        .runs
        .iter()
        .filter_map(|x| x.history.last().and_then(|e| e.placement))
        .collect();
    if !learnt.is_empty() {
        let n = learnt.len() as f64;
        let mean = |f: fn(&PlacementRecord) -> f64| learnt.iter().map(f).sum::<f64>() / n;
        lines.push(format!(
            "In their last epoch the learnt placements (stn, {} run{}) moved the Gaussian's \
             mean {:.1} % of the side from the centre on average, with a spread of {:.1} % of \
             the side, {:.1} % of the view area outside the image and a mean IoU of {:.2} \
             between the two views.",
            learnt.len(),
            if learnt.len() == 1 { "" } else { "s" },
            100.0 * mean(|p| p.mean_offset),
            100.0 * mean(|p| p.mean_spread),
            100.0 * mean(|p| p.outside_share),
            mean(|p| p.overlap),
        ));
    }
    if r.sweep.seeds.len() == 1 {
        lines.push(
            "One seed per cell: no spread is measured, and differences of about one point are \
             within the seed-to-seed spread PAPER.md reports at this scale."
                .into(),
        );
    }
    lines
}
