//! Layer 7: the label-preservation check. An oracle (a supervised classifier, see [`oracle`])
//! labels the views every strategy draws, exactly as pre-training draws them, and the check
//! counts how often a view still carries its image's label, how often a pair's two views are
//! labelled alike, how many pairs are false positives (a view that lost the label), and how
//! much of a view is zero padding; per strategy and crop size, with 95 % intervals over images.

pub mod metrics;
pub mod oracle;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::augment::{Normalization, ViewPipeline};
use crate::crop::{degenerate_warning, CropSpec, Method, PadMode};
use crate::data::{load_splits, Dataset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::check_output_folder;
use crate::nn::Encoder;
use crate::ops::affine_sample::PackedImages;

pub use metrics::{Estimate, ImageTally, Shares};
pub use oracle::{OracleKey, OracleRecord, OracleSpec, ORACLE_DIR};

/// Test images per launch of the view pipeline and the oracle.
const EVAL_BATCH: usize = 500;
/// The most view pairs per image a check draws: 1,000 already cost days on a CPU device.
pub const MAX_VIEWS: usize = 1000;

/// What a check measures and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelCheckSpec {
    /// The data set folder; None for the shipped sample.
    pub data: Option<PathBuf>,
    pub methods: Vec<Method>,
    pub crops: Vec<f64>,
    /// The GCC family's alpha at each crop size (one per entry of `crops`).
    pub alphas: Vec<f64>,
    pub pad: PadMode,
    /// View pairs drawn per test image and strategy.
    pub views: usize,
    pub seed: u64,
    /// Flip and blur as pre-training does (the paper's pipeline); off only for tests that need
    /// views to be exact crops.
    pub augment: bool,
    /// Check on the first N test images only; None for all.
    pub test_limit: Option<usize>,
    pub oracle: OracleSpec,
}

/// The check's result for one strategy at one crop size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub method: Method,
    pub crop: f64,
    /// The GCC family's alpha (None for strategies without one).
    pub alpha: Option<f64>,
    /// Width and height of a view in pixels.
    pub view_size: [usize; 2],
    pub images: usize,
    pub pairs_per_image: usize,
    #[serde(flatten)]
    pub shares: Shares,
}

/// Everything a check measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelCheckResult {
    pub spec: LabelCheckSpec,
    pub oracle: OracleRecord,
    /// Whether the oracle was read from the cache rather than trained now.
    pub oracle_reused: bool,
    /// The oracle's accuracy on whole test images, in percent.
    pub whole_image_accuracy: f64,
    pub cells: Vec<CellResult>,
    pub test_images: usize,
    /// Seconds of the whole check (oracle training included when it was trained now).
    pub seconds: f64,
    pub adapter: String,
}

impl LabelCheckResult {
    /// The cell of `method` at `crop`.
    pub fn cell(&self, method: Method, crop: f64) -> Option<&CellResult> {
        self.cells
            .iter()
            .find(|c| c.method == method && (c.crop - crop).abs() < 1e-12)
    }
}

impl LabelCheckSpec {
    /// A check of `methods` at `crops` with the defaults for everything else.
    pub fn new(methods: Vec<Method>, crops: Vec<f64>, alphas: Vec<f64>) -> LabelCheckSpec {
        LabelCheckSpec {
            data: None,
            methods,
            crops,
            alphas,
            pad: PadMode::Centre,
            views: 4,
            seed: 0,
            augment: true,
            test_limit: None,
            oracle: OracleSpec::default(),
        }
    }

