//! Shape changes: reshape (no kernel, the gradient is reshaped back), and stacking or splitting
//! rows (buffer copies recorded in the step's encoder).

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn reshape(g: &Graph, x: Var, shape: &[usize]) -> Result<Var> {
    let xv = g.value(x);
    let y = xv.reshape(shape)?;
    let back = xv.shape().to_vec();
    Ok(g.record("reshape", y, &[x], move |dy, _| {
        Ok(vec![Some(dy.reshape(&back)?)])
    }))
}

/// Rows `start..start + count` of `x`, recorded on the tape; the gradient is zero elsewhere.
pub fn rows(g: &Graph, x: Var, start: usize, count: usize) -> Result<Var> {
    let xv = g.value(x);
    let y = slice_rows(&xv, start, count)?;
    let full = xv.shape().to_vec();
    Ok(g.record("rows", y, &[x], move |dy, _| {
        let dx = Tensor::zeros(dy.gpu(), &full)?;
        let offset = 4 * (start * dy.numel() / count) as u64;
        dy.gpu()
            .copy(dy.buffer(), 0, dx.buffer(), offset, 4 * dy.numel() as u64);
        Ok(vec![Some(dx)])
    }))
}

/// `[a; b]`: two tensors of the same row width stacked along the first axis (two copies).
pub fn concat_rows(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (sa, sb) = (a.shape(), b.shape());
    if sa.is_empty() || sa[1..] != sb[1..] || sb.is_empty() {
        return Err(Error::shape(
            "concat_rows",
            format!("{sa:?} and {sb:?} differ beyond the first axis"),
        ));
    }
    let mut shape = sa.to_vec();
    shape[0] += sb[0];
    let out = Tensor::uninit(a.gpu(), &shape, "concatenated rows")?;
    let (bytes_a, bytes_b) = (4 * a.numel() as u64, 4 * b.numel() as u64);
    a.gpu().copy(a.buffer(), 0, out.buffer(), 0, bytes_a);
    a.gpu().copy(b.buffer(), 0, out.buffer(), bytes_a, bytes_b);
    Ok(out)
}

/// The first `rows` rows of `x` and the rest, as two new tensors (two copies).
pub fn split_rows(x: &Tensor, rows: usize) -> Result<(Tensor, Tensor)> {
    let s = x.shape();
    if s.is_empty() || rows == 0 || rows >= s[0] {
        return Err(Error::shape(
            "split_rows",
            format!("cannot split {s:?} after row {rows}"),
        ));
    }
    let (mut sa, mut sb) = (s.to_vec(), s.to_vec());
    sa[0] = rows;
    sb[0] = s[0] - rows;
    let a = Tensor::uninit(x.gpu(), &sa, "split rows")?;
    let b = Tensor::uninit(x.gpu(), &sb, "split rows")?;
    let bytes_a = 4 * a.numel() as u64;
    x.gpu().copy(x.buffer(), 0, a.buffer(), 0, bytes_a);
    x.gpu()
        .copy(x.buffer(), bytes_a, b.buffer(), 0, 4 * b.numel() as u64);
    Ok((a, b))
}

/// Rows `start..start + count` of `x` as a new tensor (one copy).
pub fn slice_rows(x: &Tensor, start: usize, count: usize) -> Result<Tensor> {
    let s = x.shape();
    if s.is_empty() || count == 0 || start + count > s[0] {
        return Err(Error::shape(
            "slice_rows",
            format!("rows {start}..{} of {s:?}", start + count),
        ));
    }
    let row: usize = s[1..].iter().product();
    let mut shape = s.to_vec();
    shape[0] = count;
    let out = Tensor::uninit(x.gpu(), &shape, "row slice")?;
    let offset = (4 * start * row) as u64;
    x.gpu().copy(
        x.buffer(),
        offset,
        out.buffer(),
        0,
        (4 * count * row) as u64,
    );
    Ok(out)
}
