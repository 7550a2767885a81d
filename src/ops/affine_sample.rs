//! Bilinear affine sampling (`shaders/affine_sample.wgsl`): one view per 2x3 matrix, read from
//! f32 images or from the u8 dataset resident on the GPU, zero outside a per-view rectangle.
//!
//! Matrices are in pixel units: output pixel (j, i) reads the source at
//! `(m0 j + m1 i + m2, m3 j + m4 i + m5)`, pixel centres at integer coordinates. That is
//! PyTorch's `affine_grid` + `grid_sample(mode='bilinear', padding_mode='zeros',
//! align_corners=False)` written without the [-1, 1] normalisation; [`pixel_matrix_from_theta`]
//! and [`theta_from_pixel_matrix`] convert exactly between the two, and
//! [`theta_gradient_from_pixel`] carries a gradient over. Pixel units make integer crop boxes
//! exact: every tap weight is 0 or 1 and the view is the slice, bit for bit.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::{uniform_struct, Access, Gpu, Kernel, Shader, WG};
use crate::tensor::{DType, Tensor};

/// Words per view in the view-information tensor: the sampling rectangle (x0, y0, x1, y1), the
/// image index, two blur weights (used by the augment pipeline) and one spare word.
pub const VIEW_INFO_WORDS: usize = 8;

/// What one view reads: which image, and the rectangle outside which samples are zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewInfo {
    /// `[x0, y0, x1, y1)` in source pixels; it is clipped to the image by the kernel.
    pub rect: [i32; 4],
    pub image: u32,
    /// Centre and side weights of the view's 3x3 Gaussian blur (augment pipeline only).
    pub blur: [f32; 2],
}

impl ViewInfo {
    /// A view of `image` with no rectangle beyond the image itself and no blur.
    pub fn whole(image: u32) -> ViewInfo {
        ViewInfo {
            rect: [i32::MIN, i32::MIN, i32::MAX, i32::MAX],
            image,
            blur: [1.0, 0.0],
        }
    }
}

/// Packs view information into the `[V, VIEW_INFO_WORDS]` words the kernels read.
pub fn pack_view_info(views: &[ViewInfo]) -> Vec<u32> {
    let mut words = Vec::with_capacity(views.len() * VIEW_INFO_WORDS);
    for v in views {
        words.extend(v.rect.iter().map(|&r| r as u32));
        words.extend([v.image, v.blur[0].to_bits(), v.blur[1].to_bits(), 0]);
    }
    words
}

/// u8 images (N, C, H, W) packed four bytes per word, split over as many buffers as it takes
/// because one storage binding is limited in size (128 MiB on lavapipe; CIFAR-10's training set
/// is 150 MB). The kernels bind two parts at a time; more are sampled a pair per dispatch.
#[derive(Clone)]
pub struct PackedImages {
    parts: Vec<Tensor>,
    images_per_part: usize,
    shape: [usize; 4],
}

impl PackedImages {
    /// Uploads `bytes` (N x C x H x W, NCHW order) once; they stay on the GPU.
    pub fn upload(gpu: &Gpu, bytes: &[u8], shape: [usize; 4]) -> Result<PackedImages> {
        let limit = gpu.limits().max_storage_buffer_binding_size as usize;
        Self::upload_in_parts_of(gpu, bytes, shape, limit)
    }

    /// As [`PackedImages::upload`] with parts of at most `limit` bytes (tests use it to
    /// exercise the layouts of several parts with small data).
    pub fn upload_in_parts_of(
        gpu: &Gpu,
        bytes: &[u8],
        shape: [usize; 4],
        limit: usize,
    ) -> Result<PackedImages> {
        let [n, c, h, w] = shape;
        let per_image = c * h * w;
        if per_image == 0 || bytes.len() != n * per_image || n == 0 {
            return Err(Error::InvalidArgument(format!(
                "{} bytes are not a non-empty stack of images of shape {shape:?}",
                bytes.len()
            )));
        }
        // Parts hold a multiple of four images, so that every part starts on a word.
        let fit = (limit / per_image) / 4 * 4;
        if fit == 0 {
            return Err(Error::InvalidArgument(format!(
                "one image of shape {:?} is larger than a storage binding ({limit} bytes)",
                [c, h, w]
            )));
        }
        let images_per_part = fit.min(n.next_multiple_of(4));
        let parts = bytes
            .chunks(images_per_part * per_image)
            .map(|chunk| {
                let mut words = vec![0u32; chunk.len().div_ceil(4)];
                bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..chunk.len()]
                    .copy_from_slice(chunk);
                Tensor::from_u32(gpu, &[words.len()], &words)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PackedImages {
            parts,
            images_per_part,
            shape,
        })
    }

