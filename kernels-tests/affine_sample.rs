mod common;

use approx::assert_abs_diff_eq;
use common::*;
use rand::rngs::StdRng;
use rand::Rng;
use taming::ops::affine_sample::{
    self as sample, pack_view_info, PackedImages, Source, ViewInfo, VIEW_INFO_WORDS,
};
use taming::reference::affine_sample::{self as reference, RefView, SampleDims};
use taming::{Gpu, Tensor};

/// A random problem: views with rotated/scaled/shifted matrices that reach outside the image,
/// rectangles that cut some of them, and several views of the same image.
struct Problem {
    d: SampleDims,
    views: Vec<RefView>,
    m: Vec<[f64; 6]>,
}

fn random_problem(r: &mut StdRng, d: SampleDims, views: usize) -> Problem {
    let (w, h) = (d.in_w as f64, d.in_h as f64);
    let mut m = Vec::new();
    let mut vs = Vec::new();
    for v in 0..views {
        let mut x = |lo: f64, hi: f64| r.random_range(lo..hi) as f32 as f64;
        m.push([
            x(0.4, 1.6),
            x(-0.5, 0.5),
            x(-3.0, w + 1.0),
            x(-0.5, 0.5),
            x(0.4, 1.6),
            x(-3.0, h + 1.0),
        ]);
        let rect = if v % 3 == 0 {
            [-100, -100, 100, 100]
        } else {
            let x0 = r.random_range(-2..d.in_w as i64);
            let y0 = r.random_range(-2..d.in_h as i64);
            [x0, y0, x0 + r.random_range(1..8), y0 + r.random_range(1..8)]
        };
        vs.push(RefView {
            image: r.random_range(0..d.images),
            rect,
        });
    }
    Problem { d, views: vs, m }
}

impl Problem {
    fn tensors(&self, gpu: &Gpu) -> (Tensor, Tensor) {
        let m: Vec<f32> = self.m.iter().flatten().map(|&x| x as f32).collect();
        let info: Vec<ViewInfo> = self
            .views
            .iter()
            .map(|v| ViewInfo {
                rect: v.rect.map(|r| r as i32),
                ..ViewInfo::whole(v.image as u32)
            })
            .collect();
        (
            Tensor::from_slice(gpu, &[self.views.len(), 6], &m).unwrap(),
            Tensor::from_u32(
                gpu,
                &[self.views.len(), VIEW_INFO_WORDS],
                &pack_view_info(&info),
            )
            .unwrap(),
        )
    }
    fn image_shape(&self) -> [usize; 4] {
        [self.d.images, self.d.channels, self.d.in_h, self.d.in_w]
    }
    fn out_hw(&self) -> [usize; 2] {
        [self.d.out_h, self.d.out_w]
    }
    fn out_len(&self) -> usize {
        self.views.len() * self.d.channels * self.d.out_h * self.d.out_w
    }
}

fn dims(images: usize, channels: usize, in_hw: [usize; 2], out_hw: [usize; 2]) -> SampleDims {
    SampleDims {
        images,
        channels,
        in_h: in_hw[0],
        in_w: in_hw[1],
        out_h: out_hw[0],
        out_w: out_hw[1],
    }
}

const SHAPES: [(usize, usize, [usize; 2], [usize; 2], usize); 4] = [
    (1, 1, [1, 1], [1, 1], 1),
    (3, 3, [9, 11], [5, 7], 7),
    (2, 1, [28, 28], [20, 20], 5),
    (4, 3, [32, 32], [14, 14], 33),
];

#[test]
fn forward_of_f32_images_matches_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(40);
    for (n, c, in_hw, out_hw, v) in SHAPES {
        let p = random_problem(&mut r, dims(n, c, in_hw, out_hw), v);
        let x = data(&mut r, n * c * in_hw[0] * in_hw[1]);
        let (m, info) = p.tensors(&gpu);
        let xt = upload(&gpu, &p.image_shape(), &x);
        let y = sample::affine_sample_forward(Source::F32(&xt), &m, &info, out_hw).unwrap();
        assert_eq!(y.shape(), [v, c, out_hw[0], out_hw[1]]);
        assert_rel_close(
            &format!("{n}x{c}x{in_hw:?} -> {v} views {out_hw:?}"),
            &download(&y),
            &reference::affine_sample(&x, &p.d, &p.views, &p.m),
            1e-5,
        );
    }
}

