//! The blur-and-normalise kernel of the view pipeline (`shaders/augment.wgsl`): a per-view 3x3
//! Gaussian blur with reflect padding, then per-channel normalisation, writing the two view
//! batches as two tensors. Its backward (the transposed blur, scaled) is needed only where the
//! crop placement is learnt (`stn`): there the views depend on the localiser.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::ops::affine_sample::VIEW_INFO_WORDS;
use crate::tensor::{DType, Tensor};

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        views: u32,
        channels: u32,
        h: u32,
        w: u32,
        split: u32,
        _pad: [u32; 3],
        mean: [f32; 4],
        inv_std: [f32; 4],
    }
}

/// Channels the kernel normalises (the statistics travel in two vec4 uniforms).
pub const MAX_CHANNELS: usize = 4;

/// `sampled` `[V, C, h, w]` -> (views `[split, C, h, w]`, views `[V - split, C, h, w]`); the
/// blur weights come from each view's information words (see `ops::affine_sample::ViewInfo`).
pub fn blur_normalize_forward(
    sampled: &Tensor,
    info: &Tensor,
    split: usize,
    mean: &[f32],
    std: &[f32],
) -> Result<(Tensor, Tensor)> {
    if split == 0 || split >= sampled.shape().first().copied().unwrap_or(0) {
        return Err(Error::shape(
            "blur_normalize",
            format!(
                "split {split} must leave views of {:?} on both sides",
                sampled.shape()
            ),
        ));
    }
    let (a, b) = launch(sampled, info, split, mean, std)?;
    Ok((a, b.expect("a split leaves a second batch")))
}

/// As [`blur_normalize_forward`] with every view in one output (feature extraction).
pub fn blur_normalize_single(
    sampled: &Tensor,
    info: &Tensor,
    mean: &[f32],
    std: &[f32],
) -> Result<Tensor> {
    let v = sampled.shape().first().copied().unwrap_or(0);
    Ok(launch(sampled, info, v, mean, std)?.0)
}

/// dL/dsampled `[V, C, h, w]` for the gradient `dy` of [`blur_normalize_single`]'s output.
pub fn blur_normalize_backward(dy: &Tensor, info: &Tensor, std: &[f32]) -> Result<Tensor> {
    let mean = vec![0.0; std.len()];
    let v = dy.shape().first().copied().unwrap_or(0);
    Ok(launch_entry("blur_normalize_backward", dy, info, v, &mean, std)?.0)
}

/// Records [`blur_normalize_single`] on the tape, differentiable in the sampled views.
pub fn blur_normalize(
    g: &Graph,
    sampled: Var,
    info: &Tensor,
    mean: &[f32],
    std: &[f32],
) -> Result<Var> {
    let y = blur_normalize_single(&g.value(sampled), info, mean, std)?;
    let (info, std) = (info.clone(), std.to_vec());
    Ok(g.record("blur_normalize", y, &[sampled], move |dy, _| {
        Ok(vec![Some(blur_normalize_backward(dy, &info, &std)?)])
    }))
}

/// Views below `split` go to the first output; the second exists only if some are left.
fn launch(
    sampled: &Tensor,
    info: &Tensor,
    split: usize,
    mean: &[f32],
    std: &[f32],
) -> Result<(Tensor, Option<Tensor>)> {
    launch_entry("blur_normalize", sampled, info, split, mean, std)
}

fn launch_entry(
    entry: &'static str,
    sampled: &Tensor,
    info: &Tensor,
    split: usize,
    mean: &[f32],
    std: &[f32],
) -> Result<(Tensor, Option<Tensor>)> {
    let s = sampled.shape();
    let op = "blur_normalize";
    if s.len() != 4 || s[1] > MAX_CHANNELS || mean.len() != s[1] || std.len() != s[1] {
        return Err(Error::shape(
            op,
            format!(
                "views {s:?} need 1..={MAX_CHANNELS} channels and one mean and std per channel \
                 (got {} and {})",
                mean.len(),
                std.len()
            ),
        ));
    }
    let (v, c, h, w) = (s[0], s[1], s[2], s[3]);
    if info.shape() != [v, VIEW_INFO_WORDS] || info.dtype() != DType::U32 {
        return Err(Error::shape(
            op,
            format!(
                "view information {:?} must be u32 [{v}, {VIEW_INFO_WORDS}]",
                info.shape()
            ),
        ));
    }
    if split == 0 || split > v {
        return Err(Error::shape(
            op,
            format!("split {split} must be in 1..={v}"),
        ));
    }
    if let Some(k) = std.iter().position(|&x| !(x > 0.0 && x.is_finite())) {
        return Err(Error::InvalidArgument(format!(
            "normalisation std of channel {k} is {}; it must be positive",
            std[k]
        )));
    }
    let mut p = Params {
        views: v as u32,
        channels: c as u32,
        h: h as u32,
        w: w as u32,
        split: split as u32,
        _pad: [0; 3],
        mean: [0.0; 4],
        inv_std: [0.0; 4],
    };
    for k in 0..c {
        p.mean[k] = mean[k];
        p.inv_std[k] = 1.0 / std[k];
    }
    let gpu = sampled.gpu();
    let a = Tensor::uninit(gpu, &[split, c, h, w], "first views")?;
    // With no second batch the kernel never writes its second output: bind a placeholder.
    let b = match split < v {
        true => Tensor::uninit(gpu, &[v - split, c, h, w], "second views")?,
        false => Tensor::uninit(gpu, &[1], "no second views")?,
    };
    gpu.dispatch(
        &Kernel::new(Shader::Augment, entry).with("WG", WG),
        &p,
        &[
            Access::Read(info.buffer()),
            Access::Read(sampled.buffer()),
            Access::Write(a.buffer()),
            Access::Write(b.buffer()),
        ],
        ((v * h * w) as u32).div_ceil(WG),
    )?;
    Ok((a, (split < v).then_some(b)))
}
