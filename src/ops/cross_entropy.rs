//! Mean softmax cross-entropy with integer labels (`shaders/cross_entropy.wgsl`).

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader};
use crate::ops::reduce::sum_channels;
use crate::tensor::{DType, Tensor};

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        rows: u32,
        classes: u32,
        _pad: [u32; 2],
    }
}

const CE_WG: u32 = 64;

fn params(logits: &Tensor, labels: &Tensor) -> Result<Params> {
    let (s, l) = (logits.shape(), labels.shape());
    if s.len() != 2 || l != [s[0]] || labels.dtype() != DType::U32 {
        return Err(Error::shape(
            "cross_entropy",
            format!("logits {s:?} must be [N, C] and labels {l:?} u32 [N]"),
        ));
    }
    Ok(Params {
        rows: s[0] as u32,
        classes: s[1] as u32,
        _pad: [0; 2],
    })
}

/// The mean loss, a one-element tensor.
pub fn cross_entropy_forward(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let p = params(logits, labels)?;
    let rows = Tensor::uninit(logits.gpu(), &[p.rows as usize], "per-row loss")?;
    let k = Kernel::new(Shader::CrossEntropy, "cross_entropy_forward").with("WG", CE_WG);
    let bufs = [
        Access::Read(logits.buffer()),
        Access::Read(labels.buffer()),
        Access::Write(rows.buffer()),
    ];
    logits
        .gpu()
        .dispatch(&k, &p, &bufs, p.rows.div_ceil(CE_WG))?;
    sum_channels(&rows, 1, 1, p.rows as usize, 1.0 / p.rows as f32)?.reshape(&[1])
}

/// The logits' gradient, given the loss gradient `dloss` (one element, read on the GPU).
pub fn cross_entropy_backward(logits: &Tensor, labels: &Tensor, dloss: &Tensor) -> Result<Tensor> {
    let p = params(logits, labels)?;
    let dlogits = logits.like("logits gradient")?;
    let k = Kernel::new(Shader::CrossEntropy, "cross_entropy_backward").with("WG", CE_WG);
    let bufs = [
        Access::Read(logits.buffer()),
        Access::Read(labels.buffer()),
        Access::Read(dloss.buffer()),
        Access::Write(dlogits.buffer()),
    ];
    logits
        .gpu()
        .dispatch(&k, &p, &bufs, p.rows.div_ceil(CE_WG))?;
    Ok(dlogits)
}

pub fn cross_entropy(g: &Graph, logits: Var, labels: &Tensor) -> Result<Var> {
    let lv = g.value(logits);
    let loss = cross_entropy_forward(&lv, labels)?;
    let labels = labels.clone();
    Ok(g.record("cross_entropy", loss, &[logits], move |dloss, _| {
        Ok(vec![Some(cross_entropy_backward(&lv, &labels, dloss)?)])
    }))
}
