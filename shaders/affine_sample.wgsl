// Bilinear affine sampling: views[v] = sample(images[image(v)], M[v]), zero outside a rectangle.
//
// M[v] is a 2x3 matrix in pixel units: output pixel (j, i) (column, row) reads the source at
//   ix = m0 * j + m1 * i + m2,   iy = m3 * j + m4 * i + m5,
// where source pixel (x, y) has its centre at (x, y). This is grid_sample(align_corners=False)
// after affine_grid, written in pixels instead of [-1, 1] (src/ops/affine_sample.rs converts
// between the two). A box with integer corners sampled at its own size has M = [1 0 l; 0 1 t]:
// every coordinate is an exact integer, every weight exactly 0 or 1, and the view is the slice.
// Bilinear taps outside rect(v) = [x0, x1) x [y0, y1) (clipped to the image) read as 0.
//
// The source is either f32 images or the u8 dataset packed four bytes per word, split into parts
// of `images_per_part` images (a binding is limited in size). Two parts are bound at a time:
// the images [window_lo, window_lo + 2 images_per_part); a data set of more parts is sampled
// by one dispatch per pair of parts, each skipping the views whose image lies elsewhere
// (the last window takes every image from window_lo on, so an index past the end stays in
// one dispatch).
// info[v] holds two vec4<i32>: (x0, y0, x1, y1) and (image, blur words used by augment.wgsl).

struct Params {
    views: u32, channels: u32, in_h: u32, in_w: u32,
    out_h: u32, out_w: u32, images: u32, images_per_part: u32,
    value_scale: f32, window_lo: u32, window_hi: u32, _p0: u32,
}

