//! Pictures of what each cropping strategy does: a contact sheet of images with their two
//! crop boxes and the two views the GPU pipeline makes of them, and a heat map of where crop
//! centres fall over many draws.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::augment::{Normalization, ViewPipeline};
use crate::crop::{CropBox, CropSpec, ImageGuide, Method};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::experiment::canvas::{heat_color, Canvas, Rgb};
use crate::gpu::Gpu;
use crate::nn::Encoder;
use crate::ops::stn::{view_matrices_forward, DRAW_WORDS, PLACEMENT_WORDS};
use crate::reference::stn::placement as placement_of;
use crate::simclr::saliency::saliency_of;
use crate::simclr::stn::{draw_views, LearntPlacement};
use crate::tensor::Tensor;

const BACKGROUND: Rgb = [24, 24, 28];
const PANEL: Rgb = [64, 64, 72];
const TEXT: Rgb = [235, 235, 235];
const BOX_COLORS: [Rgb; 2] = [[240, 70, 70], [70, 200, 240]];

/// Upscaling factor that makes an image of `side` pixels about `target` pixels wide.
fn scale_for(side: usize, target: usize) -> usize {
    (target / side.max(1)).max(1)
}

/// A contact sheet taller than this many rows of views is no longer a picture to look at.
pub const MAX_SHEET_IMAGES: usize = 256;
/// Enough for a smooth heat map; more only takes longer.
pub const MAX_HEATMAP_DRAWS: usize = 10_000_000;

/// Whether `draws` makes a heat map (checked before any picture is written).
pub fn check_heatmap_draws(draws: usize) -> Result<()> {
    if draws == 0 || draws > MAX_HEATMAP_DRAWS {
        return Err(Error::InvalidArgument(format!(
            "--draws {draws}: the heat map needs between 1 and {MAX_HEATMAP_DRAWS} draws"
        )));
    }
    Ok(())
}

/// The `count` images shown: the first image of each class in class order, then the second...
fn pick_images(data: &Dataset, count: usize) -> Vec<usize> {
    let mut by_class = vec![Vec::new(); data.classes()];
    for (i, &l) in data.labels().iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut picked = Vec::new();
    for round in 0.. {
        let before = picked.len();
        for list in &by_class {
            if let Some(&i) = list.get(round) {
                if picked.len() < count {
                    picked.push(i);
                }
            }
        }
        if picked.len() == count || picked.len() == before {
            return picked;
        }
    }
    picked
}

fn rgb_of(values: &[f32], channels: usize, plane: usize, at: usize) -> Rgb {
    let byte = |c: usize| (values[c * plane + at].clamp(0.0, 1.0) * 255.0).round() as u8;
    if channels >= 3 {
        [byte(0), byte(1), byte(2)]
    } else {
        [byte(0); 3]
    }
}

/// A trained encoder whose saliency places a guided method's crops in a contact sheet.
pub struct SaliencySource<'a> {
    pub encoder: &'a dyn Encoder,
    /// The statistics the encoder was trained with.
    pub normalization: Normalization,
    /// A heat-map row or column is hot above this.
    pub threshold: f64,
}

/// A trained localiser whose placements a contact sheet shows (`stn`).
pub struct LearntSource {
    pub learnt: LearntPlacement,
    /// The statistics the run was trained with (the localiser reads normalised images).
    pub normalization: Normalization,
}