/// u8 sources in one part, two parts, and four (two windows of two bound parts, sampled by one
/// dispatch each), forced with small part sizes: the views and their matrix gradient match the
/// reference whichever part their image lives in.
#[test]
fn u8_images_match_reference_in_one_two_and_four_parts() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(41);
    let d = dims(13, 3, [9, 11], [6, 5]);
    let p = random_problem(&mut r, d, 41);
    let bytes: Vec<u8> = (0..13 * 3 * 9 * 11).map(|_| r.random()).collect();
    let x: Vec<f64> = bytes
        .iter()
        .map(|&b| (b as f32 * (1.0f32 / 255.0)) as f64)
        .collect();
    let want = reference::affine_sample(&x, &p.d, &p.views, &p.m);
    let dy = data(&mut r, p.out_len());
    let (_, want_dm) = reference::affine_sample_backward(&x, &p.d, &p.views, &p.m, &dy);
    let (m, info) = p.tensors(&gpu);
    let dyt = upload(&gpu, &[41, 3, 6, 5], &dy);
    let image = 3 * 9 * 11;
    for (part_bytes, parts) in [(1 << 20, 1), (8 * image, 2), (4 * image, 4)] {
        let packed =
            PackedImages::upload_in_parts_of(&gpu, &bytes, p.image_shape(), part_bytes).unwrap();
        assert_eq!(packed.parts(), parts);
        let y = sample::affine_sample_forward(Source::U8(&packed), &m, &info, p.out_hw()).unwrap();
        assert_rel_close(&format!("{parts} part(s)"), &download(&y), &want, 1e-6);
        let dm =
            sample::affine_sample_backward_matrix(Source::U8(&packed), &m, &info, &dyt).unwrap();
        assert_rel_close(
            &format!("{parts} part(s) d/dM"),
            &download(&dm),
            &want_dm.concat(),
            1e-4,
        );
    }
}

/// A data set larger than this adapter's storage binding limit stays resident in several
/// parts, and views of its first image, of the images on both sides of each part boundary and
/// of its last image read the right bytes (whole-image views at their own size are exact).
#[test]
fn a_data_set_over_the_binding_limit_is_resident_and_sampled_exactly() {
    let Some(gpu) = gpu() else { return };
    let limit = gpu.limits().max_storage_buffer_binding_size as usize;
    let (c, h, w) = (1, 64, 64);
    let per_image = c * h * w;
    // Past the limit by a few images; capped so that a device with a large binding limit does
    // not allocate gigabytes here (there the part size is forced to the cap instead).
    let cap = 160 << 20;
    let part_limit = limit.min(cap / 2);
    let n = part_limit / per_image + 5;
    let value = |i: usize| ((i * 7 + i / per_image * 13) % 251) as u8;
    let bytes: Vec<u8> = (0..n * per_image).map(value).collect();
    let packed = PackedImages::upload_in_parts_of(&gpu, &bytes, [n, c, h, w], part_limit).unwrap();
    assert!(
        packed.parts() >= 2,
        "{} images in {} part(s)",
        n,
        packed.parts()
    );
    let per_part = part_limit / per_image / 4 * 4;
    let mut images = vec![0, 1, n - 1];
    for boundary in (per_part..n).step_by(per_part) {
        images.extend([boundary - 1, boundary]);
    }
    let views: Vec<ViewInfo> = images.iter().map(|&i| ViewInfo::whole(i as u32)).collect();
    let identity: Vec<f32> = images
        .iter()
        .flat_map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        .collect();
    let m = Tensor::from_slice(&gpu, &[images.len(), 6], &identity).unwrap();
    let info = Tensor::from_u32(
        &gpu,
        &[images.len(), VIEW_INFO_WORDS],
        &pack_view_info(&views),
    )
    .unwrap();
    let y = sample::affine_sample_forward(Source::U8(&packed), &m, &info, [h, w]).unwrap();
    let got = download(&y);
    for (v, &i) in images.iter().enumerate() {
        for k in 0..per_image {
            let want = (value(i * per_image + k) as f32 * (1.0f32 / 255.0)) as f64;
            assert_eq!(
                got[v * per_image + k],
                want,
                "image {i} of {n}, element {k}"
            );
        }
    }
}