    /// Checks every setting before anything is read or written; the error names the option.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if self.methods.is_empty() || self.crops.is_empty() {
            return bad("the label check needs at least one method and one crop size".into());
        }
        if self.alphas.len() != self.crops.len() {
            return bad(format!(
                "--alphas gives {} values for {} crop sizes: give one alpha, or one per crop size",
                self.alphas.len(),
                self.crops.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(m) = self.methods.iter().find(|m| !seen.insert(m.name())) {
            return bad(format!("--methods names {m} twice"));
        }
        if let Some(m) = self.methods.iter().find(|m| m.follows_training()) {
            return bad(format!(
                "--methods {m}: its crops follow a trained run's encoder or localiser, which \
                 the label check does not have; check the methods drawn without one (rc, gcc, \
                 cgcc, mgcc, rrc)"
            ));
        }
        for (i, c) in self.crops.iter().enumerate() {
            if self.crops[..i].iter().any(|d| d == c) {
                return bad(format!("--crops names {c} twice"));
            }
        }
        for (m, crop, alpha) in self.cells() {
            CropSpec::new(m, crop, alpha)?;
        }
        if self.views == 0 || self.views > MAX_VIEWS {
            return bad(format!(
                "--views {} (reproduce: --label-views): draw between 1 and {MAX_VIEWS} view \
                 pairs per image (each pair is two oracle passes over every test image, for \
                 every strategy and crop size)",
                self.views
            ));
        }
        if self.test_limit == Some(0) || self.oracle.train_limit == Some(0) {
            return bad("--test-limit and --train-limit must be at least 1".into());
        }
        let o = &self.oracle;
        if o.epochs == 0 || o.batch < 2 || !(o.lr > 0.0 && o.lr.is_finite()) {
            return bad(format!(
                "the oracle needs at least 1 epoch, a batch of at least 2 and a positive \
                 learning rate; got --oracle-epochs {}, --oracle-batch {}, --oracle-lr {}",
                o.epochs, o.batch, o.lr
            ));
        }
        Ok(())
    }

    /// (method, crop, alpha) of every cell, crop sizes outermost.
    pub fn cells(&self) -> Vec<(Method, f64, f64)> {
        self.crops
            .iter()
            .zip(&self.alphas)
            .flat_map(|(&c, &a)| self.methods.iter().map(move |&m| (m, c, a)))
            .collect()
    }

    /// The view pipeline of a cell: what pre-training draws (flip, blur) unless `augment` is
    /// off.
    pub fn pipeline(
        &self,
        method: Method,
        crop: f64,
        alpha: f64,
        normalization: &Normalization,
    ) -> Result<ViewPipeline> {
        let mut spec = CropSpec::new(method, crop, alpha)?;
        spec.pad = self.pad;
        let mut p = ViewPipeline::paper(spec, normalization.clone());
        if !self.augment {
            p.flip = false;
            p.blur_sigma = None;
        }
        Ok(p)
    }
}

/// The generator of one cell's views: the same for a cell whatever else the check holds.
fn cell_rng(seed: u64, method: Method, crop: f64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tag = Method::ALL.iter().position(|&m| m == method).unwrap_or(0) as u64;
    rng.set_stream(((tag + 1) << 32) ^ (crop.to_bits() >> 32) ^ crop.to_bits());
    rng
}

/// Runs the check on the data of `spec`, with the oracle cached in `out/oracle` (trained there
/// first when it is missing). Writes nothing but the oracle's cache; see
/// `experiment::label_report` for the result files.
pub fn label_check(
    gpu: &Gpu,
    spec: &LabelCheckSpec,
    out: &Path,
    progress: bool,
) -> Result<LabelCheckResult> {
    spec.validate()?;
    let (train, test) = load_splits(spec.data.as_deref(), spec.oracle.train_limit)?;
    let test = test.first(spec.test_limit);
    label_check_on(gpu, spec, &train, &test, out, progress)
}

/// [`label_check`] on data already loaded.
pub fn label_check_on(
    gpu: &Gpu,
    spec: &LabelCheckSpec,
    train: &Dataset,
    test: &Dataset,
    out: &Path,
    progress: bool,
) -> Result<LabelCheckResult> {
    spec.validate()?;
    // Before the oracle trains for minutes: the files go into `out` at the end.
    check_output_folder(out)?;
    let start = Instant::now();
    let normalization = Normalization::of_dataset(train)?;
    let pipelines = spec
        .cells()
        .into_iter()
        .map(|(m, c, a)| spec.pipeline(m, c, a, &normalization))
        .collect::<Result<Vec<_>>>()?;
    let [_, h, w] = test.shape();
    for p in &pipelines {
        p.crop.view_size(w, h)?;
        if let Some(warning) = degenerate_warning(&p.crop, w, h)? {
            eprintln!("warning: {warning}");
        }
    }
    let key = OracleKey::new(
        &spec.oracle,
        spec.seed,
        spec.data.as_deref(),
        train,
        &pipelines,
        &normalization,
    );
    let oracle_dir = out.join(ORACLE_DIR);
    let (oracle, record, reused) = match oracle::check_cache(&oracle_dir, &key)? {
        Some(record) => (oracle::load(gpu, &oracle_dir, &record)?, record, true),
        None => {
            let (o, r) = oracle::train(gpu, &key, train, &pipelines, &oracle_dir, progress)?;
            (o, r, false)
        }
    };
    let test_images = test.upload(gpu)?;
    let whole = oracle::whole_image_accuracy(
        oracle.as_ref(),
        &test_images,
        test.labels(),
        &normalization,
        EVAL_BATCH,
    )?;
    let bar = match progress {
        true => ProgressBar::new(pipelines.len() as u64),
        false => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("label check [{bar:30}] {pos}/{len} cells {msg} ({elapsed})")
            .map_err(|e| Error::InvalidArgument(format!("progress bar: {e}")))?
            .progress_chars("=> "),
    );
    let mut cells = Vec::new();
    for pipeline in &pipelines {
        let c = &pipeline.crop;
        bar.set_message(format!("{} crop {}", c.method, c.crop));
        let tallies = tally_cell(oracle.as_ref(), &test_images, test.labels(), pipeline, spec)?;
        cells.push(CellResult {
            method: c.method,
            crop: c.crop,
            alpha: c.method.uses_alpha().then_some(c.alpha),
            view_size: c.view_size(w, h)?,
            images: test.len(),
            pairs_per_image: spec.views,
            shares: Shares::of(&tallies),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(LabelCheckResult {
        spec: spec.clone(),
        oracle: record,
        oracle_reused: reused,
        whole_image_accuracy: whole,
        cells,
        test_images: test.len(),
        seconds: start.elapsed().as_secs_f64(),
        adapter: gpu.adapter().to_string(),
    })
}

/// Draws `spec.views` pairs of every test image with `pipeline` and counts what the oracle
/// says of them, image by image.
fn tally_cell(
    oracle: &dyn Encoder,
    images: &PackedImages,
    labels: &[u32],
    pipeline: &ViewPipeline,
    spec: &LabelCheckSpec,
) -> Result<Vec<ImageTally>> {
    let [n, _, h, w] = images.shape();
    let c = &pipeline.crop;
    let mut rng = cell_rng(spec.seed, c.method, c.crop);
    let mut tallies = vec![ImageTally::default(); n];
    let indices: Vec<u32> = (0..n as u32).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        for _ in 0..spec.views {
            let plan = pipeline.plan(&mut rng, chunk, [w, h])?;
            let (first, second) = pipeline.run(images, &plan)?;
            let (p1, p2) = (
                oracle::predict(oracle, first)?,
                oracle::predict(oracle, second)?,
            );
            for (k, &image) in chunk.iter().enumerate() {
                let i = image as usize;
                tallies[i].add_pair([p1[k], p2[k]], labels[i], &plan.draws[k].boxes, [w, h]);
            }
        }
    }
    Ok(tallies)
}