/// Rows of: the image in a margin of half its size with both crop boxes drawn, then (with a
/// `saliency` source) the encoder's heat map with its hot box and centroid (+), then its two
/// views as the GPU sampling kernel produces them (no flip, blur or normalisation, so that the
/// crop alone is visible; zero padding shows black). With a `learnt` source the boxes are the
/// localiser's, and the image panel also shows its Gaussian: the mean (+) and a box of one
/// spread around it. A guided method without a source draws as before its first refresh, a
/// learnt one as GCC.
#[allow(clippy::too_many_arguments)]
pub fn contact_sheet(
    gpu: &Gpu,
    data: &Dataset,
    spec: &CropSpec,
    count: usize,
    seed: u64,
    title: &str,
    saliency: Option<&SaliencySource>,
    learnt: Option<&LearntSource>,
) -> Result<Canvas> {
    if count == 0 || data.is_empty() {
        return Err(Error::InvalidArgument(
            "the contact sheet needs at least one image".into(),
        ));
    }
    if count > MAX_SHEET_IMAGES {
        return Err(Error::InvalidArgument(format!(
            "--images {count}: a contact sheet shows at most {MAX_SHEET_IMAGES} images"
        )));
    }
    let [c, h, w] = data.shape();
    let picked = pick_images(data, count);
    let shown = data.select(&picked);
    let pipeline = ViewPipeline {
        crop: *spec,
        flip: false,
        blur_sigma: None,
        normalization: Normalization {
            mean: vec![0.0; c],
            std: vec![1.0; c],
        },
    };
    let indices: Vec<u32> = (0..picked.len() as u32).collect();
    let images = shown.upload(gpu)?;
    let found = match saliency {
        Some(src) => {
            let eval = ViewPipeline::evaluation(src.normalization.clone());
            let found = saliency_of(src.encoder, &images, &indices, &eval, src.threshold, true)?;
            let guides: Vec<ImageGuide> = found
                .summaries
                .iter()
                .map(|r| ImageGuide::from_words(r))
                .collect();
            Some((guides, found.heat.unwrap_or_default()))
        }
        None => None,
    };
    let guides = found.as_ref().map(|(g, _)| g.as_slice());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut plan = pipeline.plan_guided(&mut rng, &indices, [w, h], guides)?;
    let mut gaussians = Vec::new();
    if let Some(src) = learnt {
        gaussians = learnt_plan(
            gpu,
            src,
            &pipeline,
            &images,
            &indices,
            [w, h],
            &mut rng,
            &mut plan,
        )?;
    }
    let (a, b) = pipeline.run(&images, &plan)?;
    let views = [a.to_vec()?, b.to_vec()?];
    let [vw, vh] = plan.view_wh;

    let s = scale_for(w.max(h), 112) as i64;
    let (mx, my) = ((w / 2) as i64, (h / 2) as i64);
    let panel_w = (w as i64 + 2 * mx) * s;
    let row_h = (h as i64 + 2 * my) * s;
    let (gap, header) = (20i64, 56i64);
    let title_w = 2 * gap + title.len() as i64 * 16;
    // The heat-map panel, when there is one, sits between the image and the views.
    let heat_x = panel_w + 2 * gap;
    let views_at = match found {
        Some(_) => heat_x + panel_w,
        None => panel_w,
    };
    let width = (views_at + 2 * (gap + vw as i64 * s) + 2 * gap).max(title_w);
    let height = header + picked.len() as i64 * (row_h + gap) + gap;
    let mut sheet = Canvas::new(width as usize, height as usize, BACKGROUND);
    sheet.text(gap, 12, title, 2, TEXT);
    let view_x = [views_at + 2 * gap, views_at + 3 * gap + vw as i64 * s];
    sheet.text(gap, 36, "image + boxes", 1, TEXT);
    if found.is_some() {
        sheet.text(heat_x, 36, "heat, hot box, centroid", 1, TEXT);
    }
    sheet.text(view_x[0], 36, "view 1", 1, BOX_COLORS[0]);
    sheet.text(view_x[1], 36, "view 2", 1, BOX_COLORS[1]);
    for (k, &image) in picked.iter().enumerate() {
        let y = header + k as i64 * (row_h + gap);
        let mut panel = Canvas::new(panel_w as usize, row_h as usize, PANEL);
        let pixels: Vec<f32> = data
            .image(image)
            .iter()
            .map(|&b| b as f32 / 255.0)
            .collect();
        panel.image(mx * s, my * s, w, h, s as usize, |x, y| {
            rgb_of(&pixels, c, h * w, y * w + x)
        });
        for (bx, color) in plan.draws[k].boxes.iter().zip(BOX_COLORS) {
            let (bw, bh) = (bx.width as i64 * s, bx.height as i64 * s);
            panel.outline((mx + bx.left) * s, (my + bx.top) * s, bw, bh, 2, color);
        }
        if let Some((mean, spread)) = gaussians.get(k) {
            let at = |v: f64, margin: i64| margin * s + (v * s as f64).round() as i64;
            let (cx, cy) = (at(mean[0], mx), at(mean[1], my));
            let (sx, sy) = ((spread[0] * s as f64) as i64, (spread[1] * s as f64) as i64);
            panel.outline(cx - sx, cy - sy, 2 * sx, 2 * sy, 1, TEXT);
            panel.fill(cx - 6, cy - 1, 13, 3, TEXT);
            panel.fill(cx - 1, cy - 6, 3, 13, TEXT);
        }
        sheet.blit(&panel, gap, y);
        if let Some((guides, heat)) = &found {
            let map = &heat[k * h * w..(k + 1) * h * w];
            let mut panel = Canvas::new(panel_w as usize, row_h as usize, PANEL);
            panel.image(mx * s, my * s, w, h, s as usize, |x, y| {
                heat_color(map[y * w + x] as f64)
            });
            let [x0, y0, x1, y1] = guides[k].hot_box.map(f64::from);
            let (bx, by) = ((x0 * w as f64) as i64, (y0 * h as f64) as i64);
            // The box's last hot column and row are inside it.
            let (bw, bh) = (
                (x1 * w as f64) as i64 + 1 - bx,
                (y1 * h as f64) as i64 + 1 - by,
            );
            panel.outline((mx + bx) * s, (my + by) * s, bw * s, bh * s, 2, TEXT);
            let [cx, cy] = guides[k].centroid.map(|v| ((v as f64) * s as f64) as i64);
            let (cx, cy) = (mx * s + cx, my * s + cy);
            panel.fill(cx - 6, cy - 1, 13, 3, BOX_COLORS[0]);
            panel.fill(cx - 1, cy - 6, 3, 13, BOX_COLORS[0]);
            sheet.blit(&panel, heat_x, y);
        }
        for (v, (&x, color)) in view_x.iter().zip(BOX_COLORS).enumerate() {
            let vy = y + (row_h - vh as i64 * s) / 2;
            let values = &views[v][k * c * vh * vw..(k + 1) * c * vh * vw];
            sheet.outline(
                x - 2,
                vy - 2,
                vw as i64 * s + 4,
                vh as i64 * s + 4,
                2,
                color,
            );
            sheet.image(x, vy, vw, vh, s as usize, |px, py| {
                rgb_of(values, c, vh * vw, py * vw + px)
            });
        }
    }
    Ok(sheet)
}

