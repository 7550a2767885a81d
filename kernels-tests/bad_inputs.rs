//! Bad input, as a careless user gives it: flags out of range, damaged data files (IDX raw and
//! gzip, CIFAR-10 binary, PNG folders), damaged checkpoints and sweep folders. Every case runs
//! the `taming` binary and must end with a non-zero exit (never a panic), an error that names
//! the offending flag, file or value, and every file that was there before byte-identical, with
//! nothing added: a refused command leaves no folder or file behind.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use taming::data::idx::write_idx_gz;
use taming::data::{load_dir, Split};
use taming::simclr::checkpoint::Checkpoint;

const EXE: &str = env!("CARGO_BIN_EXE_taming");

/// A folder's contents: every path below it, with the bytes of files (`None` for folders).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list a case folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                out.insert(path.clone(), None);
                stack.push(path);
            } else {
                out.insert(
                    path.clone(),
                    Some(std::fs::read(&path).expect("read a file")),
                );
            }
        }
    }
    out
}

fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taming-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a case folder");
    dir
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(EXE)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("start the taming binary")
}

/// A valid small data set and a valid checkpoint, made once and shared (read-only) by the
/// cases: `fixtures/data` (64 training and 32 test images of the shipped sample, gzip IDX) and
/// `fixtures/ck` (one epoch of pre-training on it).
struct Fixtures {
    root: PathBuf,
}

impl Fixtures {
    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }
    fn ck(&self) -> PathBuf {
        self.root.join("ck")
    }
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let root = fresh("fixtures");
        let data = root.join("data");
        let train = load_dir(None, Split::Train).unwrap().first(Some(64));
        let test = load_dir(None, Split::Test).unwrap().first(Some(32));
        write_idx_gz(&train, &data, Split::Train).unwrap();
        write_idx_gz(&test, &data, Split::Test).unwrap();
        let out = run(
            &root,
            &[
                "pretrain",
                "--data",
                data.to_str().unwrap(),
                "--epochs",
                "1",
                "--batch",
                "32",
                "--out",
                "ck",
            ],
        );
        assert!(
            out.status.success(),
            "the fixture checkpoint could not be made: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fixtures { root }
    })
}

