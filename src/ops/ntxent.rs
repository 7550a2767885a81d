//! NT-Xent, SimCLR's contrastive loss (`shaders/ntxent.wgsl`): for N images and their two view
//! embeddings z1, z2 `[N, d]`, the mean over the 2N rows of the cross-entropy that picks each
//! row's partner view among the 2N - 1 other rows, on cosine similarities divided by a
//! temperature. No memory bank; the diagonal is excluded.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Kernel, Shader, WG};
use crate::ops::elementwise::transpose;
use crate::ops::l2norm::l2_normalize;
use crate::ops::linear::{linear_flops, matmul_strided};
use crate::ops::reduce::sum_channels;
use crate::ops::view::{concat_rows, split_rows};
use crate::tensor::Tensor;

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        rows: u32,
        half: u32,
        inv_tau: f32,
        _pad: u32,
    }
}

fn kernel(entry: &'static str) -> Kernel {
    Kernel::new(Shader::NtXent, entry).with("WG", WG)
}

/// What the backward pass needs from the forward pass.
pub struct NtXentSaved {
    /// The stacked normalised embeddings `[2N, d]`.
    pub u: Tensor,
    /// Cosine similarities `[2N, 2N]`.
    pub sim: Tensor,
    /// Per-row log-sum-exp of the logits.
    pub lse: Tensor,
    params: Params,
}

/// The loss `[1]` of L2-normalised view embeddings `u1`, `u2` (`[N, d]` each).
pub fn ntxent_forward(u1: &Tensor, u2: &Tensor, temperature: f32) -> Result<(Tensor, NtXentSaved)> {
    let (s1, s2) = (u1.shape(), u2.shape());
    if s1.len() != 2 || s1 != s2 || s1[0] == 0 {
        return Err(Error::shape(
            "nt_xent",
            format!("view embeddings {s1:?} and {s2:?} must both be [N, d] with N >= 1"),
        ));
    }
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "NT-Xent temperature {temperature} must be positive"
        )));
    }
    let rows = 2 * s1[0];
    let params = Params {
        rows: rows as u32,
        half: s1[0] as u32,
        inv_tau: 1.0 / temperature,
        _pad: 0,
    };
    let u = concat_rows(u1, u2)?;
    // U U^T from U^T [d, 2N]: both operands then run contiguous along the output's rows and
    // columns, which the broadcast products need (U itself is contiguous along d only).
    let d = s1[1];
    let ut = transpose(&u)?;
    let sim = matmul_strided(
        &ut,
        (1, rows),
        &ut,
        (rows, 1),
        rows,
        rows,
        d,
        "NT-Xent similarities",
    )?;
    let gpu = u.gpu();
    let row_loss = Tensor::uninit(gpu, &[rows], "NT-Xent row losses")?;
    let lse = Tensor::uninit(gpu, &[rows], "NT-Xent log-sum-exp")?;
    gpu.dispatch(
        &kernel("ntxent_rows"),
        &params,
        &[
            Access::Read(sim.buffer()),
            Access::Write(row_loss.buffer()),
            Access::Write(lse.buffer()),
        ],
        (rows as u32).div_ceil(WG),
    )?;
    let loss = sum_channels(&row_loss, rows, 1, 1, 1.0 / rows as f32)?;
    Ok((
        loss,
        NtXentSaved {
            u,
            sim,
            lse,
            params,
        },
    ))
}

/// dL/du1, dL/du2 for the upstream gradient `dloss` `[1]`.
pub fn ntxent_backward(saved: &NtXentSaved, dloss: &Tensor) -> Result<(Tensor, Tensor)> {
    let rows = saved.params.rows as usize;
    let gpu = saved.u.gpu();
    let m = Tensor::uninit(gpu, &[rows, rows], "NT-Xent pair gradient")?;
    gpu.dispatch(
        &kernel("ntxent_pair_grad"),
        &saved.params,
        &[
            Access::Read(saved.sim.buffer()),
            Access::Read(saved.lse.buffer()),
            Access::Read(dloss.buffer()),
            Access::Write(m.buffer()),
        ],
        ((rows * rows) as u32).div_ceil(WG),
    )?;
    // C = U U^T: dL/dU = (G + G^T) U = M U. M is symmetric, so it is read as its transpose,
    // contiguous along dU's rows (the broadcast products), U contiguous along d.
    let d = saved.u.shape()[1];
    let du = matmul_strided(
        &m,
        (1, rows),
        &saved.u,
        (d, 1),
        rows,
        d,
        rows,
        "NT-Xent input gradient",
    )?;
    split_rows(&du, rows / 2)
}

/// Records NT-Xent of raw view embeddings `z1`, `z2` on the tape (L2 normalisation included).
pub fn nt_xent(g: &Graph, z1: Var, z2: Var, temperature: f32) -> Result<Var> {
    let u1 = l2_normalize(g, z1)?;
    let u2 = l2_normalize(g, z2)?;
    let (loss, saved) = ntxent_forward(&g.value(u1), &g.value(u2), temperature)?;
    // The similarity matrix U U^T forward, M U backward.
    let [rows, d] = [saved.u.shape()[0], saved.u.shape()[1]];
    let flops = linear_flops(rows, d, rows);
    saved.u.gpu().add_flops(flops);
    Ok(g.record("nt_xent", loss, &[u1, u2], move |dloss, _| {
        dloss.gpu().add_flops(flops);
        let (d1, d2) = ntxent_backward(&saved, dloss)?;
        Ok(vec![Some(d1), Some(d2)])
    }))
}