    /// (N, C, H, W).
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    pub fn gpu(&self) -> &Gpu {
        self.parts[0].gpu()
    }

    /// How many buffers hold the images.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }
}

/// The images a view is sampled from.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// f32 images `[N, C, H, W]`, used as they are.
    F32(&'a Tensor),
    /// The resident u8 dataset, read as `byte / 255`.
    U8(&'a PackedImages),
}

impl Source<'_> {
    fn shape(&self) -> [usize; 4] {
        match self {
            Source::F32(t) => {
                let s = t.shape();
                [s[0], s[1], s[2], s[3]]
            }
            Source::U8(p) => p.shape,
        }
    }
    fn gpu(&self) -> &Gpu {
        match self {
            Source::F32(t) => t.gpu(),
            Source::U8(p) => p.parts[0].gpu(),
        }
    }
    /// The windows of two parts each kernel dispatch binds: the two source bindings (the same
    /// buffer twice where only one is left) and the images they hold, `[lo, hi)`. One window
    /// for f32 images and for data sets of one or two parts; the last window is open-ended.
    fn windows(&self) -> Vec<Window<'_>> {
        match self {
            Source::F32(t) => vec![Window {
                parts: [t, t],
                lo: 0,
                hi: u32::MAX,
            }],
            Source::U8(p) => {
                let pairs = p.parts.len().div_ceil(2);
                p.parts
                    .chunks(2)
                    .enumerate()
                    .map(|(i, pair)| Window {
                        parts: [&pair[0], pair.last().unwrap_or(&pair[0])],
                        lo: (2 * i * p.images_per_part) as u32,
                        hi: match i + 1 == pairs {
                            true => u32::MAX,
                            false => (2 * (i + 1) * p.images_per_part) as u32,
                        },
                    })
                    .collect()
            }
        }
    }
}

/// Two bound parts of a source and the images `[lo, hi)` they hold.
struct Window<'a> {
    parts: [&'a Tensor; 2],
    lo: u32,
    hi: u32,
}

uniform_struct! {
    #[derive(Clone, Copy)]
    pub(crate) struct Params {
        views: u32,
        channels: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        images: u32,
        images_per_part: u32,
        value_scale: f32,
        window_lo: u32,
        window_hi: u32,
        _pad: u32,
    }
}

impl Params {
    fn in_window(&self, w: &Window) -> Params {
        Params {
            window_lo: w.lo,
            window_hi: w.hi,
            ..*self
        }
    }
}

fn kernel(entry: &'static str, u8_source: bool) -> Kernel {
    Kernel::new(Shader::AffineSample, entry)
        .with("WG", WG)
        .with("U8_SOURCE", u8_source as u32)
}

/// Every kernel of the family binds the same buffers in the same slots: matrices, view words,
/// the two source parts, the output, and (backward passes) the gradient or partial sums read.
fn bindings<'a>(
    matrices: &'a Tensor,
    info: &'a Tensor,
    parts: [&'a Tensor; 2],
    out: &'a Tensor,
    read: Option<&'a Tensor>,
) -> Vec<Access<'a>> {
    let mut b = vec![
        Access::Read(matrices.buffer()),
        Access::Read(info.buffer()),
        Access::Read(parts[0].buffer()),
        Access::Read(parts[1].buffer()),
        Access::Write(out.buffer()),
    ];
    b.extend(read.map(|t| Access::Read(t.buffer())));
    b
}

/// Checks shapes and builds the kernel parameters.
fn params(
    op: &'static str,
    source: &Source,
    matrices: &Tensor,
    info: &Tensor,
    out_hw: [usize; 2],
) -> Result<Params> {
    if let Source::F32(t) = source {
        if t.shape().len() != 4 || t.dtype() != DType::F32 {
            return Err(Error::shape(
                op,
                format!("images {:?} must be f32 NCHW", t.shape()),
            ));
        }
    }
    let [n, c, h, w] = source.shape();
    let v = matrices.shape().first().copied().unwrap_or(0);
    if matrices.shape() != [v, 6] || matrices.dtype() != DType::F32 {
        return Err(Error::shape(
            op,
            format!("matrices {:?} must be f32 [views, 6]", matrices.shape()),
        ));
    }
    if info.shape() != [v, VIEW_INFO_WORDS] || info.dtype() != DType::U32 {
        return Err(Error::shape(
            op,
            format!(
                "view information {:?} must be u32 [{v}, {VIEW_INFO_WORDS}] (see pack_view_info)",
                info.shape()
            ),
        ));
    }
    if v == 0 || out_hw[0] == 0 || out_hw[1] == 0 {
        return Err(Error::shape(
            op,
            format!("{v} views of {out_hw:?} pixels: nothing to sample"),
        ));
    }
    let images_per_part = match source {
        Source::F32(_) => n,
        Source::U8(p) => p.images_per_part,
    };
    Ok(Params {
        views: v as u32,
        channels: c as u32,
        in_h: h as u32,
        in_w: w as u32,
        out_h: out_hw[0] as u32,
        out_w: out_hw[1] as u32,
        images: n as u32,
        images_per_part: images_per_part as u32,
        value_scale: match source {
            Source::F32(_) => 1.0,
            Source::U8(_) => 1.0 / 255.0,
        },
        window_lo: 0,
        window_hi: u32::MAX,
        _pad: 0,
    })
}