/// Replaces the boxes and matrices of `plan` with the trained localiser's placements (views
/// at continuous positions, zeros outside the image); returns each image's Gaussian (mean and
/// spread, in pixels).
#[allow(clippy::too_many_arguments)]
fn learnt_plan(
    gpu: &Gpu,
    src: &LearntSource,
    pipeline: &ViewPipeline,
    images: &crate::ops::affine_sample::PackedImages,
    indices: &[u32],
    image_wh: [usize; 2],
    rng: &mut ChaCha8Rng,
    plan: &mut crate::augment::ViewPlan,
) -> Result<Vec<([f64; 2], [f64; 2])>> {
    let b = indices.len();
    let eval = ViewPipeline::evaluation(src.normalization.clone());
    let whole = eval.run_single(
        images,
        &crate::augment::ViewPlan::whole_images(indices, image_wh),
    )?;
    let r = src.learnt.outputs(&whole)?;
    let (draws, info) = draw_views(rng, pipeline, indices, image_wh);
    let rt = Tensor::from_slice(gpu, &[b, PLACEMENT_WORDS], &r)?;
    let dt = Tensor::from_slice(gpu, &[2 * b, DRAW_WORDS], &draws)?;
    let (m, _) = view_matrices_forward(&rt, &dt, &src.learnt.placement)?;
    plan.matrices = m.to_vec()?;
    plan.info = info;
    plan.view_wh = src.learnt.placement.view_wh;
    let [vw, vh] = plan.view_wh;
    for (k, draw) in plan.draws.iter_mut().enumerate() {
        for (view, v) in [k, b + k].into_iter().enumerate() {
            // No flips here: the translations are the boxes' top-left corners.
            let (left, top) = (plan.matrices[6 * v + 2], plan.matrices[6 * v + 5]);
            draw.boxes[view] = CropBox {
                left: left.round() as i64,
                top: top.round() as i64,
                width: vw as u32,
                height: vh as u32,
            };
        }
    }
    let r64: Vec<f64> = r.iter().map(|&v| v as f64).collect();
    Ok(r64
        .chunks(PLACEMENT_WORDS)
        .map(|rk| placement_of(rk, &src.learnt.placement))
        .collect())
}