override WG: u32 = 256;
override U8_SOURCE: bool = true;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> matrices: array<f32>;
@group(0) @binding(2) var<storage, read> info: array<vec4<i32>>;
@group(0) @binding(3) var<storage, read> part0: array<u32>;
@group(0) @binding(4) var<storage, read> part1: array<u32>;
// sample_forward: views [V, C, h, w]; backward_matrix_rows: row partials [V, h, 6];
// backward_image: image gradient [N, C, H, W]. The backward passes read dy from binding 6.
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn linear_id(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// Whether image n is in the parts bound to this dispatch.
fn in_window(n: u32) -> bool { return n >= p.window_lo && n < p.window_hi; }

// Source value at element `k` of image `n`'s slice (k < C*H*W).
fn load(n: u32, k: u32) -> f32 {
    let chw = p.channels * p.in_h * p.in_w;
    if (U8_SOURCE) {
        let part = (n - p.window_lo) / p.images_per_part;
        let e = (n - p.window_lo - part * p.images_per_part) * chw + k;
        var word: u32;
        if (part == 0u) { word = part0[e >> 2u]; } else { word = part1[e >> 2u]; }
        return f32((word >> ((e & 3u) * 8u)) & 255u) * p.value_scale;
    }
    return bitcast<f32>(part0[n * chw + k]) * p.value_scale;
}

// The source coordinate of output pixel (j, i) of view v; shared by every entry point so that
// the backward passes make exactly the floor decisions of the forward pass.
fn source_xy(v: u32, j: u32, i: u32) -> vec2f {
    let m = 6u * v;
    let fj = f32(j);
    let fi = f32(i);
    return vec2f(matrices[m] * fj + matrices[m + 1u] * fi + matrices[m + 2u],
                 matrices[m + 3u] * fj + matrices[m + 4u] * fi + matrices[m + 5u]);
}

// The sampling rectangle of view v, clipped to the image.
fn clipped_rect(v: u32) -> vec4<i32> {
    let r = info[2u * v];
    let hi = vec2<i32>(i32(p.in_w), i32(p.in_h));
    return vec4<i32>(max(r.xy, vec2<i32>(0)), min(r.zw, hi));
}

// The four taps around a source coordinate: integer corner, fractions and which taps are live.
struct Taps { x0: i32, y0: i32, fx: f32, fy: f32, live: vec4<bool> }

fn taps(xy: vec2f, r: vec4<i32>) -> Taps {
    // Clamp first so that far-away (or non-finite) coordinates convert to i32 safely; any
    // coordinate beyond the clamp reads only zeros anyway.
    let c = clamp(xy, vec2f(-4.0e6), vec2f(4.0e6));
    let f = floor(c);
    var t: Taps;
    t.x0 = i32(f.x);
    t.y0 = i32(f.y);
    t.fx = c.x - f.x;
    t.fy = c.y - f.y;
    let in_x0 = t.x0 >= r.x && t.x0 < r.z;
    let in_x1 = t.x0 + 1 >= r.x && t.x0 + 1 < r.z;
    let in_y0 = t.y0 >= r.y && t.y0 < r.w;
    let in_y1 = t.y0 + 1 >= r.y && t.y0 + 1 < r.w;
    t.live = vec4<bool>(in_x0 && in_y0, in_x1 && in_y0, in_x0 && in_y1, in_x1 && in_y1);
    return t;
}

// The four tap values (00, 10, 01, 11 = x-then-y offsets) of channel c; dead taps read 0.
fn tap_values(n: u32, c: u32, t: Taps) -> vec4f {
    let w = i32(p.in_w);
    let h = i32(p.in_h);
    let xa = clamp(t.x0, 0, w - 1);
    let xb = clamp(t.x0 + 1, 0, w - 1);
    let ya = clamp(t.y0, 0, h - 1);
    let yb = clamp(t.y0 + 1, 0, h - 1);
    let base = c * p.in_h * p.in_w;
    let v = vec4f(load(n, base + u32(ya * w + xa)), load(n, base + u32(ya * w + xb)),
                  load(n, base + u32(yb * w + xa)), load(n, base + u32(yb * w + xb)));
    return select(vec4f(0.0), v, t.live);
}

// One invocation per output pixel (v, i, j), all channels.
@compute @workgroup_size(WG)
fn sample_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let hw = p.out_h * p.out_w;
    if (id >= p.views * hw) { return; }
    let v = id / hw;
    let pix = id - v * hw;
    let i = pix / p.out_w;
    let j = pix - i * p.out_w;
    let n = u32(info[2u * v + 1u].x);
    if (!in_window(n)) { return; }
    let t = taps(source_xy(v, j, i), clipped_rect(v));
    for (var c = 0u; c < p.channels; c++) {
        let q = tap_values(n, c, t);
        let top = q.x * (1.0 - t.fx) + q.y * t.fx;
        let bottom = q.z * (1.0 - t.fx) + q.w * t.fx;
        out[(v * p.channels + c) * hw + pix] = top * (1.0 - t.fy) + bottom * t.fy;
    }
}

// Matrix gradient, stage 1: one invocation per (view, output row) sums that row's contribution
// to the six entries of dL/dM into out[(v * h + i) * 6 ..]. dy comes in binding 6.
@group(0) @binding(6) var<storage, read> dy: array<f32>;

@compute @workgroup_size(WG)
fn backward_matrix_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    if (id >= p.views * p.out_h) { return; }
    let v = id / p.out_h;
    let i = id - v * p.out_h;
    let hw = p.out_h * p.out_w;
    let n = u32(info[2u * v + 1u].x);
    if (!in_window(n)) { return; }
    let r = clipped_rect(v);
    var gx = vec3f(0.0);
    var gy = vec3f(0.0);
    for (var j = 0u; j < p.out_w; j++) {
        let t = taps(source_xy(v, j, i), r);
        var sx = 0.0;
        var sy = 0.0;
        for (var c = 0u; c < p.channels; c++) {
            let q = tap_values(n, c, t);
            let g = dy[(v * p.channels + c) * hw + i * p.out_w + j];
            // d(out)/d(ix) and d(out)/d(iy) of the bilinear form.
            sx += g * ((q.y - q.x) * (1.0 - t.fy) + (q.w - q.z) * t.fy);
            sy += g * ((q.z - q.x) * (1.0 - t.fx) + (q.w - q.y) * t.fx);
        }
        let jif = vec3f(f32(j), f32(i), 1.0);
        gx += sx * jif;
        gy += sy * jif;
    }
    let o = id * 6u;
    out[o] = gx.x; out[o + 1u] = gx.y; out[o + 2u] = gx.z;
    out[o + 3u] = gy.x; out[o + 4u] = gy.y; out[o + 5u] = gy.z;
}

