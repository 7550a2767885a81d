//! `taming reproduce --emit-slurm N`: an sbatch array script whose task i runs shard i/N of the
//! sweep into one output folder; `taming report --out DIR` then merges the shards.

use std::path::Path;

use crate::experiment::preset::SweepSpec;

/// Quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `taming reproduce` arguments that rebuild `spec` exactly (every overridable field is
/// spelled out, so the script does not depend on the preset's defaults staying the same).
pub fn reproduce_args(spec: &SweepSpec, out: &Path) -> Vec<String> {
    let mut args = vec![
        "reproduce".to_string(),
        format!("--preset {}", spec.preset.name()),
    ];
    if let Some(d) = &spec.data {
        args.push(format!("--data {}", quote(&d.display().to_string())));
    }
    args.push(format!("--epochs {}", spec.epochs));
    args.push(format!("--batch {}", spec.batch));
    args.push(format!("--lr {}", spec.lr));
    if let Some(n) = spec.train_limit {
        args.push(format!("--train-limit {n}"));
    }
    args.push(format!("--methods {}", list(&spec.methods)));
    args.push(format!("--crops {}", list(&spec.crops)));
    args.push(format!("--alphas {}", list(&spec.alphas)));
    args.push(format!("--seeds {}", list(&spec.seeds)));
    args.push(format!("--precision {}", spec.precision));
    // With no values the flag means none.
    args.push(format!("--baseline-seeds {}", list(&spec.baseline_seeds)));
    args.push(format!("--probe-epochs {}", spec.probe.epochs));
    args.push(format!("--probe-protocol {}", spec.probe.protocol.name()));
    match &spec.label_check {
        Some(check) => {
            args.push(format!("--label-views {}", check.views));
            args.push(format!("--oracle-epochs {}", check.oracle.epochs));
        }
        None => args.push("--label-views 0".into()),
    }
    args.push(format!("--out {}", quote(&out.display().to_string())));
    args
}

/// The sbatch script for `shards` array tasks; `exe` is the taming binary.
pub fn slurm_script(spec: &SweepSpec, out: &Path, shards: usize, exe: &Path) -> String {
    let runs = spec.runs().len();
    let exe = quote(&exe.display().to_string());
    let args = reproduce_args(spec, out).join(" \\\n    ");
    let log = quote(&out.join("slurm-%A_%a.log").display().to_string());
    format!(
        "#!/bin/bash
# The {preset} sweep ({runs} runs) as a SLURM array of {shards} tasks; task i runs shard i/{shards}.
# Submit:  sbatch this-file
# Then, when every task has finished, merge the shards' results:
#   {exe} report --out {out_q}
# A task that is interrupted resumes where it stopped when resubmitted (finished runs are skipped,
# a run in progress continues from its checkpoint). Adjust the resources below to the cluster.
#SBATCH --job-name=taming-{preset}
#SBATCH --array=0-{last}
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=48:00:00
#SBATCH --output={log}
set -euo pipefail
{exe} {args} \\
    --shard \"${{SLURM_ARRAY_TASK_ID}}/{shards}\"
",
        preset = spec.preset.name(),
        last = shards - 1,
        out_q = quote(&out.display().to_string()),
    )
}
