// The second half of the view pipeline: a 3x3 Gaussian blur with each view's own weights
// (reflect padding, as torchvision's gaussian_blur) followed by per-channel normalisation.
// Input: sampled views [V, C, h, w]; views below `split` go to out_a, the rest to out_b, so that
// the two view batches of SimCLR come out as two tensors without a copy.
// info[2v + 1].yz hold the view's blur weights as f32 bits: centre and side tap of the
// normalised 1-D kernel (the 2-D kernel is their outer product).

struct Params {
    views: u32, channels: u32, h: u32, w: u32,
    split: u32, _p0: u32, _p1: u32, _p2: u32,
    mean: vec4f,
    inv_std: vec4f,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> info: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read> sampled: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_a: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_b: array<f32>;

// Reflect an index that is at most one step outside [0, n) (clamped for n = 1).
fn reflect(k: i32, n: i32) -> u32 {
    var r = k;
    if (r < 0) { r = -r; }
    if (r >= n) { r = 2 * n - 2 - r; }
    return u32(clamp(r, 0, n - 1));
}

// One invocation per output pixel (v, i, j), all channels.
@compute @workgroup_size(WG)
fn blur_normalize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    let hw = p.h * p.w;
    if (id >= p.views * hw) { return; }
    let v = id / hw;
    let pix = id - v * hw;
    let i = i32(pix / p.w);
    let j = i32(pix) - i * i32(p.w);
    let b = info[2u * v + 1u];
    let k = vec3f(bitcast<f32>(b.z), bitcast<f32>(b.y), bitcast<f32>(b.z));
    let rows = vec3u(reflect(i - 1, i32(p.h)), u32(i), reflect(i + 1, i32(p.h)));
    let cols = vec3u(reflect(j - 1, i32(p.w)), u32(j), reflect(j + 1, i32(p.w)));
    for (var c = 0u; c < p.channels; c++) {
        let base = (v * p.channels + c) * hw;
        var acc = 0.0;
        for (var r = 0u; r < 3u; r++) {
            let row = base + rows[r] * p.w;
            let across = vec3f(sampled[row + cols.x], sampled[row + cols.y], sampled[row + cols.z]);
            acc += k[r] * dot(k, across);
        }
        let value = (acc - p.mean[c]) * p.inv_std[c];
        if (v < p.split) {
            out_a[base + pix] = value;
        } else {
            out_b[base - p.split * p.channels * hw + pix] = value;
        }
    }
}

// The weight with which output index i reads input index k along an axis of n pixels: the
// taps of i that reflect onto k (two of them for k = 1 at i = 0, say).
fn tap_weight(i: i32, k: u32, n: i32, kern: vec3f) -> f32 {
    var w = 0.0;
    for (var a = 0; a < 3; a++) {
        if (reflect(i + a - 1, n) == k) { w += kern[a]; }
    }
    return w;
}

// The transpose of blur_normalize for a gradient: one invocation per input pixel (v, k, l),
// all channels; sampled = dL/dviews [V, C, h, w], out_a = dL/dsampled (split = V).
@compute @workgroup_size(WG)
fn blur_normalize_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    let hw = p.h * p.w;
    if (id >= p.views * hw) { return; }
    let v = id / hw;
    let pix = id - v * hw;
    let k = pix / p.w;
    let l = pix - k * p.w;
    let b = info[2u * v + 1u];
    let kern = vec3f(bitcast<f32>(b.z), bitcast<f32>(b.y), bitcast<f32>(b.z));
    let h = i32(p.h);
    let w = i32(p.w);
    // Outputs within two pixels can read this one (one directly, one through a reflection).
    let i0 = max(i32(k) - 2, 0);
    let i1 = min(i32(k) + 2, h - 1);
    let j0 = max(i32(l) - 2, 0);
    let j1 = min(i32(l) + 2, w - 1);
    for (var c = 0u; c < p.channels; c++) {
        let base = (v * p.channels + c) * hw;
        var acc = 0.0;
        for (var i = i0; i <= i1; i++) {
            let wr = tap_weight(i, k, h, kern);
            if (wr == 0.0) { continue; }
            for (var j = j0; j <= j1; j++) {
                acc += wr * tap_weight(j, l, w, kern) * sampled[base + u32(i) * p.w + u32(j)];
            }
        }
        out_a[base + pix] = acc * p.inv_std[c];
    }
}
