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
