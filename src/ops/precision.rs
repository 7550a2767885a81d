//! Copies between f32 and f16 storage (`cast_storage` in `shaders/elementwise.wgsl`), and the tape op
//! that stores a convolution's operand as f16 under `--precision f16`.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{Access, Kernel, Shader, Storage};
use crate::ops::elementwise::launch_counted;
use crate::tensor::{require_f16, DType, Precision, Tensor};

fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    let gpu = x.gpu();
    if x.dtype() == DType::U32 || to == DType::U32 {
        return Err(Error::InvalidArgument(
            "cast: a u32 tensor has no floating-point values to convert".into(),
        ));
    }
    let (from, into) = (x.dtype().storage(), to.storage());
    if from == Storage::F16 || into == Storage::F16 {
        require_f16(gpu)?;
    }
    let y = Tensor::uninit_typed(gpu, x.shape(), to, "cast")?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let kernel = Kernel::new(Shader::Elementwise, "cast_storage")
        .storing("From", from)
        .storing("To", into)
        .with("SATURATE", u32::from(into == Storage::F16));
    let bufs = [Access::Read(x.buffer()), Access::Write(y.buffer())];
    launch_counted(kernel, x.numel(), &bufs, gpu)?;
    Ok(y)
}

/// `x` stored as f16: each value rounded to an f16 (WGSL rounds to one of the two nearest),
/// values beyond +-65504 saturating there.
pub fn to_f16(x: &Tensor) -> Result<Tensor> {
    cast(x, DType::F16)
}

/// `x` (f16) widened to f32, exactly.
pub fn to_f32(x: &Tensor) -> Result<Tensor> {
    cast(x, DType::F32)
}

/// Records `x` stored as `precision` (x itself where it already is). The gradient passes
/// through unchanged and stays f32: rounding is treated as the identity, as mixed-precision
/// training does.
pub fn store_as(g: &Graph, x: Var, precision: Precision) -> Result<Var> {
    let value = g.value(x);
    let wanted = precision.dtype();
    if value.dtype() == wanted {
        return Ok(x);
    }
    let y = cast(&value, wanted)?;
    Ok(g.record("store_as", y, &[x], |dy, _| Ok(vec![Some(dy.clone())])))
}
