//! The launcher of the update kernels of `shaders/optim.wgsl`.

use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy, Default)]
    pub(crate) struct UpdateParams {
        pub n: u32,
        pub first: u32,
        pub _pad: [u32; 2],
        pub lr: f32,
        pub momentum: f32,
        pub weight_decay: f32,
        pub eps: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub bc1: f32,
        pub bc2: f32,
    }
}

/// Runs `entry` on `param` in place with its gradient and one or two state tensors.
pub(crate) fn update(
    entry: &'static str,
    mut p: UpdateParams,
    param: &Tensor,
    grad: &Tensor,
    state: &[&Tensor],
) -> Result<()> {
    if grad.shape() != param.shape() || state.iter().any(|s| s.shape() != param.shape()) {
        return Err(Error::shape(
            "optimizer",
            format!(
                "gradient {:?} does not match parameter {:?}",
                grad.shape(),
                param.shape()
            ),
        ));
    }
    p.n = param.numel() as u32;
    let mut bufs = vec![Access::Write(param.buffer()), Access::Read(grad.buffer())];
    bufs.extend(state.iter().map(|s| Access::Write(s.buffer())));
    let k = Kernel::new(Shader::Optim, entry).with("WG", WG);
    param.gpu().dispatch(&k, &p, &bufs, p.n.div_ceil(4 * WG))
}