#[test]
fn backward_matches_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(42);
    for (n, c, in_hw, out_hw, v) in SHAPES {
        let p = random_problem(&mut r, dims(n, c, in_hw, out_hw), v);
        let x = data(&mut r, n * c * in_hw[0] * in_hw[1]);
        let dy = data(&mut r, p.out_len());
        let (want_dx, want_dm) = reference::affine_sample_backward(&x, &p.d, &p.views, &p.m, &dy);
        let (m, info) = p.tensors(&gpu);
        let xt = upload(&gpu, &p.image_shape(), &x);
        let dyt = upload(&gpu, &[v, c, out_hw[0], out_hw[1]], &dy);
        let dm = sample::affine_sample_backward_matrix(Source::F32(&xt), &m, &info, &dyt).unwrap();
        let dx = sample::affine_sample_backward_image(&xt, &m, &info, &dyt).unwrap();
        let name = format!("{n}x{c}x{in_hw:?} -> {v} views {out_hw:?}");
        assert_rel_close(
            &format!("{name} d/dM"),
            &download(&dm),
            &want_dm.concat(),
            1e-4,
        );
        assert_rel_close(&format!("{name} d/dx"), &download(&dx), &want_dx, 1e-5);
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut r = rng(43);
    let p = random_problem(&mut r, dims(2, 2, [6, 7], [4, 5]), 5);
    let x = data(&mut r, 2 * 2 * 6 * 7);
    let up = data(&mut r, p.out_len());
    let (dx, dm) = reference::affine_sample_backward(&x, &p.d, &p.views, &p.m, &up);
    // The sampled value is linear in the image: any step works.
    let all: Vec<usize> = (0..x.len()).collect();
    let numeric_dx = finite_difference(
        &mut |x| dot(&up, &reference::affine_sample(x, &p.d, &p.views, &p.m)),
        &x,
        &all,
        1e-3,
    );
    assert_rel_close("reference d/dx", &dx, &numeric_dx, 1e-9);
    // In the matrix it is piecewise smooth; the step is far below the distance of these random
    // coordinates to the nearest integer.
    let flat_m: Vec<f64> = p.m.concat();
    let numeric_dm = finite_difference(
        &mut |fm| {
            let m: Vec<[f64; 6]> = fm.chunks(6).map(|c| c.try_into().unwrap()).collect();
            dot(&up, &reference::affine_sample(&x, &p.d, &p.views, &m))
        },
        &flat_m,
        &(0..flat_m.len()).collect::<Vec<_>>(),
        1e-7,
    );
    assert_rel_close("reference d/dM", &dm.concat(), &numeric_dm, 1e-6);

    let Some(gpu) = gpu() else { return };
    let (m, info) = p.tensors(&gpu);
    let xt = upload(&gpu, &p.image_shape(), &x);
    let upt = upload(&gpu, &[5, 2, 4, 5], &up);
    let g_dx = sample::affine_sample_backward_image(&xt, &m, &info, &upt).unwrap();
    let g_dm = sample::affine_sample_backward_matrix(Source::F32(&xt), &m, &info, &upt).unwrap();
    assert_rel_close("GPU d/dx", &download(&g_dx), &numeric_dx, 1e-5);
    assert_rel_close("GPU d/dM", &download(&g_dm), &numeric_dm, 1e-4);
}

/// The pixel matrices mean what PyTorch's theta means: the pixel form, the transcription of
/// affine_grid + grid_sample, and the conversions agree.
#[test]
fn pixel_matrices_are_pytorch_affine_grid_semantics() {
    let mut r = rng(44);
    let p = random_problem(&mut r, dims(2, 3, [9, 13], [7, 5]), 9);
    let x = data(&mut r, 2 * 3 * 9 * 13);
    let (in_hw, out_hw) = ([9, 13], [7, 5]);
    let theta: Vec<[f64; 6]> =
        p.m.iter()
            .map(|&m| sample::theta_from_pixel_matrix(m, in_hw, out_hw))
            .collect();
    for (m, t) in p.m.iter().zip(&theta) {
        let back = sample::pixel_matrix_from_theta(*t, in_hw, out_hw);
        for k in 0..6 {
            assert!(
                (back[k] - m[k]).abs() < 1e-12,
                "round trip {m:?} -> {back:?}"
            );
        }
    }
    assert_rel_close(
        "pixel form vs affine_grid + grid_sample",
        &reference::affine_sample(&x, &p.d, &p.views, &p.m),
        &reference::grid_sample_theta(&x, &p.d, &p.views, &theta),
        1e-12,
    );
    // The identity theta at the same size reads every pixel in place.
    let id = sample::pixel_matrix_from_theta([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], in_hw, in_hw);
    for (k, want) in [1.0, 0.0, 0.0, 0.0, 1.0, 0.0].into_iter().enumerate() {
        assert_abs_diff_eq!(id[k], want, epsilon = 1e-12);
    }
    // The gradient with respect to theta, carried over from the pixel form.
    let up = data(&mut r, p.out_len());
    let (_, dm) = reference::affine_sample_backward(&x, &p.d, &p.views, &p.m, &up);
    let dtheta: Vec<f64> = dm
        .iter()
        .flat_map(|&g| sample::theta_gradient_from_pixel(g, in_hw, out_hw))
        .collect();
    let flat: Vec<f64> = theta.concat();
    let numeric = finite_difference(
        &mut |ft| {
            let t: Vec<[f64; 6]> = ft.chunks(6).map(|c| c.try_into().unwrap()).collect();
            dot(&up, &reference::grid_sample_theta(&x, &p.d, &p.views, &t))
        },
        &flat,
        &(0..flat.len()).collect::<Vec<_>>(),
        1e-8,
    );
    assert_rel_close("d/dtheta", &dtheta, &numeric, 1e-5);
}

#[test]
fn bad_shapes_and_oversized_images_are_clear_errors() {
    let Some(gpu) = gpu() else { return };
    let x = Tensor::zeros(&gpu, &[1, 1, 4, 4]).unwrap();
    let m = Tensor::zeros(&gpu, &[2, 6]).unwrap();
    let info = Tensor::from_u32(&gpu, &[1, VIEW_INFO_WORDS], &[0; VIEW_INFO_WORDS]).unwrap();
    let e = sample::affine_sample_forward(Source::F32(&x), &m, &info, [2, 2])
        .err()
        .expect("mismatched view counts must fail");
    assert!(e.to_string().contains("view information"), "{e}");
    let e = PackedImages::upload_in_parts_of(&gpu, &[0; 3 * 16], [3, 1, 4, 4], 8)
        .err()
        .expect("an image larger than a part must fail");
    assert!(
        e.to_string().contains("larger than a storage binding"),
        "{e}"
    );
}