/// Views `[V, C, h, w]`. Image indices in `info` must be below N (a larger one reads image N-1's
/// neighbourhood or zeros; the callers build them from the data set's own length).
pub fn affine_sample_forward(
    source: Source,
    matrices: &Tensor,
    info: &Tensor,
    out_hw: [usize; 2],
) -> Result<Tensor> {
    let p = params("affine_sample", &source, matrices, info, out_hw)?;
    let gpu = source.gpu();
    let out = Tensor::uninit(
        gpu,
        &[p.views as usize, p.channels as usize, out_hw[0], out_hw[1]],
        "sampled views",
    )?;
    let k = kernel("sample_forward", matches!(source, Source::U8(_)));
    for window in source.windows() {
        gpu.dispatch(
            &k,
            &p.in_window(&window),
            &bindings(matrices, info, window.parts, &out, None),
            (p.views * p.out_h * p.out_w).div_ceil(WG),
        )?;
    }
    Ok(out)
}

fn check_dy(op: &'static str, dy: &Tensor, p: &Params) -> Result<()> {
    let want = [
        p.views as usize,
        p.channels as usize,
        p.out_h as usize,
        p.out_w as usize,
    ];
    if dy.shape() != want {
        return Err(Error::shape(
            op,
            format!("gradient {:?} must be {want:?}", dy.shape()),
        ));
    }
    Ok(())
}

/// dL/dM `[V, 6]` for the output gradient `dy` `[V, C, h, w]`.
pub fn affine_sample_backward_matrix(
    source: Source,
    matrices: &Tensor,
    info: &Tensor,
    dy: &Tensor,
) -> Result<Tensor> {
    let s = dy.shape();
    let out_hw = [
        s.get(2).copied().unwrap_or(0),
        s.get(3).copied().unwrap_or(0),
    ];
    let p = params(
        "affine_sample_backward_matrix",
        &source,
        matrices,
        info,
        out_hw,
    )?;
    check_dy("affine_sample_backward_matrix", dy, &p)?;
    let gpu = source.gpu();
    let u8_source = matches!(source, Source::U8(_));
    let rows = Tensor::uninit(
        gpu,
        &[p.views as usize, out_hw[0], 6],
        "matrix gradient rows",
    )?;
    let dm = Tensor::uninit(gpu, &[p.views as usize, 6], "matrix gradient")?;
    let windows = source.windows();
    let k = kernel("backward_matrix_rows", u8_source);
    for window in &windows {
        gpu.dispatch(
            &k,
            &p.in_window(window),
            &bindings(matrices, info, window.parts, &rows, Some(dy)),
            (p.views * p.out_h).div_ceil(WG),
        )?;
    }
    // The sum stage uses only `out` (dm) and binding 6 (the row partials).
    gpu.dispatch(
        &kernel("backward_matrix_sum", u8_source),
        &p,
        &bindings(matrices, info, windows[0].parts, &dm, Some(&rows)),
        (p.views * 6).div_ceil(WG),
    )?;
    Ok(dm)
}

/// dL/dimages `[N, C, H, W]` (f32 sources; the u8 dataset is data and has no gradient).
pub fn affine_sample_backward_image(
    images: &Tensor,
    matrices: &Tensor,
    info: &Tensor,
    dy: &Tensor,
) -> Result<Tensor> {
    let s = dy.shape();
    let out_hw = [
        s.get(2).copied().unwrap_or(0),
        s.get(3).copied().unwrap_or(0),
    ];
    let source = Source::F32(images);
    let p = params(
        "affine_sample_backward_image",
        &source,
        matrices,
        info,
        out_hw,
    )?;
    check_dy("affine_sample_backward_image", dy, &p)?;
    let dx = images.like("sampled images gradient")?;
    images.gpu().dispatch(
        &kernel("backward_image", false),
        &p,
        &bindings(matrices, info, [images, images], &dx, Some(dy)),
        (images.numel() as u32).div_ceil(WG),
    )?;
    Ok(dx)
}

