// Saliency of an encoder's last feature map, as ContrastiveCrop (Peng et al. 2022) computes it:
// channels summed, min-max normalised per image, bilinearly upsampled to the image
// (align_corners = false). Per image, only a summary leaves the device: the heat's centroid and
// the box spanning every row and column whose maximum exceeds the threshold.
//
// channel_sum: one invocation per (image, feature pixel); src = feature map [N, C, fh, fw],
//              dst = sums [N, fh * fw].
// summarise:   one invocation per image (maps are small; on a CPU device 8 images share a
//              vector and no barrier is needed); src = sums, dst = summary [N, 8]:
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
fn summarise(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let n = gid.x + gid.y * nwg.x * WG;
    if (n >= p.images) { return; }
    let hw = p.fh * p.fw;
    let base = n * hw;
    var lo = 3.4e38;
    var hi = -3.4e38;
    for (var i = 0u; i < hw; i++) {
        lo = min(lo, src[base + i]);
        hi = max(hi, src[base + i]);
    }
    let range = hi - lo;
    // Also 0 for a map that is not finite, so that it is treated as flat.
    let scale = select(0.0, 1.0 / range, range > 0.0 && range < 3.4e38);

    // The heat's moments, and the hot box: a row (column) is hot when its maximum exceeds the
    // threshold, that is when one of its pixels does, so the box of hot rows and columns is
    // the bounding box of the hot pixels.
    var m = vec4f(0.0);
    var box_lo = vec2u(0xffffffffu);
    var box_hi = vec2u(0u);
    for (var y = 0u; y < p.ih; y++) {
        for (var x = 0u; x < p.iw; x++) {
            let h = heat_at(base, x, y, lo, scale);
            if (p.write_heat == 1u) { heat[(n * p.ih + y) * p.iw + x] = h; }
            let is_hot = h > p.threshold;
            m += vec4f(h, h * (f32(x) + 0.5), h * (f32(y) + 0.5), select(0.0, 1.0, is_hot));
            if (is_hot) {
                box_lo = min(box_lo, vec2u(x, y));
                box_hi = max(box_hi, vec2u(x, y));
            }
        }
    }
    let w = f32(p.iw);
    let h = f32(p.ih);
    let o = n * 8u;
    let mass = m.x > 0.0;
    dst[o] = select(0.5 * w, m.y / m.x, mass);
    dst[o + 1u] = select(0.5 * h, m.z / m.x, mass);
    // No hot pixel (a threshold above the map): the whole image.
    let any = box_lo.x <= box_hi.x;
    dst[o + 2u] = select(0.0, f32(box_lo.x) / w, any);
    dst[o + 3u] = select(0.0, f32(box_lo.y) / h, any);
    dst[o + 4u] = select(1.0, f32(box_hi.x) / w, any);
    dst[o + 5u] = select(1.0, f32(box_hi.y) / h, any);
    dst[o + 6u] = m.w / (w * h);
    dst[o + 7u] = range;
}
