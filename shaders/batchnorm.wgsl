// Batch normalisation over NCHW, per channel c, with M = N*H*W values per channel.
//   training: mean and biased variance of the batch; running stats updated with momentum
//             (PyTorch: running_var takes the unbiased variance M/(M-1) * var)
//   eval:     the running statistics
// stats [2C] = mean[c] then invstd[c] = 1/sqrt(var + eps); sums [2C] = dgamma[c] then dbeta[c].
//
// bn_stats, bn_backward_reduce: one workgroup per channel; its WG invocations are split into
//   groups of `lanes_per_image` (a power of 2 dividing WG): each group takes every
//   (WG / lanes_per_image)-th image, its lanes stride over that image's pixels; then the
//   workgroup reduces in workgroup memory. No integer division per element (a CPU device
//   cannot vectorise it).
// bn_apply, bn_backward_input: one invocation per (image, channel) plane, looping its pixels.

struct Params {
    n: u32, c: u32, hw: u32, training: u32,
    momentum: f32, eps: f32, lanes_per_image: u32, _p1: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;

// bn_stats
@group(0) @binding(1) var<storage, read> sx: array<f32>;
@group(0) @binding(2) var<storage, read_write> s_stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_rmean: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_rvar: array<f32>;

// bn_eval_stats
@group(0) @binding(1) var<storage, read> e_rmean: array<f32>;
@group(0) @binding(2) var<storage, read> e_rvar: array<f32>;
@group(0) @binding(3) var<storage, read_write> e_stats: array<f32>;

// bn_apply
@group(0) @binding(1) var<storage, read> ax: array<f32>;
@group(0) @binding(2) var<storage, read> a_stats: array<f32>;
@group(0) @binding(3) var<storage, read> a_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> a_beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> ay: array<f32>;

// bn_backward_reduce
@group(0) @binding(1) var<storage, read> rx: array<f32>;
@group(0) @binding(2) var<storage, read> rdy: array<f32>;
@group(0) @binding(3) var<storage, read> r_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> r_sums: array<f32>;

// bn_backward_input
@group(0) @binding(1) var<storage, read> ix: array<f32>;
@group(0) @binding(2) var<storage, read> idy: array<f32>;
@group(0) @binding(3) var<storage, read> i_stats: array<f32>;
@group(0) @binding(4) var<storage, read> i_gamma: array<f32>;
@group(0) @binding(5) var<storage, read> i_sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> idx_out: array<f32>;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

// The first image and pixel of lane `lid`, and the image step of its group.
struct Walk { n0: u32, k0: u32, n_step: u32 }

fn walk(lid: u32) -> Walk {
    return Walk(lid / p.lanes_per_image, lid % p.lanes_per_image, WG / p.lanes_per_image);
}

// Sums red_a and red_b over the workgroup; the totals end in slot 0.
fn reduce_pair(lid: u32) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            red_a[lid] += red_a[lid + half];
            red_b[lid] += red_b[lid + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn bn_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
    let c = wid.x;
    let m = p.n * p.hw;
    let w = walk(lid);
    var s = 0.0;
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var k = w.k0; k < p.hw; k += p.lanes_per_image) { s += sx[base + k]; }
    }
    red_a[lid] = s;
    red_b[lid] = 0.0;
    reduce_pair(lid);
    let mean = red_a[0] / f32(m);
    workgroupBarrier();
    // Second pass on the centred values: no cancellation when |mean| >> std.
    var q = 0.0;
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var k = w.k0; k < p.hw; k += p.lanes_per_image) {
            let d = sx[base + k] - mean;
            q += d * d;
        }
    }
    red_a[lid] = 0.0;
    red_b[lid] = q;
    reduce_pair(lid);
    if (lid == 0u) {
        let var_b = red_b[0] / f32(m);
        s_stats[c] = mean;
        s_stats[p.c + c] = inverseSqrt(var_b + p.eps);
        let unbiased = var_b * f32(m) / f32(max(m, 2u) - 1u);
        s_rmean[c] = (1.0 - p.momentum) * s_rmean[c] + p.momentum * mean;
        s_rvar[c] = (1.0 - p.momentum) * s_rvar[c] + p.momentum * unbiased;
    }
}

@compute @workgroup_size(WG)
fn bn_eval_stats(@builtin(global_invocation_id) gid: vec3u) {
    let c = gid.x;
    if (c >= p.c) { return; }
    e_stats[c] = e_rmean[c];
    e_stats[p.c + c] = inverseSqrt(e_rvar[c] + p.eps);
}

@compute @workgroup_size(WG)
fn bn_apply(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let plane = gid.x + gid.y * nwg.x * WG;
    if (plane >= p.n * p.c) { return; }
    let c = plane % p.c;
    let scale = a_stats[p.c + c] * a_gamma[c];
    let shift = a_beta[c] - a_stats[c] * scale;
    let base = plane * p.hw;
    for (var k = 0u; k < p.hw; k++) { ay[base + k] = ax[base + k] * scale + shift; }
}

@compute @workgroup_size(WG)
fn bn_backward_reduce(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
    let c = wid.x;
    let m = p.n * p.hw;
    let mean = r_stats[c];
    let invstd = r_stats[p.c + c];
    let w = walk(lid);
    var dg = 0.0;
    var db = 0.0;
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var k = w.k0; k < p.hw; k += p.lanes_per_image) {
            let g = rdy[base + k];
            dg += g * (rx[base + k] - mean);
            db += g;
        }
    }
    dg *= invstd;
    red_a[lid] = dg;
    red_b[lid] = db;
    reduce_pair(lid);
    if (lid == 0u) {
        r_sums[c] = red_a[0];
        r_sums[p.c + c] = red_b[0];
    }
}

// training: dx = gamma*invstd/M * (M*dy - dbeta - xhat*dgamma); eval: dx = gamma*invstd*dy.
@compute @workgroup_size(WG)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let plane = gid.x + gid.y * nwg.x * WG;
    if (plane >= p.n * p.c) { return; }
    let c = plane % p.c;
    let invstd = i_stats[p.c + c];
    let g = i_gamma[c] * invstd;
    let base = plane * p.hw;
    if (p.training == 0u) {
        for (var k = 0u; k < p.hw; k++) { idx_out[base + k] = g * idy[base + k]; }
        return;
    }
    let m = f32(p.n * p.hw);
    let mean = i_stats[c];
    let dbeta = i_sums[p.c + c];
    let dgamma = i_sums[c];
    for (var k = 0u; k < p.hw; k++) {
        let xhat = (ix[base + k] - mean) * invstd;
        idx_out[base + k] = g / m * (m * idy[base + k] - dbeta - xhat * dgamma);
    }
}