/// Raw IDX bytes: the header of `dims` followed by `values`.
fn idx(dims: &[u32], values: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(values);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A raw IDX data set in `dir/name`: 4 training and 2 test images of 4x4, labels 0..4; `edit`
/// may damage the four files (train images, train labels, test images, test labels).
fn idx_set(dir: &Path, name: &str, edit: impl FnOnce(&mut [Vec<u8>; 4])) {
    let mut files = [
        idx(&[4, 4, 4], &[9; 64]),
        idx(&[4], &[0, 1, 2, 3]),
        idx(&[2, 4, 4], &[9; 32]),
        idx(&[2], &[0, 1]),
    ];
    edit(&mut files);
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    for (n, bytes) in names.iter().zip(&files) {
        write(&dir.join(name).join(n), bytes);
    }
}

fn png(path: &Path, side: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(file, side, side);
    enc.set_color(png::ColorType::Grayscale);
    let pixels = vec![100; (side * side) as usize];
    enc.write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

fn rgb_png(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = png::Encoder::new(std::fs::File::create(path).unwrap(), 4, 4);
    enc.set_color(png::ColorType::Rgb);
    enc.write_header()
        .unwrap()
        .write_image_data(&[60; 48])
        .unwrap();
}

/// PNG folders `dir/name/{train,test}/<class>/a.png`.
fn png_set(dir: &Path, name: &str, train: &[&str], test: &[&str], test_side: u32) {
    for (split, classes, side) in [("train", train, 8), ("test", test, test_side)] {
        for class in classes {
            png(&dir.join(name).join(split).join(class).join("a.png"), side);
        }
    }
}

/// A PNG file's bytes with the size in its IHDR chunk set to `side` x `side` (and the chunk's
/// CRC recomputed, so that only the promised size is wrong).
fn png_with_size(bytes: &[u8], side: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[16..20].copy_from_slice(&side.to_be_bytes());
    b[20..24].copy_from_slice(&side.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

fn cifar_record(label: u8) -> Vec<u8> {
    std::iter::once(label)
        .chain(std::iter::repeat_n(50, 3072))
        .collect()
}

/// A copy of the fixture checkpoint in `dir/ck`, its tensors and metadata passed through `edit`.
fn damaged_checkpoint(
    dir: &Path,
    edit: impl FnOnce(
        &mut Vec<(String, Vec<usize>, Vec<f32>)>,
        &mut std::collections::HashMap<String, String>,
    ),
) {
    let src = fixtures().ck();
    let mut ck = Checkpoint::load(&src).unwrap();
    edit(&mut ck.tensors, &mut ck.metadata);
    std::fs::create_dir_all(dir.join("ck")).unwrap();
    ck.save(&dir.join("ck")).unwrap();
    let sidecar = std::fs::read(src.join("checkpoint.json")).unwrap();
    write(&dir.join("ck/checkpoint.json"), &sidecar);
}

/// A copy of the fixture checkpoint in `dir/ck` with its file's bytes passed through `edit`.
fn damaged_checkpoint_bytes(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let src = fixtures().ck();
    let mut bytes = std::fs::read(src.join("checkpoint.safetensors")).unwrap();
    edit(&mut bytes);
    write(&dir.join("ck/checkpoint.safetensors"), &bytes);
}

/// A small sweep on the fixture data: one method at one crop size, so its grid holds 2 runs
/// (the method's and the random baseline), with no label check; the batch is the caller's.
fn tiny_sweep_args() -> Vec<&'static str> {
    vec![
        "reproduce",
        "--methods",
        "rc",
        "--crops",
        "0.4",
        "--baseline-seeds",
        "--epochs",
        "1",
        "--probe-epochs",
        "1",
        "--label-views",
        "0",
    ]
}

struct Case {
    name: &'static str,
    setup: Box<dyn Fn(&Path)>,
    args: Vec<String>,
    /// Fragments the error message must contain (the offending flag, file or value).
    expect: Vec<&'static str>,
}

fn case(
    name: &'static str,
    setup: impl Fn(&Path) + 'static,
    args: &[&str],
    expect: &[&'static str],
) -> Case {
    Case {
        name,
        setup: Box::new(setup),
        args: args.iter().map(|s| s.to_string()).collect(),
        expect: expect.to_vec(),
    }
}

fn none(_: &Path) {}

fn cases() -> Vec<Case> {
    let fx = fixtures();
    let data = fx.data();
    let d = data.as_str();
    let pre = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["pretrain", "--data", d, "--epochs", "1", "--out", "out"];
        if !extra.contains(&"--batch") {
            v.extend_from_slice(&["--batch", "32"]);
        }
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect()
    };
    let pre_case = |name: &'static str, extra: &[&str], expect: &[&'static str]| Case {
        name,
        setup: Box::new(none),
        args: pre(extra),
        expect: expect.to_vec(),
    };
    // `pretrain --data DIR/NAME` on a data set the case's setup writes.
    let data_case = |name: &'static str, setup: Box<dyn Fn(&Path)>, expect: &[&'static str]| Case {
        name,
        setup,
        args: [
            "pretrain", "--data", "bad", "--epochs", "1", "--batch", "2", "--out", "out",
        ]
        .map(String::from)
        .to_vec(),
        expect: expect.to_vec(),
    };
    let sweep = |extra: &[&str]| -> Vec<String> {
        let mut v = tiny_sweep_args();
        if !extra.contains(&"--batch") {
            v.extend_from_slice(&["--batch", "32"]);
        }
        v.extend_from_slice(&["--data", d, "--out", "out"]);
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect()
    };
    let sweep_case = |name: &'static str,
                      setup: Box<dyn Fn(&Path)>,
                      extra: &[&str],
                      expect: &[&'static str]| Case {
        name,
        setup,
        args: sweep(extra),
        expect: expect.to_vec(),
    };
    let eval = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "linear-eval",
            "--checkpoint",
            "ck",
            "--data",
            d,
            "--epochs",
            "1",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect()
    };
    let ck_case = |name: &'static str, setup: Box<dyn Fn(&Path)>, expect: &[&'static str]| Case {
        name,
        setup,
        args: eval(&[]),
        expect: expect.to_vec(),
    };
    let copy_ck = |dir: &Path| {
        for f in ["checkpoint.safetensors", "checkpoint.json"] {
            write(
                &dir.join("ck").join(f),
                &std::fs::read(fixtures().ck().join(f)).unwrap(),
            );
        }
    };
    let other_sweep = |dir: &Path| {
        // A sweep.json of the same grid at another learning rate.
        let mut args = tiny_sweep_args();
        args.extend_from_slice(&[
            "--batch",
            "32",
            "--lr",
            "0.5",
            "--emit-slurm",
            "1",
            "--out",
            "out",
        ]);
        let out = run(dir, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let spec = taming::experiment::preset::SweepSpec::with(
            taming::experiment::preset::Preset::Quick,
            taming::experiment::preset::Overrides {
                methods: Some(vec![taming::crop::Method::Rc]),
                crops: Some(vec![0.4]),
                baseline_seeds: Some(vec![]),
                epochs: Some(1),
                batch: Some(32),
                lr: Some(0.5),
                probe_epochs: Some(1),
                label_views: Some(0),
                data: Some(fixtures().root.join("data")),
                ..Default::default()
            },
        )
        .unwrap();
        write(
            &dir.join("out/sweep.json"),
            &serde_json::to_vec_pretty(&spec).unwrap(),
        );
    };
    let d2 = data.clone();
    vec![
        // Flags.
        pre_case("crop zero", &["--crop", "0"], &["crop size 0"]),
        pre_case("crop above one", &["--crop", "1.5"], &["crop size 1.5"]),
        pre_case(
            "crop not a number",
            &["--crop", "abc"],
            &["'abc'", "--crop"],
        ),
        pre_case(
            "crop too small for the image",
            &["--crop", "0.001"],
            &["use a larger --crop"],
        ),
        pre_case(
            "negative alpha",
            &["--method", "gcc", "--alpha", "-1"],
            &["alpha -1"],
        ),
        pre_case("negative crop", &["--crop=-0.5"], &["crop size -0.5"]),
        pre_case(
            "guided warm-up beyond the epochs",
            &["--method", "saliency", "--saliency-warmup", "1"],
            &["--saliency-warmup 1", "--epochs"],
        ),
        pre_case(
            "learnt placement warm-up of all the epochs",
            &["--method", "stn", "--stn-warmup", "1"],
            &["--stn-warmup 1", "--epochs"],
        ),
        pre_case(
            "learnt placement spread floor of zero",
            &["--method", "stn", "--stn-min-spread", "0"],
            &["--stn-min-spread 0"],
        ),
        pre_case(
            "learnt placement overlap bound of one",
            &["--method", "stn", "--stn-min-iou", "1"],
            &["--stn-min-iou 1", "[0, 1)"],
        ),
        pre_case(
            "learnt placement unknown objective",
            &["--method", "stn", "--stn-objective", "maximal"],
            &["maximal", "consistency"],
        ),
        pre_case(
            "guided refresh every zero epochs",
            &["--method", "ccrop", "--saliency-every", "0"],
            &["--saliency-every"],
        ),
        pre_case(
            "ccrop threshold of one",
            &["--method", "ccrop", "--ccrop-threshold", "1"],
            &["--ccrop-threshold 1", "(0, 1)"],
        ),
        pre_case(
            "ccrop threshold below zero",
            &["--method", "ccrop", "--ccrop-threshold=-0.1"],
            &["--ccrop-threshold -0.1"],
        ),
        pre_case(
            "ccrop beta of zero",
            &["--method", "ccrop", "--ccrop-beta", "0"],
            &["--ccrop-beta", "beta 0"],
        ),
        pre_case("unknown method", &["--method", "xyz"], &["xyz"]),
        pre_case("batch of one", &["--batch", "1"], &["--batch 1"]),
        pre_case("zero epochs", &["--epochs", "0"], &["--epochs"]),
        pre_case(
            "stop after zero epochs",
            &["--stop-after", "0"],
            &["--stop-after 0"],
        ),
        pre_case("zero learning rate", &["--lr", "0"], &["--lr 0"]),
        pre_case("learning rate nan", &["--lr", "nan"], &["--lr NaN"]),
        pre_case(
            "zero temperature",
            &["--temperature", "0"],
            &["--temperature 0"],
        ),
        pre_case(
            "zero loss interval",
            &["--loss-every", "0"],
            &["--loss-every"],
        ),
        pre_case(
            "batch above the images",
            &["--batch", "500"],
            &["--batch 500", "64 training images"],
        ),
        pre_case(
            "train limit zero",
            &["--train-limit", "0"],
            &["--train-limit 0"],
        ),
        pre_case("unknown padding", &["--pad", "mirror"], &["mirror"]),
        case(
            "missing data folder",
            none,
            &["pretrain", "--data", "nowhere", "--out", "out"],
            &["nowhere", "is not a folder"],
        ),
        case(
            "empty data folder",
            |d| std::fs::create_dir_all(d.join("empty")).unwrap(),
            &["pretrain", "--data", "empty", "--out", "out"],
            &["empty", "no Train data set"],
        ),
        case(
            "checkpoint there without --resume",
            copy_ck,
            &[
                "pretrain", "--data", d, "--epochs", "1", "--batch", "32", "--out", "ck",
            ],
            &["checkpoint.safetensors", "--resume"],
        ),
        Case {
            name: "resume with other settings",
            setup: Box::new(copy_ck),
            args: [
                "pretrain",
                "--data",
                d2.as_str(),
                "--epochs",
                "1",
                "--batch",
                "32",
                "--lr",
                "0.5",
                "--out",
                "ck",
                "--resume",
            ]
            .map(String::from)
            .to_vec(),
            expect: vec!["other settings", "lr"],
        },
        case(
            "smoke with no steps",
            none,
            &["smoke", "--steps", "0"],
            &["--steps"],
        ),
        case(
            "unknown adapter",
            none,
            &["--device", "no-such-gpu", "smoke"],
            &["no-such-gpu"],
        ),
        case(
            "crops with no images",
            none,
            &["crops", "--images", "0", "--out", "v.png"],
            &["at least one image"],
        ),
        case(
            "crops of too many images",
            none,
            &["crops", "--images", "100000", "--out", "v.png"],
            &["--images 100000", "at most 256"],
        ),
        case(
            "crops heat map of no draws",
            none,
            &[
                "crops",
                "--heatmap",
                "h.png",
                "--draws",
                "0",
                "--out",
                "v.png",
            ],
            &["--draws 0"],
        ),
        case(
            "smoke batch beyond the device",
            none,
            &["smoke", "--batch", "100000000"],
            &["smoke batch", "storage binding"],
        ),
        sweep_case(
            "sweep ccrop threshold above one, unused",
            Box::new(none),
            &["--ccrop-threshold", "1.5"],
            &["--ccrop-threshold 1.5"],
        ),
        case(
            "sweep guided warm-up beyond the epochs",
            none,
            &[
                "reproduce",
                "--methods",
                "rc,ccrop",
                "--crops",
                "0.4",
                "--epochs",
                "1",
                "--saliency-warmup",
                "3",
                "--data",
                d,
                "--out",
                "out",
            ],
            &["--saliency-warmup 3", "--epochs"],
        ),
        case(
            "guided crops without a checkpoint",
            none,
            &["crops", "--method", "saliency", "--out", "v.png"],
            &["--method saliency", "--checkpoint"],
        ),
        case(
            "learnt crops without a checkpoint",
            none,
            &["crops", "--method", "stn", "--out", "v.png"],
            &["--method stn", "localiser", "--checkpoint"],
        ),
        case(
            "label check of the learnt placement",
            none,
            &["label-check", "--methods", "gcc,stn", "--out", "lc"],
            &["--methods stn", "trained run"],
        ),
        case(
            "crops from a missing checkpoint",
            none,
            &["crops", "--checkpoint", "nowhere", "--out", "v.png"],
            &["nowhere"],
        ),
        case(
            "label check of a guided method",
            none,
            &["label-check", "--methods", "rc,ccrop", "--out", "lc"],
            &["--methods ccrop", "trained run"],
        ),
        case(
            "crops of size two",
            none,
            &["crops", "--crop", "2", "--out", "v.png"],
            &["crop size 2"],
        ),
        case(
            "label check with no views",
            none,
            &["label-check", "--views", "0", "--out", "lc"],
            &["--views 0"],
        ),
        case(
            "label check with a hundred thousand views",
            none,
            &["label-check", "--views", "100000", "--out", "lc"],
            &["--views 100000", "between 1 and 1000"],
        ),
        case(
            "label check crop zero",
            none,
            &["label-check", "--crops", "0", "--out", "lc"],
            &["crop size 0"],
        ),
        case(
            "label check oracle batch one",
            none,
            &["label-check", "--oracle-batch", "1", "--out", "lc"],
            &["--oracle-batch 1"],
        ),
        case(
            "label check methods twice",
            none,
            &["label-check", "--methods", "gcc,gcc", "--out", "lc"],
            &["gcc twice"],
        ),
        case(
            "label check into a file",
            |d| write(&d.join("lc"), b"notes"),
            &["label-check", "--data", d, "--methods", "rc", "--out", "lc"],
            &["lc", "is a file"],
        ),
        case(
            "pre-training into a file",
            |d| write(&d.join("out"), b"notes"),
            &[
                "pretrain", "--data", d, "--epochs", "1", "--batch", "32", "--out", "out",
            ],
            &["out", "is a file"],
        ),
        case(
            "crops as SVG",
            none,
            &["crops", "--out", "v.svg"],
            &["v.svg", "PNG"],
        ),
        case(
            "crops heat map in a missing folder",
            none,
            &[
                "crops",
                "--out",
                "v.png",
                "--heatmap",
                "nowhere/h.png",
                "--draws",
                "10",
            ],
            &["nowhere/h.png", "does not exist"],
        ),
        case(
            "bench-train crop above one",
            none,
            &["bench-train", "--crop", "1.5"],
            &["crop size 1.5"],
        ),
        case(
            "bench-train JSON in a missing folder",
            none,
            &[
                "bench-train",
                "--model",
                "small-cnn",
                "--json",
                "nowhere/b.json",
            ],
            &["nowhere/b.json", "does not exist"],
        ),
        case(
            "bench-train zero steps",
            none,
            &["bench-train", "--steps", "0"],
            &["--steps"],
        ),
        case(
            "linear eval both encoders",
            none,
            &["linear-eval", "--checkpoint", "ck", "--random-init"],
            &["--random-init"],
        ),
        case(
            "linear eval zero epochs",
            none,
            &["linear-eval", "--random-init", "--data", d, "--epochs", "0"],
            &["at least one epoch"],
        ),
        // Sweeps.
        sweep_case(
            "sweep crop sizes twice",
            Box::new(none),
            &["--crops", "0.4,0.4"],
            &["0.4 twice"],
        ),
        sweep_case(
            "sweep methods twice",
            Box::new(none),
            &["--methods", "rc,rc"],
            &["rc twice"],
        ),
        sweep_case(
            "sweep alphas for other crops",
            Box::new(none),
            &["--methods", "gcc", "--alphas", "1,2,3"],
            &["--alphas gives 3"],
        ),
        sweep_case(
            "sweep seeds twice",
            Box::new(none),
            &["--seeds", "1,1"],
            &["--seeds names 1 twice"],
        ),
        sweep_case(
            "sweep shard not i of n",
            Box::new(none),
            &["--shard", "4/4"],
            &["--shard \"4/4\""],
        ),
        sweep_case(
            "sweep shard beyond the runs",
            Box::new(none),
            &["--shard", "5/8"],
            &["--shard 5/8", "only 2 runs"],
        ),
        sweep_case(
            "sweep batch of one",
            Box::new(none),
            &["--batch", "1"],
            &["--batch 1"],
        ),
        sweep_case(
            "sweep batch above the images",
            Box::new(none),
            &["--batch", "100"],
            &["--batch 100", "64 training images"],
        ),
        sweep_case(
            "sweep train limit zero",
            Box::new(none),
            &["--train-limit", "0"],
            &["--train-limit 0"],
        ),
        sweep_case(
            "sweep crop zero",
            Box::new(none),
            &["--crops", "0"],
            &["crop size 0 is not a fraction"],
        ),
        sweep_case(
            "sweep crop without a paper alpha",
            Box::new(none),
            &["--crops", "0.001"],
            &["no alpha for crop size 0.001", "--alphas"],
        ),
        sweep_case(
            "sweep crop too small for the image",
            Box::new(none),
            &["--crops", "0.001", "--alphas", "1"],
            &["use a larger --crop"],
        ),
        sweep_case(
            "sweep negative alpha",
            Box::new(none),
            &["--methods", "gcc", "--alphas", "-2"],
            &["alpha -2"],
        ),
        sweep_case(
            "sweep zero slurm shards",
            Box::new(none),
            &["--emit-slurm", "0"],
            &["--emit-slurm 0"],
        ),
        sweep_case(
            "sweep more slurm shards than runs",
            Box::new(none),
            &["--emit-slurm", "3"],
            &["--emit-slurm 3", "2 runs"],
        ),
        sweep_case(
            "slurm into another sweep",
            Box::new(other_sweep),
            &["--emit-slurm", "1"],
            &["sweep.json", "other settings", "lr"],
        ),
        sweep_case(
            "slurm over another script",
            Box::new(|d: &Path| {
                write(
                    &d.join("out/quick.sbatch"),
                    b"#!/bin/bash\n# another sweep\n",
                )
            }),
            &["--emit-slurm", "1"],
            &["quick.sbatch", "another sbatch script"],
        ),
        sweep_case(
            "sweep into another sweep",
            Box::new(other_sweep),
            &[],
            &["sweep.json", "other settings"],
        ),
        sweep_case(
            "sweep.json damaged",
            Box::new(|d: &Path| write(&d.join("out/sweep.json"), b"{\"preset\": \"quick\", \"epo")),
            &[],
            &["sweep.json", "is not a sweep description"],
        ),
        Case {
            name: "result.json damaged",
            setup: Box::new(move |dir: &Path| {
                // The folder a shard left: its sweep.json, and a run's result cut short.
                let mut args = tiny_sweep_args();
                let data = fixtures().data();
                args.extend_from_slice(&[
                    "--batch", "32", "--data", &data, "--out", "out", "--shard", "0/2",
                ]);
                let _ = run(dir, &args);
                let result = dir.join("out/runs/random-seed0/result.json");
                let bytes = std::fs::read(&result).expect("the shard wrote its result");
                write(&result, &bytes[..bytes.len() / 2]);
            }),
            args: sweep(&["--shard", "0/2"]),
            expect: vec!["random-seed0", "result.json", "is not a run result"],
        },
        case(
            "paper preset without data",
            none,
            &["reproduce", "--preset", "paper", "--out", "out"],
            &["CIFAR-10", "--data DIR"],
        ),
        case(
            "report of an empty folder",
            |d| std::fs::create_dir_all(d.join("out")).unwrap(),
            &["report", "--out", "out"],
            &["sweep.json"],
        ),
        // Data set tools.
        case(
            "subset of a folder without its test split",
            |d| {
                idx_set(d, "src", |_| {});
                std::fs::remove_file(d.join("src/t10k-images-idx3-ubyte")).unwrap();
            },
            &[
                "data",
                "subset",
                "--from",
                "src",
                "--to",
                "dst",
                "--train-per-class",
                "1",
                "--test-per-class",
                "1",
            ],
            &["t10k-images-idx3-ubyte"],
        ),
        case(
            "subset into a data set",
            |d| {
                idx_set(d, "src", |_| {});
                idx_set(d, "dst", |_| {});
            },
            &[
                "data",
                "subset",
                "--from",
                "src",
                "--to",
                "dst",
                "--train-per-class",
                "1",
                "--test-per-class",
                "1",
            ],
            &["dst", "already holds a data set"],
        ),
        case(
            "subset of more than a class holds",
            |d| idx_set(d, "src", |_| {}),
            &[
                "data",
                "subset",
                "--from",
                "src",
                "--to",
                "dst",
                "--train-per-class",
                "5",
            ],
            &["5"],
        ),
        case(
            "translated into a data set",
            |d| {
                idx_set(d, "src", |_| {});
                idx_set(d, "dst", |_| {});
            },
            &["data", "make", "translated", "--from", "src", "--to", "dst"],
            &["dst", "already holds a data set"],
        ),
        case(
            "translated onto a smaller canvas",
            |d| idx_set(d, "src", |_| {}),
            &[
                "data",
                "make",
                "translated",
                "--from",
                "src",
                "--canvas",
                "3",
                "--to",
                "dst",
            ],
            &["--canvas 3"],
        ),
        case(
            "subset of zero images per class",
            |d| idx_set(d, "src", |_| {}),
            &[
                "data",
                "subset",
                "--from",
                "src",
                "--train-per-class",
                "0",
                "--to",
                "dst",
            ],
            &["--train-per-class 0"],
        ),
        case(
            "translated clutter patches of zero pixels",
            |d| idx_set(d, "src", |_| {}),
            &[
                "data",
                "make",
                "translated",
                "--from",
                "src",
                "--clutter",
                "2",
                "--patch",
                "0",
                "--to",
                "dst",
            ],
            &["--patch 0"],
        ),
        case(
            "translated colour images",
            |d| {
                for split in ["train", "test"] {
                    rgb_png(&d.join("src").join(split).join("cat/a.png"));
                }
            },
            &["data", "make", "translated", "--from", "src", "--to", "dst"],
            &["src"],
        ),
        // IDX files, raw and gzip.
        data_case(
            "idx images truncated",
            Box::new(|d| idx_set(d, "bad", |f| f[0].truncate(40))),
            &["train-images-idx3-ubyte", "truncated"],
        ),
        data_case(
            "idx header truncated",
            Box::new(|d| idx_set(d, "bad", |f| f[1].truncate(6))),
            &[
                "train-labels-idx1-ubyte",
                "shorter than the 8-byte IDX header",
            ],
        ),
        data_case(
            "idx bad magic",
            Box::new(|d| idx_set(d, "bad", |f| f[0][2] = 0x0d)),
            &["train-images-idx3-ubyte", "magic"],
        ),
        data_case(
            "idx dimensions past 64 bits",
            Box::new(|d| idx_set(d, "bad", |f| f[0] = idx(&[u32::MAX; 3], &[1; 8]))),
            &["train-images-idx3-ubyte", "multiply past"],
        ),
        data_case(
            "idx zero image rows",
            Box::new(|d| idx_set(d, "bad", |f| f[0] = idx(&[4, 0, 4], &[]))),
            &["empty"],
        ),
        data_case(
            "idx trailing bytes",
            Box::new(|d| idx_set(d, "bad", |f| f[2].push(1))),
            &["t10k-images-idx3-ubyte", "1 bytes follow"],
        ),
        data_case(
            "idx label out of range",
            Box::new(|d| idx_set(d, "bad", |f| f[3][9] = 10)),
            &["t10k-labels-idx1-ubyte", "label 10"],
        ),
        data_case(
            "idx fewer labels than images",
            Box::new(|d| idx_set(d, "bad", |f| f[1] = idx(&[3], &[0, 1, 2]))),
            &["train-labels-idx1-ubyte", "3 labels for the 4 images"],
        ),
        data_case(
            "idx test images of another size",
            Box::new(|d| idx_set(d, "bad", |f| f[2] = idx(&[2, 5, 5], &[1; 50]))),
            &["[1, 4, 4]", "[1, 5, 5]"],
        ),
        data_case(
            "idx test split empty",
            Box::new(|d| {
                idx_set(d, "bad", |f| {
                    f[2] = idx(&[0, 4, 4], &[]);
                    f[3] = idx(&[0], &[]);
                })
            }),
            &["test split holds no images"],
        ),
        data_case(
            "gzip damaged",
            Box::new(|d| {
                idx_set(d, "bad", |_| {});
                let p = d.join("bad/train-images-idx3-ubyte");
                let mut g = gzip(&std::fs::read(&p).unwrap());
                let n = g.len();
                g[n / 2] ^= 0xff;
                g.truncate(n - 3);
                std::fs::remove_file(&p).unwrap();
                write(&d.join("bad/train-images-idx3-ubyte.gz"), &g);
            }),
            &["train-images-idx3-ubyte.gz", "gzip"],
        ),
        data_case(
            "gzip promising more than it holds",
            Box::new(|d| {
                idx_set(d, "bad", |_| {});
                let p = d.join("bad/train-images-idx3-ubyte");
                std::fs::remove_file(&p).unwrap();
                write(
                    &d.join("bad/train-images-idx3-ubyte.gz"),
                    &gzip(&idx(&[1 << 24, 64, 64], &[0; 256])),
                );
            }),
            &["train-images-idx3-ubyte.gz", "can hold"],
        ),
        // CIFAR-10 binary batches.
        data_case(
            "cifar batch truncated",
            Box::new(|d| {
                for i in 1..=5 {
                    write(&d.join(format!("bad/data_batch_{i}.bin")), &cifar_record(1));
                }
                write(&d.join("bad/test_batch.bin"), &cifar_record(2)[..3000]);
            }),
            &["test_batch.bin", "truncated"],
        ),
        data_case(
            "cifar label out of range",
            Box::new(|d| {
                for i in 1..=5 {
                    write(
                        &d.join(format!("bad/data_batch_{i}.bin")),
                        &cifar_record(if i == 3 { 12 } else { 1 }),
                    );
                }
                write(&d.join("bad/test_batch.bin"), &cifar_record(2));
            }),
            &["data_batch_3.bin", "label 12"],
        ),
        data_case(
            "cifar batch missing",
            Box::new(|d| {
                for i in 1..=4 {
                    write(&d.join(format!("bad/data_batch_{i}.bin")), &cifar_record(1));
                }
            }),
            &["data_batch_5.bin"],
        ),
        // PNG folders.
        data_case(
            "png test classes differ",
            Box::new(|d| png_set(d, "bad", &["cat", "dog"], &["dog"], 8)),
            &["missing from the test split: [\"cat\"]"],
        ),
        data_case(
            "png test images of another size",
            Box::new(|d| png_set(d, "bad", &["cat", "dog"], &["cat", "dog"], 6)),
            &["[1, 8, 8]", "[1, 6, 6]"],
        ),
        data_case(
            "png not a png",
            Box::new(|d| {
                png_set(d, "bad", &["cat", "dog"], &["cat", "dog"], 8);
                write(&d.join("bad/train/dog/b.png"), b"GIF89a not a png");
            }),
            &["b.png", "not a readable PNG"],
        ),
        data_case(
            "png mixed sizes",
            Box::new(|d| {
                png_set(d, "bad", &["cat", "dog"], &["cat", "dog"], 8);
                png(&d.join("bad/train/dog/b.png"), 5);
            }),
            &["b.png", "[1, 5, 5]", "[1, 8, 8]"],
        ),
        data_case(
            "png no class folders",
            Box::new(|d| {
                write(&d.join("bad/train/a.png"), b"");
                write(&d.join("bad/test/a.png"), b"");
            }),
            &["train", "no class sub-folders"],
        ),
        data_case(
            "png header promising a huge image",
            Box::new(|d| {
                png_set(d, "bad", &["cat"], &["cat"], 8);
                let p = d.join("bad/train/cat/a.png");
                write(&p, &png_with_size(&std::fs::read(&p).unwrap(), 60000));
            }),
            &["a.png", "can hold"],
        ),
        // Checkpoints.
        Case {
            name: "checkpoint evaluated on colour images",
            setup: Box::new(|d: &Path| {
                for f in ["checkpoint.safetensors", "checkpoint.json"] {
                    let bytes = std::fs::read(fixtures().ck().join(f)).unwrap();
                    write(&d.join("ck").join(f), &bytes);
                }
                for split in ["train", "test"] {
                    for name in ["a.png", "b.png"] {
                        rgb_png(&d.join("rgb").join(split).join("cat").join(name));
                    }
                }
            }),
            args: [
                "linear-eval",
                "--checkpoint",
                "ck",
                "--data",
                "rgb",
                "--epochs",
                "1",
            ]
            .map(String::from)
            .to_vec(),
            expect: vec!["1-channel", "3-channel"],
        },
        case(
            "checkpoint missing",
            |d| std::fs::create_dir_all(d.join("ck")).unwrap(),
            &["linear-eval", "--checkpoint", "ck", "--data", d],
            &["checkpoint.safetensors", "no checkpoint here"],
        ),
        ck_case(
            "checkpoint truncated",
            Box::new(|d| damaged_checkpoint_bytes(d, |b| b.truncate(b.len() - 100))),
            &["checkpoint.safetensors", "not a safetensors file"],
        ),
        ck_case(
            "checkpoint header length huge",
            Box::new(|d| {
                damaged_checkpoint_bytes(d, |b| b[..8].copy_from_slice(&u64::MAX.to_le_bytes()))
            }),
            &["checkpoint.safetensors"],
        ),
        ck_case(
            "checkpoint of another format",
            Box::new(|d| {
                damaged_checkpoint(d, |_, m| {
                    m.insert("format".into(), "something-else".into());
                })
            }),
            &[
                "checkpoint.safetensors",
                "is not a taming-pretrain-1 checkpoint",
            ],
        ),
        ck_case(
            "checkpoint config damaged",
            Box::new(|d| {
                damaged_checkpoint(d, |_, m| {
                    m.insert("config".into(), "{\"method\": 3".into());
                })
            }),
            &["checkpoint.safetensors", "\"config\" is not valid"],
        ),
        ck_case(
            "checkpoint without history",
            Box::new(|d| {
                damaged_checkpoint(d, |_, m| {
                    m.remove("history");
                })
            }),
            &["checkpoint.safetensors", "\"history\""],
        ),
        ck_case(
            "checkpoint tensor missing",
            Box::new(|d| {
                damaged_checkpoint(d, |t, _| {
                    t.retain(|(n, _, _)| !n.starts_with("param/"));
                })
            }),
            &["checkpoint.safetensors", "has no tensor param/"],
        ),
        ck_case(
            "checkpoint tensor of another shape",
            Box::new(|d| {
                damaged_checkpoint(d, |t, _| {
                    let p = t
                        .iter_mut()
                        .find(|(n, _, _)| n.starts_with("param/"))
                        .unwrap();
                    p.2.push(0.0);
                    let n = p.2.len();
                    p.1 = vec![n];
                })
            }),
            &["checkpoint.safetensors", "has shape"],
        ),
        ck_case(
            "checkpoint weights not finite",
            Box::new(|d| {
                damaged_checkpoint(d, |t, _| {
                    let p = t
                        .iter_mut()
                        .find(|(n, _, _)| n.starts_with("param/"))
                        .unwrap();
                    p.2[3] = f32::NAN;
                })
            }),
            &["checkpoint.safetensors", "NaN at element 3"],
        ),
    ]
}