// Matrix gradient, stage 2: dL/dM[v][k] = sum over rows; one invocation per (v, k). Here the
// row partials come in binding 6 and the result goes to out [V, 6].
@compute @workgroup_size(WG)
fn backward_matrix_sum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    if (id >= p.views * 6u) { return; }
    let v = id / 6u;
    let k = id - v * 6u;
    var s = 0.0;
    for (var i = 0u; i < p.out_h; i++) { s += dy[(v * p.out_h + i) * 6u + k]; }
    out[id] = s;
}

// Image gradient (f32 sources): one invocation per source element (n, c, y, x) gathers from
// every view of image n the output pixels whose bilinear taps touch (x, y). Which output
// pixels can: the preimage under M of the square (x-1, x+1) x (y-1, y+1), found through the
// inverse of M's 2x2 part, widened by one pixel; each candidate's weight is recomputed with the
// forward's own arithmetic, so the box only has to be large enough. Deterministic, no atomics.
@compute @workgroup_size(WG)
fn backward_image(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let in_hw = p.in_h * p.in_w;
    if (id >= p.images * p.channels * in_hw) { return; }
    let n = id / (p.channels * in_hw);
    let rest = id - n * p.channels * in_hw;
    let c = rest / in_hw;
    let yx = rest - c * in_hw;
    let y = i32(yx / p.in_w);
    let x = i32(yx) - y * i32(p.in_w);
    let hw = p.out_h * p.out_w;
    var acc = 0.0;
    for (var v = 0u; v < p.views; v++) {
        if (u32(info[2u * v + 1u].x) != n) { continue; }
        let r = clipped_rect(v);
        if (x < r.x || x >= r.z || y < r.y || y >= r.w) { continue; }
        let m = 6u * v;
        let a = mat2x2f(matrices[m], matrices[m + 3u], matrices[m + 1u], matrices[m + 4u]);
        let off = vec2f(matrices[m + 2u], matrices[m + 5u]);
        let det = determinant(a);
        var lo = vec2f(0.0);
        var hi = vec2f(f32(p.out_w - 1u), f32(p.out_h - 1u));
        let scale = max(max(abs(a[0].x), abs(a[0].y)), max(abs(a[1].x), abs(a[1].y)));
        if (abs(det) > 1e-6 * scale * scale) {
            let inv = mat2x2f(a[1].y, -a[0].y, -a[1].x, a[0].x) * (1.0 / det);
            let centre = vec2f(f32(x), f32(y)) - off;
            let c0 = inv * (centre + vec2f(-1.0, -1.0));
            let c1 = inv * (centre + vec2f(1.0, -1.0));
            let c2 = inv * (centre + vec2f(-1.0, 1.0));
            let c3 = inv * (centre + vec2f(1.0, 1.0));
            lo = max(lo, floor(min(min(c0, c1), min(c2, c3))) - 1.0);
            hi = min(hi, ceil(max(max(c0, c1), max(c2, c3))) + 1.0);
        }
        if (lo.x > hi.x || lo.y > hi.y) { continue; }
        for (var i = u32(lo.y); i <= u32(hi.y); i++) {
            for (var j = u32(lo.x); j <= u32(hi.x); j++) {
                let t = taps(source_xy(v, j, i), r);
                var wx = 0.0;
                if (t.x0 == x) { wx = 1.0 - t.fx; } else if (t.x0 + 1 == x) { wx = t.fx; }
                var wy = 0.0;
                if (t.y0 == y) { wy = 1.0 - t.fy; } else if (t.y0 + 1 == y) { wy = t.fy; }
                if (wx != 0.0 && wy != 0.0) {
                    acc += dy[(v * p.channels + c) * hw + i * p.out_w + j] * wx * wy;
                }
            }
        }
    }
    out[id] = acc * p.value_scale;
}
