//! A tensor is a shape plus a GPU buffer. Clones share the buffer; ops write new tensors, and
//! only optimisers and batch-norm running statistics update a buffer in place.

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBuffer, Storage};
use crate::names::string_enum;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    /// Half precision, two to a 32-bit word (a convolution's operands under `--precision f16`).
    F16,
}

impl DType {
    /// What a shader's storage alias for a float tensor of this type is set to (f16 for F16).
    pub fn storage(self) -> Storage {
        match self {
            DType::F16 => Storage::F16,
            DType::F32 | DType::U32 => Storage::F32,
        }
    }

    /// The bytes a tensor of `numel` elements occupies (f16 rounded up to whole 32-bit words,
    /// which is what a WGSL storage array of f16 is bound in).
    fn bytes(self, numel: u64) -> Option<u64> {
        match self {
            DType::F32 | DType::U32 => numel.checked_mul(4),
            DType::F16 => numel.div_ceil(2).checked_mul(4),
        }
    }
}

string_enum! {
    /// What the convolutions' operands (activations and weights) are stored in. Sums are f32
    /// either way, and so are the master weights, the optimiser's state and every gradient.
    pub enum Precision as "precision" {
        /// Single precision throughout.
        F32 = "f32",
        /// Each convolution's input, weights and output stored as f16 (half the bytes read,
        /// written and kept for the backward pass), sums in f32. Needs an adapter with
        /// SHADER_F16; the tiled convolution is the only one that reads and writes f16.
        F16 = "f16",
    }
}

impl Precision {
    /// The type tensors of this precision are stored as.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }
}

impl Precision {
    /// An error unless `gpu` can run this precision.
    pub fn check(self, gpu: &Gpu) -> Result<()> {
        match self {
            Precision::F32 => Ok(()),
            Precision::F16 => require_f16(gpu),
        }
    }
}

/// An error unless `gpu` can store f16, saying what to do instead.
pub fn require_f16(gpu: &Gpu) -> Result<()> {
    match gpu.has_f16() {
        true => Ok(()),
        false => Err(Error::InvalidArgument(format!(
            "precision f16 needs an adapter with f16 shaders (wgpu's SHADER_F16), which {} \
             lacks; use --precision f32",
            gpu.adapter()
        ))),
    }
}

// string_enum! takes no attributes on its variants, so no #[default].
#[allow(clippy::derivable_impls)]
impl Default for Precision {
    fn default() -> Precision {
        Precision::F32
    }
}

#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    buf: Rc<GpuBuffer>,
    gpu: Gpu,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// An error unless `given` values fill a tensor of `shape` (`kind`: "", "u32 ", "f16 ").
fn expect_values(shape: &[usize], given: usize, kind: &str) -> Result<()> {
    match numel_of(shape) == given {
        true => Ok(()),
        false => Err(Error::InvalidArgument(format!(
            "{kind}tensor of shape {shape:?} needs {} values, got {given}",
            numel_of(shape)
        ))),
    }
}

impl Tensor {
    /// A new tensor with undefined contents (NaN when the device is in poison mode).
    pub fn uninit(gpu: &Gpu, shape: &[usize], what: &str) -> Result<Tensor> {
        Self::uninit_typed(gpu, shape, DType::F32, what)
    }

    pub(crate) fn uninit_typed(
        gpu: &Gpu,
        shape: &[usize],
        dtype: DType,
        what: &str,
    ) -> Result<Tensor> {
        let bytes = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .and_then(|numel| dtype.bytes(numel))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{what}: shape {shape:?} is too large to address"))
            })?;
        let buf = gpu.alloc(bytes, what)?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            buf,
            gpu: gpu.clone(),
        })
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let t = Self::uninit(gpu, shape, "zeros")?;
        gpu.clear(&t.buf);
        Ok(t)
    }

    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = Self::uninit(gpu, shape, "full")?;
        gpu.fill_u32(&t.buf, value.to_bits())?;
        Ok(t)
    }

    pub fn from_slice(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        expect_values(shape, data.len(), "")?;
        let t = Self::uninit(gpu, shape, "upload")?;
        gpu.upload(&t.buf, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// A tensor of unsigned integers (class labels, indices).
    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        expect_values(shape, data.len(), "u32 ")?;
        let t = Self::uninit_typed(gpu, shape, DType::U32, "upload u32")?;
        gpu.upload(&t.buf, bytemuck::cast_slice(data));
        Ok(t)
    }

    /// A tensor of f16 values: `data` rounded to the nearest f16 (tests and references).
    pub fn from_slice_f16(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        expect_values(shape, data.len(), "f16 ")?;
        let t = Self::uninit_typed(gpu, shape, DType::F16, "upload f16")?;
        let mut halves: Vec<u16> = data
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        halves.resize(data.len().div_ceil(2) * 2, 0);
        gpu.upload(&t.buf, bytemuck::cast_slice(&halves));
        Ok(t)
    }

    /// Overwrites the contents with `data` (same number of elements).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if self.dtype != DType::F32 {
            return Err(Error::InvalidArgument(format!(
                "writing f32 values into a {:?} tensor",
                self.dtype
            )));
        }
        if data.len() != self.numel() {
            return Err(Error::InvalidArgument(format!(
                "writing {} values into a tensor of shape {:?}",
                data.len(),
                self.shape
            )));
        }
        self.gpu.upload(&self.buf, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Reads the values back (submits pending work and waits for it); f16 values widened.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match self.dtype {
            DType::F32 => {
                let bytes = self.gpu.download(&self.buf, self.buf.len_bytes())?;
                Ok(bytemuck::pod_collect_to_vec(&bytes))
            }
            DType::F16 => {
                let bytes = self.gpu.download(&self.buf, self.buf.len_bytes())?;
                let halves: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
                Ok(halves[..self.numel()]
                    .iter()
                    .map(|&h| half::f16::from_bits(h).to_f32())
                    .collect())
            }
            DType::U32 => Err(Error::InvalidArgument(format!(
                "to_vec on a {:?} tensor",
                self.dtype
            ))),
        }
    }

    /// The single value of a one-element tensor (a loss).
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::InvalidArgument(format!(
                "item() on a tensor of shape {:?}",
                self.shape
            )));
        }
        Ok(self.to_vec()?[0])
    }

    /// The same buffer seen with another shape of equal size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!("cannot view {:?} as {shape:?}", self.shape),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// A tensor of the same shape with undefined contents, for an op's output.
    pub fn like(&self, what: &str) -> Result<Tensor> {
        Self::uninit(&self.gpu, &self.shape, what)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        numel_of(&self.shape)
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    pub fn buffer(&self) -> &GpuBuffer {
        &self.buf
    }
    /// `self + other`, element-wise, as a new tensor (how the tape sums gradients).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        if self.shape != other.shape {
            return Err(Error::shape(
                "add",
                format!("shapes differ: {:?} and {:?}", self.shape, other.shape),
            ));
        }
        if self.dtype != DType::F32 || other.dtype != DType::F32 {
            return Err(Error::InvalidArgument(format!(
                "add: {:?} and {:?} tensors; it sums f32 tensors",
                self.dtype, other.dtype
            )));
        }
        let out = self.like("sum")?;
        self.gpu
            .add_f32(&self.buf, &other.buf, &out.buf, self.numel())?;
        Ok(out)
    }

    /// True when both tensors share one buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Rc::ptr_eq(&self.buf, &other.buf)
    }
}
