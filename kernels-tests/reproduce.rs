//! The reproduction sweep: presets and overrides, shards, a tiny sweep end to end (files,
//! their consistency, resuming after an interrupted sweep and an interrupted run, the SLURM
//! script rebuilding the same sweep).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use taming::crop::Method;
use taming::experiment::label_report::{
    load_label_check, LABEL_CSV, LABEL_MD, LABEL_PNG, LABEL_SVG,
};
use taming::experiment::preset::LABEL_DIR;
use taming::experiment::preset::{Overrides, Preset, SweepSpec};
use taming::experiment::results::SweepResults;
use taming::experiment::run::{run_dir, RESULT_FILE};
use taming::experiment::slurm::slurm_script;
use taming::experiment::sweep::{run_shard, Shard, SweepOptions};
use taming::experiment::{write_report, PLOT_PNG, PLOT_SVG, REPORT_MD, RESULTS_CSV};
use taming::simclr::{load_trained, pretrain, RunOptions};
use taming::Error;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taming-reproduce-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn shards_split_the_grid_into_disjoint_covering_slices() {
    let spec = SweepSpec::preset(Preset::Quick);
    let runs = spec.runs();
    // One random baseline per seed, then methods x crop sizes; then the baseline at the
    // baseline-only seeds.
    assert_eq!(runs.len(), 1 + 3 * 4 + 2);
    assert_eq!(runs[0].id(), "random-seed0");
    assert_eq!(runs[1].id(), "rc-crop0.2-seed0");
    assert_eq!(runs[2].id(), "gcc-crop0.2-alpha1-seed0");
    assert_eq!(runs[12].id(), "cgcc-crop0.8-alpha2-seed0");
    assert_eq!(runs[13].id(), "random-seed1");
    assert_eq!(runs[14].id(), "random-seed2");
    // A baseline seed that is also a pre-training seed runs once.
    let two_seeds = SweepSpec::with(
        Preset::Quick,
        Overrides {
            seeds: Some(vec![0, 1]),
            ..Overrides::default()
        },
    )
    .unwrap()
    .runs();
    let randoms: Vec<String> = two_seeds
        .iter()
        .filter(|r| r.method.is_none())
        .map(|r| r.id())
        .collect();
    assert_eq!(randoms, ["random-seed0", "random-seed1", "random-seed2"]);
    let mut ids: Vec<String> = (0..3)
        .flat_map(|i| {
            let shard: Shard = format!("{i}/3").parse().unwrap();
            assert_eq!(shard.select(&runs), shard.select(&runs), "deterministic");
            shard.select(&runs).into_iter().map(|r| r.id())
        })
        .collect();
    assert_eq!(ids.len(), runs.len(), "no run in two shards");
    ids.sort();
    let mut all: Vec<String> = runs.iter().map(|r| r.id()).collect();
    all.sort();
    assert_eq!(ids, all, "every run in some shard");
    for bad in ["3/3", "1/0", "a/b", "2", "-1/4"] {
        let err = bad.parse::<Shard>().unwrap_err();
        assert!(err.contains("0 <= i < n"), "{bad}: {err}");
    }
}