/// One panel per strategy: how often a crop centre falls in each pixel of the image and a
/// margin of one image size around it, over `draws` images (two views each), on a square-root
/// colour scale. The white frame is the image.
pub fn centre_heatmap(
    image_wh: [usize; 2],
    crop: f64,
    alpha: f64,
    draws: usize,
    seed: u64,
) -> Result<Canvas> {
    check_heatmap_draws(draws)?;
    let [w, h] = image_wh;
    let (gw, gh) = (3 * w, 3 * h);
    let s = scale_for(gw.max(gh), 256) as i64;
    let (panel_w, panel_h) = (gw as i64 * s, gh as i64 * s);
    let (gap, header) = (20i64, 64i64);
    // The guided and learnt methods' centres depend on each image and the trained run: their
    // sheets (`taming crops --checkpoint`) show them.
    let methods: Vec<Method> = Method::ALL
        .iter()
        .copied()
        .filter(|m| !m.follows_training())
        .collect();
    let width = gap + methods.len() as i64 * (panel_w + gap);
    let mut sheet = Canvas::new(
        width as usize,
        (header + panel_h + gap) as usize,
        BACKGROUND,
    );
    sheet.text(
        gap,
        12,
        &format!("crop centres, {draws} images x 2 views: crop {crop}, alpha {alpha}"),
        2,
        TEXT,
    );
    for (k, method) in methods.into_iter().enumerate() {
        let spec = CropSpec::new(method, crop, alpha)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut counts = vec![0u32; gw * gh];
        for _ in 0..draws {
            for b in spec.draw_pair(&mut rng, w, h)?.boxes {
                let cx = b.left as f64 + b.width as f64 / 2.0 + w as f64;
                let cy = b.top as f64 + b.height as f64 / 2.0 + h as f64;
                if cx >= 0.0 && cy >= 0.0 && (cx as usize) < gw && (cy as usize) < gh {
                    counts[cy as usize * gw + cx as usize] += 1;
                }
            }
        }
        // Colour: the square root of the count (the tails stay visible), saturating at the 99th
        // percentile of the visited pixels, so that a few spikes
        // (CGCC's clamped corners, RRC's whole-image fallback) do not hide the rest.
        let mut visited: Vec<u32> = counts.iter().copied().filter(|&n| n > 0).collect();
        visited.sort_unstable();
        let max = visited
            .get(visited.len() * 99 / 100)
            .copied()
            .unwrap_or(1)
            .max(1) as f64;
        let x = gap + k as i64 * (panel_w + gap);
        sheet.text(x, 40, method.name(), 2, TEXT);
        sheet.image(x, header, gw, gh, s as usize, |px, py| {
            heat_color((counts[py * gw + px] as f64 / max).sqrt())
        });
        sheet.outline(
            x + w as i64 * s,
            header + h as i64 * s,
            w as i64 * s,
            h as i64 * s,
            1,
            TEXT,
        );
    }
    Ok(sheet)
}
