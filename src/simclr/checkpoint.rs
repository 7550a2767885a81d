//! Checkpoints: one safetensors file holding the encoder's parameters and batch-norm statistics,
//! the optimiser's state, and (as string metadata) the configuration, the epoch, the random
//! generator's position and the history so far; plus a JSON copy of the configuration and
//! history beside it for people and scripts. Both are written to a temporary name and renamed,
//! the safetensors file first: it alone is what `--resume` reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{read_file, write_atomically};
use crate::nn::Encoder;
use crate::tensor::Tensor;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const SIDECAR_FILE: &str = "checkpoint.json";

/// Tensors by name plus string metadata, as held on the CPU between the GPU and the file.
pub struct Checkpoint {
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    pub fn new() -> Checkpoint {
        Checkpoint {
            tensors: Vec::new(),
            metadata: HashMap::new(),
        }
    }

    /// Reads `t` back from the GPU under `name`.
    pub fn add(&mut self, name: impl Into<String>, t: &Tensor) -> Result<()> {
        self.tensors
            .push((name.into(), t.shape().to_vec(), t.to_vec()?));
        Ok(())
    }

    /// Stores values that live on the CPU (the guided crops' per-image guides).
    pub fn add_values(&mut self, name: impl Into<String>, shape: &[usize], values: Vec<f32>) {
        self.tensors.push((name.into(), shape.to_vec(), values));
    }

    /// The shape and values stored under `name`, or None when the checkpoint lacks it.
    pub fn values(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, shape, values)| (shape.as_slice(), values.as_slice()))
    }

    /// A tensor on the GPU, or None when the checkpoint lacks it.
    pub fn tensor(&self, gpu: &Gpu, name: &str) -> Option<Result<Tensor>> {
        self.values(name)
            .map(|(shape, values)| Tensor::from_slice(gpu, shape, values))
    }

    /// Copies the checkpoint's `name` into `t`, which must have the same shape.
    pub fn restore_into(&self, name: &str, t: &Tensor, path: &Path) -> Result<()> {
        let (shape, values) = self
            .values(name)
            .ok_or_else(|| corrupt(path, format!("has no tensor {name}")))?;
        if shape != t.shape() {
            return Err(corrupt(
                path,
                format!(
                    "{name} has shape {shape:?}, the model expects {:?}",
                    t.shape()
                ),
            ));
        }
        t.write(values)
    }

    /// An error naming the first tensor that holds a value that is not finite: a checkpoint
    /// to evaluate must not carry one (resuming one instead ends in the divergence check).
    pub fn check_finite(&self, path: &Path) -> Result<()> {
        for (name, _, values) in &self.tensors {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(corrupt(
                    path,
                    format!(
                        "{name} holds {} at element {i}: the file is damaged or was written by \
                         a run that diverged",
                        values[i]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Adds an encoder's parameters (`param/<name>`) and batch-norm statistics
    /// (`buffer/<name>`).
    pub fn add_encoder(&mut self, encoder: &dyn Encoder) -> Result<()> {
        for p in encoder.params() {
            self.add(format!("param/{}", p.name), &p.value)?;
        }
        for (name, t) in encoder.buffers() {
            self.add(format!("buffer/{name}"), &t)?;
        }
        Ok(())
    }

    /// Copies what [`Checkpoint::add_encoder`] stored into `encoder`.
    pub fn restore_encoder(&self, encoder: &dyn Encoder, path: &Path) -> Result<()> {
        for p in encoder.params() {
            self.restore_into(&format!("param/{}", p.name), &p.value, path)?;
        }
        for (name, t) in encoder.buffers() {
            self.restore_into(&format!("buffer/{name}"), &t, path)?;
        }
        Ok(())
    }

    pub fn meta(&self, key: &str, path: &Path) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| corrupt(path, format!("has no {key:?} entry")))
    }

    /// Writes `dir/checkpoint.safetensors` atomically.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(CHECKPOINT_FILE);
        let views = self
            .tensors
            .iter()
            .map(|(name, shape, values)| {
                TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(values))
                    .map(|v| (name.clone(), v))
                    .map_err(|e| corrupt(&path, format!("cannot store {name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, Some(self.metadata.clone()))
            .map_err(|e| corrupt(&path, format!("cannot serialise: {e}")))?;
        write_atomically(&path, &bytes)?;
        Ok(path)
    }

    /// Reads `dir/checkpoint.safetensors`.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(CHECKPOINT_FILE);
        if !path.is_file() {
            return Err(Error::File {
                path,
                detail: "no checkpoint here; run `taming pretrain --out DIR` first".into(),
            });
        }
        let bytes = read_file(&path)?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| corrupt(&path, format!("is not a safetensors file: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| corrupt(&path, format!("unreadable header: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(corrupt(&path, format!("{name} is not f32")));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.push((name, view.shape().to_vec(), values));
        }
        Ok(Checkpoint { tensors, metadata })
    }
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint::new()
    }
}

fn corrupt(path: &Path, detail: String) -> Error {
    Error::File {
        path: path.to_path_buf(),
        detail,
    }
}