#[test]
fn presets_and_overrides_are_checked() {
    let paper = SweepSpec::with(Preset::Paper, Overrides::default());
    let err = message(paper.unwrap_err());
    assert!(err.contains("taming data fetch cifar10"), "{err}");
    let paper = SweepSpec::with(
        Preset::Paper,
        Overrides {
            data: Some("/data/cifar-10-batches-bin".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(
        (paper.epochs, paper.batch, paper.seeds.len()),
        (200, 512, 4)
    );
    assert_eq!(paper.alphas, [1.0, 1.5, 2.0, 2.0]);
    assert!(!paper.smoke_scale && SweepSpec::preset(Preset::Quick).smoke_scale);

    let err = SweepSpec::with(
        Preset::Quick,
        Overrides {
            crops: Some(vec![0.3]),
            ..Overrides::default()
        },
    )
    .unwrap_err();
    assert!(message(err).contains("--alphas"));
    let one_alpha = SweepSpec::with(
        Preset::Quick,
        Overrides {
            crops: Some(vec![0.3, 0.5]),
            alphas: Some(vec![1.25]),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(one_alpha.alphas, [1.25, 1.25]);
    let twice = SweepSpec::with(
        Preset::Quick,
        Overrides {
            methods: Some(vec![Method::Rc, Method::Rc]),
            ..Overrides::default()
        },
    );
    assert!(message(twice.unwrap_err()).contains("twice"));
    let twice = SweepSpec::with(
        Preset::Quick,
        Overrides {
            baseline_seeds: Some(vec![2, 2]),
            ..Overrides::default()
        },
    );
    assert!(message(twice.unwrap_err()).contains("--baseline-seeds names 2 twice"));
    let zero = SweepSpec::with(
        Preset::Quick,
        Overrides {
            crops: Some(vec![0.0]),
            alphas: Some(vec![1.0]),
            ..Overrides::default()
        },
    );
    assert!(message(zero.unwrap_err()).contains("outside (0, 1]"));
    // Two runs of one crop size would share one folder.
    let same_crop = SweepSpec::with(
        Preset::Quick,
        Overrides {
            crops: Some(vec![0.4, 0.4]),
            ..Overrides::default()
        },
    );
    assert!(message(same_crop.unwrap_err()).contains("--crops names 0.4 twice"));
    // The label check follows the overrides, and 0 view pairs turns it off.
    let no_check = SweepSpec::with(
        Preset::Quick,
        Overrides {
            label_views: Some(0),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert!(no_check.label_check_spec().is_none());
    let check = SweepSpec::preset(Preset::Quick).label_check_spec().unwrap();
    assert_eq!((check.views, check.oracle.train_limit), (2, Some(3000)));
    assert_eq!(check.crops, [0.2, 0.4, 0.6, 0.8]);
}

/// Two methods x one crop size x two epochs on 300 images, one seed; a label check of one view
/// pair per test image with a one-epoch oracle.
fn tiny_spec() -> SweepSpec {
    SweepSpec::with(
        Preset::Quick,
        Overrides {
            methods: Some(vec![Method::Rc, Method::Gcc]),
            crops: Some(vec![0.4]),
            epochs: Some(2),
            train_limit: Some(300),
            probe_epochs: Some(3),
            baseline_seeds: Some(vec![1]),
            label_views: Some(1),
            oracle_epochs: Some(1),
            ..Overrides::default()
        },
    )
    .unwrap()
}

fn options(stop_after_runs: Option<usize>) -> SweepOptions {
    SweepOptions {
        shard: Shard::ALL,
        progress: false,
        stop_after_runs,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_tiny_sweep_writes_consistent_files_and_resumes_where_it_stopped() {
    let Some(gpu) = gpu() else { return };
    gpu.set_poison(false);
    let out = scratch("tiny");
    let spec = tiny_spec();
    let runs = spec.runs();
    let ids: Vec<String> = runs.iter().map(|r| r.id()).collect();
    assert_eq!(
        ids,
        [
            "random-seed0",
            "rc-crop0.4-seed0",
            "gcc-crop0.4-alpha1.5-seed0",
            "random-seed1"
        ]
    );

    // Interrupted after the first run, and in the middle of the second (its first epoch
    // checkpointed, no result).
    let first = run_shard(&gpu, &spec, &out, &options(Some(1))).unwrap();
    assert_eq!(first.executed, ids[..1]);
    let partial = spec.pretrain_config(&runs[1]).unwrap();
    let stopped = RunOptions {
        resume: false,
        progress: false,
        stop_after: Some(1),
    };
    let first_epoch = pretrain(&gpu, &partial, &run_dir(&out, &runs[1]), &stopped).unwrap();
    assert_eq!(first_epoch.len(), 1);
    let partial_report = write_report(&out).unwrap();
    assert_eq!(
        (partial_report.runs.len(), partial_report.missing.len()),
        (1, 3)
    );
    assert!(read(&out.join(REPORT_MD)).contains("Missing (3)"));
    let baseline_bytes = read(&run_dir(&out, &runs[0]).join(RESULT_FILE));

    // The same command again finishes the sweep: the baseline is skipped, the second run
    // continues from its checkpoint.
    let second = run_shard(&gpu, &spec, &out, &options(None)).unwrap();
    assert_eq!(second.skipped, ids[..1]);
    assert_eq!(second.executed, ids[1..]);
    assert_eq!(
        read(&run_dir(&out, &runs[0]).join(RESULT_FILE)),
        baseline_bytes,
        "a finished run is not redone"
    );
    let resumed = load_trained(&gpu, &run_dir(&out, &runs[1])).unwrap();
    assert_eq!(resumed.history.len(), 2);
    assert_eq!(
        resumed.history[0], first_epoch[0],
        "the first epoch was kept"
    );

    let results = write_report(&out).unwrap();
    assert!(results.missing.is_empty());
    assert_eq!(
        results
            .runs
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    // results.json, results.csv and report.md agree with the runs' own records.
    let json: SweepResults =
        serde_json::from_str(&read(&out.join(taming::experiment::RESULTS_JSON))).unwrap();
    assert_eq!(json, results);
    let csv = read(&out.join(RESULTS_CSV));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + ids.len());
    let report = read(&out.join(REPORT_MD));
    assert!(report.contains("Smoke scale"));
    assert!(
        report.contains("score above every random encoder (the highest of 2 seeds"),
        "{report}"
    );
    for (line, r) in lines[1..].iter().zip(&results.runs) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], r.id);
        assert_eq!(fields[5], format!("{:.2}", r.test_accuracy));
        assert!(
            (0.0..=100.0).contains(&r.test_accuracy) && r.linear_eval.test_images == 2000,
            "{r:?}"
        );
        assert_eq!(
            r.test_accuracy,
            100.0 * r.linear_eval.test_accuracy,
            "{}",
            r.id
        );
        assert!(
            report.contains(&format!("| {} | {:.2} |", r.id, r.test_accuracy)),
            "report.md lacks {}",
            r.id
        );
    }
    let random = results.accuracies("random", None);
    let mean = (random[0] + random[1]) / 2.0;
    assert!(
        report.contains(&format!("**{mean:.2} ± ")) && report.contains("(2 seeds)"),
        "baseline printed over both seeds"
    );
    // The label check ran once, after the runs, on the sweep's methods and crop size; its
    // tables sit in the report beside the accuracy table.
    let check = load_label_check(&out.join(LABEL_DIR)).unwrap().unwrap();
    assert_eq!(check.spec, spec.label_check_spec().unwrap());
    assert_eq!(check.cells.len(), 2);
    assert_eq!(
        check.oracle.key.train_images, 300,
        "the oracle saw the sweep's images"
    );
    assert!(
        report.contains("## Label preservation of the views"),
        "{report}"
    );
    assert!(report.contains("View label accuracy (%)"));
    for name in [LABEL_CSV, LABEL_MD, LABEL_SVG, LABEL_PNG] {
        assert!(out.join(LABEL_DIR).join(name).is_file(), "{name}");
    }
    let svg = read(&out.join(PLOT_SVG));
    assert!(svg.starts_with("<svg") && svg.contains("GCC") && svg.contains("random encoder"));
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join(PLOT_PNG)).unwrap(),
    ));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height), (720, 480));

    // Other settings in the same folder are refused, not mixed in.
    let mut other = spec.clone();
    other.epochs = 3;
    let err = message(run_shard(&gpu, &other, &out, &options(None)).unwrap_err());
    assert!(
        err.contains("other settings (epochs: 2 there, 3 here)"),
        "{err}"
    );

    // The SLURM script's command rebuilds exactly this sweep: run as array task 1 of 2 in the
    // finished folder, it finds its runs done (a different sweep would be refused).
    let script = slurm_script(&spec, &out, 2, Path::new(env!("CARGO_BIN_EXE_taming")));
    assert!(script.contains("#SBATCH --array=0-1"));
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(stdout.contains("finished before"), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