#[test]
fn every_bad_input_is_one_clear_error_and_leaves_every_file_as_it_was() {
    if common::gpu().is_none() {
        return;
    }
    let fx = fixtures();
    let fixtures_before = snapshot(&fx.root);
    let all = cases();
    assert!(all.len() >= 40, "the table holds {} cases", all.len());
    let mut failures = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let dir = fresh(&format!("case{i}"));
        (c.setup)(&dir);
        let before = snapshot(&dir);
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = run(&dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut wrong = Vec::new();
        match out.status.code() {
            Some(1) | Some(2) => {}
            other => wrong.push(format!("exit status {other:?} (1 or 2 expected)")),
        }
        if stderr.contains("panicked") {
            wrong.push("it panicked".into());
        }
        if !stderr.contains("error") {
            wrong.push("no error message".into());
        }
        for e in &c.expect {
            if !stderr.contains(e) {
                wrong.push(format!("the message does not name {e:?}"));
            }
        }
        let after = snapshot(&dir);
        if after != before {
            let changed: Vec<String> = (before.keys().chain(after.keys()))
                .filter(|k| before.get(*k) != after.get(*k))
                .map(|k| k.strip_prefix(&dir).unwrap_or(k).display().to_string())
                .collect();
            wrong.push(format!("files changed, appeared or vanished: {changed:?}"));
        }
        if wrong.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            failures.push(format!(
                "case {i} {:?} (taming {}): {}\n  stderr: {}",
                c.name,
                c.args.join(" "),
                wrong.join("; "),
                stderr.trim()
            ));
        }
    }
    assert_eq!(
        snapshot(&fx.root),
        fixtures_before,
        "a case changed the shared fixtures"
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not handled cleanly:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    println!("{} bad inputs refused cleanly", all.len());
}
