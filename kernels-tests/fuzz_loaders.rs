//! Every loader fuzzed: valid files (IDX raw and gzip, CIFAR-10 binary, PNG folders, a
//! safetensors checkpoint with its metadata, sweep.json, result.json) mutated thousands of times
//! in total by a seeded mutator (truncations, byte flips, header fields set to 0, huge and
//! off-by-one values, inserted bytes, JSON values swapped for hostile ones). Each load must end
//! in a value or a clean `Err`: never a panic, and never one allocation larger than the file
//! could hold (a counting global allocator records the largest request of each load).
//!
//! One test function, so that no other test allocates while a load is measured.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use taming::data::idx::{load_idx, write_idx_gz, FASHION_MNIST_CLASSES};
use taming::data::{cifar10, folder, load_dir, Split};
use taming::experiment::preset::{Overrides, Preset, SweepSpec};
use taming::experiment::results::RunResult;
use taming::experiment::sweep::{load_sweep, run_shard, Shard, SweepOptions};
use taming::simclr::{load_trained, pretrain, PretrainConfig, RunOptions};
use taming::Gpu;

/// The system allocator, recording the largest single request since the last reset.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Deflate's largest expansion: what a compressed file of n bytes could hold.
const DEFLATE_RATIO: usize = 1032;

/// What went wrong in one loader's campaign, for the failure message.
#[derive(Default)]
struct Campaign {
    name: &'static str,
    runs: usize,
    errors: usize,
    failures: Vec<String>,
}

impl Campaign {
    fn new(name: &'static str) -> Campaign {
        Campaign {
            name,
            ..Campaign::default()
        }
    }