/// Records sampling of f32 images on the tape, differentiable in the images and the matrices.
pub fn affine_sample(
    g: &Graph,
    images: Var,
    matrices: Var,
    info: &Tensor,
    out_hw: [usize; 2],
) -> Result<Var> {
    let (x, m, info) = (g.value(images), g.value(matrices), info.clone());
    let y = affine_sample_forward(Source::F32(&x), &m, &info, out_hw)?;
    Ok(
        g.record("affine_sample", y, &[images, matrices], move |dy, needs| {
            let dx = match needs[0] {
                true => Some(affine_sample_backward_image(&x, &m, &info, dy)?),
                false => None,
            };
            let dm = match needs[1] {
                true => Some(affine_sample_backward_matrix(
                    Source::F32(&x),
                    &m,
                    &info,
                    dy,
                )?),
                false => None,
            };
            Ok(vec![dx, dm])
        }),
    )
}

/// Records sampling of the resident u8 images on the tape, differentiable in the matrices
/// (the images are data): the learnt crop placement's views.
pub fn affine_sample_resident(
    g: &Graph,
    images: &PackedImages,
    matrices: Var,
    info: &Tensor,
    out_hw: [usize; 2],
) -> Result<Var> {
    let (m, info, images) = (g.value(matrices), info.clone(), images.clone());
    let y = affine_sample_forward(Source::U8(&images), &m, &info, out_hw)?;
    Ok(g.record("affine_sample", y, &[matrices], move |dy, _| {
        let dm = affine_sample_backward_matrix(Source::U8(&images), &m, &info, dy)?;
        Ok(vec![Some(dm)])
    }))
}

/// The pixel matrix of a PyTorch `affine_grid` theta (row-major 2x3) for a source of
/// `in_hw` = (H, W) pixels and an output of `out_hw` = (h, w) pixels.
pub fn pixel_matrix_from_theta(theta: [f64; 6], in_hw: [usize; 2], out_hw: [usize; 2]) -> [f64; 6] {
    let [hh, ww] = in_hw.map(|v| v as f64);
    let [h, w] = out_hw.map(|v| v as f64);
    let row = |t: &[f64], size: f64| {
        [
            size * t[0] / w,
            size * t[1] / h,
            size / 2.0 * (t[0] * (1.0 / w - 1.0) + t[1] * (1.0 / h - 1.0) + t[2] + 1.0) - 0.5,
        ]
    };
    let (x, y) = (row(&theta[..3], ww), row(&theta[3..], hh));
    [x[0], x[1], x[2], y[0], y[1], y[2]]
}

/// The inverse of [`pixel_matrix_from_theta`].
pub fn theta_from_pixel_matrix(m: [f64; 6], in_hw: [usize; 2], out_hw: [usize; 2]) -> [f64; 6] {
    let [hh, ww] = in_hw.map(|v| v as f64);
    let [h, w] = out_hw.map(|v| v as f64);
    let row = |m: &[f64], size: f64| {
        let (t0, t1) = (m[0] * w / size, m[1] * h / size);
        let t2 = (m[2] + 0.5) * 2.0 / size - 1.0 - t0 * (1.0 / w - 1.0) - t1 * (1.0 / h - 1.0);
        [t0, t1, t2]
    };
    let (x, y) = (row(&m[..3], ww), row(&m[3..], hh));
    [x[0], x[1], x[2], y[0], y[1], y[2]]
}

/// dL/dtheta from dL/dM: the transpose of the (linear) map theta -> M.
pub fn theta_gradient_from_pixel(dm: [f64; 6], in_hw: [usize; 2], out_hw: [usize; 2]) -> [f64; 6] {
    let [hh, ww] = in_hw.map(|v| v as f64);
    let [h, w] = out_hw.map(|v| v as f64);
    let row = |d: &[f64], size: f64| {
        [
            d[0] * size / w + d[2] * size / 2.0 * (1.0 / w - 1.0),
            d[1] * size / h + d[2] * size / 2.0 * (1.0 / h - 1.0),
            d[2] * size / 2.0,
        ]
    };
    let (x, y) = (row(&dm[..3], ww), row(&dm[3..], hh));
    [x[0], x[1], x[2], y[0], y[1], y[2]]
}
