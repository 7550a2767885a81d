// Saliency of an encoder's last feature map, as ContrastiveCrop (Peng et al. 2022) computes it:
// channels summed, min-max normalised per image, bilinearly upsampled to the image
// (align_corners = false). Per image, only a summary leaves the device: the heat's centroid and
// the box spanning every row and column whose maximum exceeds the threshold.
//
// channel_sum: one invocation per (image, feature pixel); src = feature map [N, C, fh, fw],
//              dst = sums [N, fh * fw].
// summarise:   one workgroup per image; src = sums, dst = summary [N, 8]:
//              (centroid x, centroid y) in pixels, (x0, y0, x1, y1) as fractions of the side
//              (first and last hot column and row over the side, as ContrastiveCrop writes its
//              boxes), then the hot share of the image and the map's range before normalising;
//              heat = the upsampled map [N, ih, iw], written when write_heat is 1.

struct Params {
    images: u32, channels: u32, fh: u32, fw: u32,
    ih: u32, iw: u32, threshold: f32, write_heat: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> heat: array<f32>;

@compute @workgroup_size(WG)
fn channel_sum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * WG;
    let hw = p.fh * p.fw;
    if (i >= p.images * hw) { return; }
    let n = i / hw;
    let pix = i % hw;
    var s = 0.0;
    for (var c = 0u; c < p.channels; c++) { s += src[(n * p.channels + c) * hw + pix]; }
    dst[i] = s;
}

var<workgroup> low: array<f32, WG>;
var<workgroup> high: array<f32, WG>;
var<workgroup> moments: array<vec4f, WG>;
// Hot rows and columns: min y, max y, min x, max x.
var<workgroup> hot: array<atomic<u32>, 4>;

// PyTorch's bilinear source coordinate for align_corners = false: the two taps and the weight
// of the second.
fn taps(dst_i: u32, dst_n: u32, src_n: u32) -> vec3f {
    let s = max((f32(dst_i) + 0.5) * f32(src_n) / f32(dst_n) - 0.5, 0.0);
    let i0 = min(u32(floor(s)), src_n - 1u);
    let i1 = min(i0 + 1u, src_n - 1u);
    return vec3f(f32(i0), f32(i1), s - f32(i0));
}

// The normalised map of image n at image pixel (x, y): base = n * fh * fw.
fn heat_at(base: u32, x: u32, y: u32, lo: f32, scale: f32) -> f32 {
    let tx = taps(x, p.iw, p.fw);
    let ty = taps(y, p.ih, p.fh);
    let x0 = u32(tx.x);
    let x1 = u32(tx.y);
    let r0 = base + u32(ty.x) * p.fw;
    let r1 = base + u32(ty.y) * p.fw;
    let top = mix(src[r0 + x0], src[r0 + x1], tx.z);
    let bottom = mix(src[r1 + x0], src[r1 + x1], tx.z);
    // A flat map (scale 0) has no region that stands out: the whole image is hot.
    return select(1.0, (mix(top, bottom, ty.z) - lo) * scale, scale > 0.0);
}

@compute @workgroup_size(WG)
fn summarise(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
             @builtin(num_workgroups) nwg: vec3u) {
    let n = wid.x + wid.y * nwg.x;
    if (n >= p.images) { return; }
    let hw = p.fh * p.fw;
    let base = n * hw;
    if (lid == 0u) {
        atomicStore(&hot[0], 0xffffffffu);
        atomicStore(&hot[1], 0u);
        atomicStore(&hot[2], 0xffffffffu);
        atomicStore(&hot[3], 0u);
    }
    var lo = 3.4e38;
    var hi = -3.4e38;
    for (var i = lid; i < hw; i += WG) {
        lo = min(lo, src[base + i]);
        hi = max(hi, src[base + i]);
    }
    low[lid] = lo;
    high[lid] = hi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            low[lid] = min(low[lid], low[lid + s]);
            high[lid] = max(high[lid], high[lid + s]);
        }
        workgroupBarrier();
    }
    lo = low[0];
    let range = high[0] - low[0];
    // Also 0 for a map that is not finite, so that it is treated as flat.
    let scale = select(0.0, 1.0 / range, range > 0.0 && range < 3.4e38);

    // Rows: the moments of the heat and the hot rows; then columns: the hot columns.
    var m = vec4f(0.0);
    for (var y = lid; y < p.ih; y += WG) {
        var row_max = 0.0;
        for (var x = 0u; x < p.iw; x++) {
            let h = heat_at(base, x, y, lo, scale);
            if (p.write_heat == 1u) { heat[(n * p.ih + y) * p.iw + x] = h; }
            m += vec4f(h, h * (f32(x) + 0.5), h * (f32(y) + 0.5), select(0.0, 1.0, h > p.threshold));
            row_max = max(row_max, h);
        }
        if (row_max > p.threshold) {
            atomicMin(&hot[0], y);
            atomicMax(&hot[1], y);
        }
    }
    for (var x = lid; x < p.iw; x += WG) {
        var col_max = 0.0;
        for (var y = 0u; y < p.ih; y++) { col_max = max(col_max, heat_at(base, x, y, lo, scale)); }
        if (col_max > p.threshold) {
            atomicMin(&hot[2], x);
            atomicMax(&hot[3], x);
        }
    }
    moments[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) { moments[lid] += moments[lid + s]; }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let t = moments[0];
        let w = f32(p.iw);
        let h = f32(p.ih);
        let o = n * 8u;
        let mass = t.x > 0.0;
        dst[o] = select(0.5 * w, t.y / t.x, mass);
        dst[o + 1u] = select(0.5 * h, t.z / t.x, mass);
        let y0 = atomicLoad(&hot[0]);
        let y1 = atomicLoad(&hot[1]);
        let x0 = atomicLoad(&hot[2]);
        let x1 = atomicLoad(&hot[3]);
        // No hot row (a threshold above the map): the whole image.
        let any = y0 <= y1 && x0 <= x1;
        dst[o + 2u] = select(0.0, f32(x0) / w, any);
        dst[o + 3u] = select(0.0, f32(y0) / h, any);
        dst[o + 4u] = select(1.0, f32(x1) / w, any);
        dst[o + 5u] = select(1.0, f32(y1) / h, any);
        dst[o + 6u] = t.w / (w * h);
        dst[o + 7u] = range;
    }
}