    /// Runs one load of a mutated input of `input_len` bytes; `could_hold` is the largest
    /// allocation that input justifies.
    fn load<T>(&mut self, what: &str, could_hold: usize, load: impl FnOnce() -> taming::Result<T>) {
        self.runs += 1;
        LARGEST.store(0, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
        let largest = LARGEST.load(Ordering::Relaxed);
        match outcome {
            Err(payload) => {
                let message = (payload.downcast_ref::<String>().cloned())
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.failures.push(format!("{what}: panicked: {message}"));
            }
            Ok(Err(e)) => {
                self.errors += 1;
                if e.to_string().is_empty() {
                    self.failures
                        .push(format!("{what}: an empty error message"));
                }
            }
            Ok(Ok(_)) => {}
        }
        if largest > could_hold {
            self.failures.push(format!(
                "{what}: allocated {largest} bytes at once, more than the {could_hold} the input could hold"
            ));
        }
    }

    fn report(&self) -> String {
        format!(
            "{}: {} mutations, {} refused, {} clean loads",
            self.name,
            self.runs,
            self.errors,
            self.runs - self.errors
        )
    }
}

/// One mutation of `bytes`: a truncation, byte flips (often in the header), a header field
/// set to a boundary value, inserted or appended bytes. `header` is the length of the part
/// where fields live; `fields` the offsets of its 4-byte big- or little-endian integers.
fn mutate(
    rng: &mut ChaCha8Rng,
    bytes: &[u8],
    header: usize,
    fields: &[(usize, bool)],
) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let n = b.len().max(1);
    let header = header.clamp(1, n);
    let what = match rng.random_range(0..6) {
        0 => {
            let keep = rng.random_range(0..b.len().max(1));
            b.truncate(keep);
            format!("truncated to {keep} bytes")
        }
        1 => {
            let flips = rng.random_range(1..=4);
            for _ in 0..flips {
                let i = match rng.random_bool(0.5) {
                    true => rng.random_range(0..header),
                    false => rng.random_range(0..n),
                };
                if i < b.len() {
                    b[i] ^= 1 << rng.random_range(0..8);
                }
            }
            format!("{flips} bits flipped")
        }
        2 if fields.len() > 1 => {
            // Every field at once: sizes whose product overflows, or zero everywhere.
            let value = [0, u32::MAX, 0x1_0000, rng.random()][rng.random_range(0..4)];
            let len = b.len();
            for &(at, big_endian) in fields.iter().filter(|(at, _)| at + 4 <= len) {
                let v = if big_endian {
                    value.to_be_bytes()
                } else {
                    value.to_le_bytes()
                };
                b[at..at + 4].copy_from_slice(&v);
            }
            format!("every field set to {value}")
        }
        3 if !fields.is_empty() => {
            let (at, big_endian) = fields[rng.random_range(0..fields.len())];
            if at + 4 > b.len() {
                return (b, "unchanged (field beyond the file)".into());
            }
            let raw: [u8; 4] = b[at..at + 4].try_into().unwrap();
            let old = if big_endian {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            let new = match rng.random_range(0..8) {
                0 => 0,
                1 => 1,
                2 => u32::MAX,
                3 => old.wrapping_add(1),
                4 => old.wrapping_sub(1),
                5 => 0x7fff_ffff,
                6 => [1 << 12, 1 << 16, 1 << 20][rng.random_range(0..3)],
                _ => rng.random(),
            };
            let bytes = if big_endian {
                new.to_be_bytes()
            } else {
                new.to_le_bytes()
            };
            b[at..at + 4].copy_from_slice(&bytes);
            format!("field at {at} set from {old} to {new}")
        }
        4 => {
            let at = rng.random_range(0..=b.len());
            let len = rng.random_range(1..16);
            let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            b.splice(at..at, junk);
            format!("{len} bytes inserted at {at}")
        }
        _ => {
            let len = rng.random_range(1..64);
            b.extend((0..len).map(|_| rng.random::<u8>()));
            format!("{len} bytes appended")
        }
    };
    (b, what)
}

/// One mutation of a JSON text: a number, string or value swapped for a hostile one, a span
/// deleted, or a byte-level mutation.
fn mutate_json(rng: &mut ChaCha8Rng, text: &[u8]) -> (Vec<u8>, String) {
    const HOSTILE: [&str; 12] = [
        "0",
        "-1",
        "1e308",
        "-1e308",
        "18446744073709551616",
        "4294967296",
        "0.0000001",
        "null",
        "\"\"",
        "[]",
        "{}",
        "true",
    ];
    if rng.random_bool(0.3) {
        return mutate(rng, text, text.len(), &[]);
    }
    let s = String::from_utf8_lossy(text).into_owned();
    // The starts of the values after a colon or a comma, or inside an array.
    let starts: Vec<usize> = s
        .char_indices()
        .filter(|(i, c)| {
            (*c == ':' || *c == '[' || *c == ',')
                && s[i + 1..].trim_start().chars().next().is_some()
        })
        .map(|(i, _)| i + 1)
        .collect();
    if starts.is_empty() {
        return (text.to_vec(), "unchanged".into());
    }
    let at = starts[rng.random_range(0..starts.len())];
    let rest = &s[at..];
    let lead = rest.len() - rest.trim_start().len();
    let value_start = at + lead;
    // The value runs to the next comma or closing bracket at its own level (approximately: the
    // next one for scalars, the matching one for arrays and objects).
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut end = value_start;
    let mut in_string = false;
    while end < bytes.len() {
        let c = bytes[end];
        if in_string {
            if c == b'\\' {
                end += 1;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'[' || c == b'{' {
            depth += 1;
        } else if c == b']' || c == b'}' {
            if depth == 0 {
                break;
            }
            depth -= 1;
        } else if c == b',' && depth == 0 {
            break;
        }
        end += 1;
    }
    let new = if rng.random_bool(0.15) {
        String::new()
    } else {
        HOSTILE[rng.random_range(0..HOSTILE.len())].to_string()
    };
    let old: String = s[value_start..end].chars().take(40).collect();
    let out = format!("{}{new}{}", &s[..value_start], &s[end..]);
    (
        out.into_bytes(),
        format!("value {old:?} at {value_start} replaced by {new:?}"),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taming-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// IDX images and labels, raw and gzip-compressed (the whole file mutated, or its decompressed
/// bytes mutated and compressed again so that header mutations reach the parser).
fn fuzz_idx(rng: &mut ChaCha8Rng, iterations: usize) -> Vec<Campaign> {
    let dir = fresh("idx");
    let ds = load_dir(None, Split::Train).unwrap().first(Some(16));
    write_idx_gz(&ds, &dir, Split::Train).unwrap();
    let images_gz = std::fs::read(dir.join("train-images-idx3-ubyte.gz")).unwrap();
    let labels_gz = std::fs::read(dir.join("train-labels-idx1-ubyte.gz")).unwrap();
    let (images, labels) = (gunzip(&images_gz), gunzip(&labels_gz));
    let (img_path, lab_path) = (dir.join("images"), dir.join("labels"));
    let idx_fields = |dims: usize| (1..=dims).map(|k| (4 * k, true)).collect::<Vec<_>>();
    let mut raw = Campaign::new("IDX raw");
    let mut gz = Campaign::new("IDX gzip");
    for i in 0..iterations {
        let which_labels = rng.random_bool(0.3);
        let (valid, dims) = if which_labels {
            (&labels, 1)
        } else {
            (&images, 3)
        };
        let (bytes, what) = mutate(rng, valid, 4 + 4 * dims, &idx_fields(dims));
        let compress = rng.random_bool(0.5);
        let (file, campaign) = match (compress, rng.random_bool(0.5)) {
            (false, _) => (bytes, &mut raw),
            // Compressed again after mutating the decompressed bytes.
            (true, true) => (gzip(&bytes), &mut gz),
            // The compressed file itself mutated.
            (true, false) => {
                let gz_valid = if which_labels { &labels_gz } else { &images_gz };
                (mutate(rng, gz_valid, 16, &[]).0, &mut gz)
            }
        };
        let (this, other) = if which_labels {
            (&lab_path, &img_path)
        } else {
            (&img_path, &lab_path)
        };
        std::fs::write(this, &file).unwrap();
        std::fs::write(other, if which_labels { &images } else { &labels }).unwrap();
        let could_hold = match compress {
            true => DEFLATE_RATIO * file.len() + 2 * images.len() + (1 << 16),
            false => 2 * file.len().max(images.len()) + (1 << 16),
        };
        let label = format!(
            "iteration {i}, {} file: {what}",
            if which_labels { "labels" } else { "images" }
        );
        campaign.load(&label, could_hold, || {
            load_idx(&img_path, &lab_path, &FASHION_MNIST_CLASSES)
        });
    }
    vec![raw, gz]
}

/// A CIFAR-10 test batch of three records.
fn fuzz_cifar(rng: &mut ChaCha8Rng, iterations: usize) -> Campaign {
    let dir = fresh("cifar");
    let valid: Vec<u8> = (0..3)
        .flat_map(|k| std::iter::once(k as u8).chain((0..3072).map(move |p| (p * 7 + k) as u8)))
        .collect();
    let fields: Vec<(usize, bool)> = (0..3).map(|k| (k * 3073, true)).collect();
    let mut c = Campaign::new("CIFAR-10 binary");
    for i in 0..iterations {
        let (bytes, what) = mutate(rng, &valid, 3073 * 3, &fields);
        std::fs::write(dir.join("test_batch.bin"), &bytes).unwrap();
        c.load(
            &format!("iteration {i}: {what}"),
            2 * valid.len().max(bytes.len()) + (1 << 16),
            || cifar10::load_cifar10(&dir, Split::Test),
        );
    }
    c
}

/// PNG folders: one of four images mutated (its IHDR size fields with the chunk's CRC fixed,
/// so that a bad size gets past the checksum).
fn fuzz_png(rng: &mut ChaCha8Rng, iterations: usize) -> Campaign {
    let dir = fresh("png");
    let mut valid = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut valid, 6, 5);
        enc.set_color(png::ColorType::Rgb);
        let pixels: Vec<u8> = (0..90).map(|i| (i * 3) as u8).collect();
        enc.write_header()
            .unwrap()
            .write_image_data(&pixels)
            .unwrap();
    }
    for class in ["a", "b"] {
        for name in ["x.png", "y.png"] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            std::fs::write(dir.join(class).join(name), &valid).unwrap();
        }
    }
    let target = dir.join("b/x.png");
    let mut c = Campaign::new("PNG folders");
    for i in 0..iterations {
        let (mut bytes, what) = mutate(rng, &valid, 33, &[(16, true), (20, true), (24, true)]);
        if what.contains("field") && bytes.len() >= 33 {
            let mut crc = flate2::Crc::new();
            crc.update(&bytes[12..29]);
            bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        }
        std::fs::write(&target, &bytes).unwrap();
        let could_hold = DEFLATE_RATIO * bytes.len().max(valid.len()) + (1 << 16);
        c.load(&format!("iteration {i}: {what}"), could_hold, || {
            folder::load_png_folder(&dir)
        });
    }
    c
}

/// A checkpoint of one epoch: its bytes mutated, or its metadata's JSON values mutated and the
/// file written again; loaded as `linear-eval --checkpoint` loads it.
fn fuzz_checkpoint(gpu: &Gpu, rng: &mut ChaCha8Rng, iterations: usize) -> Campaign {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    let dir = fresh("checkpoint");
    let mut config = PretrainConfig::new(taming::crop::Method::Gcc, 0.4, 1.5, 1);
    config.batch = 32;
    config.train_limit = Some(64);
    pretrain(gpu, &config, &dir, &RunOptions::default()).unwrap();
    let path = dir.join("checkpoint.safetensors");
    let valid = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&valid).unwrap();
    let (header_len, header) = SafeTensors::read_metadata(&valid).unwrap();
    let meta = header.metadata().clone().unwrap();
    let keys: Vec<String> = meta.keys().cloned().collect();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let fields = [(0, false), (4, false)];
    let mut c = Campaign::new("safetensors checkpoint");
    for i in 0..iterations {
        let (bytes, what) = if rng.random_bool(0.5) {
            mutate(rng, &valid, 8 + header_len, &fields)
        } else {
            let key = &keys[rng.random_range(0..keys.len())];
            let mut m = meta.clone();
            let (text, what) = mutate_json(rng, m[key].as_bytes());
            m.insert(key.clone(), String::from_utf8_lossy(&text).into_owned());
            let views: Vec<(String, TensorView)> = tensors
                .iter()
                .map(|(n, s, d)| {
                    (
                        n.clone(),
                        TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
                    )
                })
                .collect();
            (
                safetensors::serialize(views, Some(m)).unwrap(),
                format!("metadata {key:?}: {what}"),
            )
        };
        std::fs::write(&path, &bytes).unwrap();
        // The encoder the checkpoint describes is built on the GPU: its buffers and pipelines
        // are allowed beside the file's size.
        let could_hold = 4 * bytes.len().max(valid.len()) + (16 << 20);
        c.load(&format!("iteration {i}: {what}"), could_hold, || {
            load_trained(gpu, &dir)
        });
    }
    c
}

/// sweep.json and result.json of a one-run shard (the random baseline), mutated.
fn fuzz_sweep_files(gpu: &Gpu, rng: &mut ChaCha8Rng, iterations: usize) -> Vec<Campaign> {
    let out = fresh("sweep");
    let spec = SweepSpec::with(
        Preset::Quick,
        Overrides {
            methods: Some(vec![taming::crop::Method::Rc]),
            crops: Some(vec![0.4]),
            baseline_seeds: Some(vec![]),
            train_limit: Some(64),
            batch: Some(32),
            epochs: Some(1),
            probe_epochs: Some(1),
            label_views: Some(0),
            ..Overrides::default()
        },
    )
    .unwrap();
    let options = SweepOptions {
        shard: "0/2".parse::<Shard>().unwrap(),
        progress: false,
        stop_after_runs: None,
    };
    run_shard(gpu, &spec, &out, &options).unwrap();
    let sweep_path = out.join("sweep.json");
    let result_path = out.join("runs/random-seed0/result.json");
    let (sweep, result) = (
        std::fs::read(&sweep_path).unwrap(),
        std::fs::read(&result_path).unwrap(),
    );
    let mut campaigns = vec![Campaign::new("sweep.json"), Campaign::new("result.json")];
    for i in 0..iterations {
        let (bytes, what) = mutate_json(rng, &sweep);
        std::fs::write(&sweep_path, &bytes).unwrap();
        let could_hold = 8 * bytes.len().max(sweep.len()) + (1 << 16);
        campaigns[0].load(&format!("iteration {i}: {what}"), could_hold, || {
            // What `reproduce` and `report` do with it: load, validate, list the grid.
            let spec = load_sweep(&out)?;
            spec.validate()?;
            Ok(spec.runs().len())
        });
        let (bytes, what) = mutate_json(rng, &result);
        std::fs::write(&result_path, &bytes).unwrap();
        let could_hold = 8 * bytes.len().max(result.len()) + (1 << 16);
        campaigns[1].load(&format!("iteration {i}: {what}"), could_hold, || {
            RunResult::load(&result_path)
        });
    }
    campaigns
}

#[test]
fn every_loader_survives_thousands_of_mutated_files() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(20_261_202);
    // Panics are caught and reported with their input; the default hook would print each.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut campaigns = fuzz_idx(&mut rng, 3000);
    campaigns.push(fuzz_cifar(&mut rng, 1000));
    campaigns.push(fuzz_png(&mut rng, 1500));
    campaigns.push(fuzz_checkpoint(&gpu, &mut rng, 600));
    campaigns.extend(fuzz_sweep_files(&gpu, &mut rng, 1500));
    std::panic::set_hook(default_hook);
    let total: usize = campaigns.iter().map(|c| c.runs).sum();
    for c in &campaigns {
        println!("{}", c.report());
        assert!(
            c.errors > 0,
            "{}: no mutation was refused, so the mutator does not reach the checks",
            c.name
        );
    }
    let failures: Vec<String> = campaigns
        .iter()
        .flat_map(|c| {
            c.failures
                .iter()
                .take(5)
                .map(move |f| format!("{}: {f}", c.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "of {total} mutated files, these were not a clean result or a clean error:\n{}",
        failures.join("\n")
    );
    println!("{total} mutated files, every one a clean result or a clean error");
}
