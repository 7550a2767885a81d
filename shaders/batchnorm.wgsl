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
//   batchnorm_subgroup.wgsl has the same reductions with subgroup sums (bn_stats_subgroup,
//   bn_backward_reduce_subgroup), sharing the per-lane loops below.
// bn_apply, bn_backward_input: one invocation per (image, channel) plane, looping its pixels.
// RELU fuses a ReLU after the normalisation: bn_apply writes max(y, 0), and the backward
// kernels mask dy where the recomputed y is not positive (the same expression as bn_apply's),
// so neither the ReLU's pass nor its stored output is needed.
// In is what x is stored in, Out what bn_apply stores y as: f32, or f16 under `--precision
// f16` (x: a convolution's output; y: where it goes straight into a convolution), each such
// kernel its own module (gpu/kernels.rs, Storage). The sums are f32 either way.
alias In = f32;

struct Params {
    n: u32, c: u32, hw: u32, training: u32,
    momentum: f32, eps: f32, lanes_per_image: u32, _p1: u32,
}

override WG: u32 = 256;
override RELU: bool = false;

@group(0) @binding(0) var<uniform> p: Params;

// bn_stats
@group(0) @binding(1) var<storage, read> sx: array<In>;
@group(0) @binding(2) var<storage, read_write> s_stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_rmean: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_rvar: array<f32>;

// bn_eval_stats
@group(0) @binding(1) var<storage, read> e_rmean: array<f32>;
@group(0) @binding(2) var<storage, read> e_rvar: array<f32>;
@group(0) @binding(3) var<storage, read_write> e_stats: array<f32>;

// bn_apply
@group(0) @binding(1) var<storage, read> ax: array<In>;
@group(0) @binding(2) var<storage, read> a_stats: array<f32>;
@group(0) @binding(3) var<storage, read> a_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> a_beta: array<f32>;
alias Out = f32;
@group(0) @binding(5) var<storage, read_write> ay: array<Out>;

// bn_backward_reduce
@group(0) @binding(1) var<storage, read> rx: array<In>;
@group(0) @binding(2) var<storage, read> rdy: array<f32>;
@group(0) @binding(3) var<storage, read> r_stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> r_sums: array<f32>;
@group(0) @binding(5) var<storage, read> r_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> r_beta: array<f32>;

// bn_backward_input
@group(0) @binding(1) var<storage, read> ix: array<In>;
@group(0) @binding(2) var<storage, read> idy: array<f32>;
@group(0) @binding(3) var<storage, read> i_stats: array<f32>;
@group(0) @binding(4) var<storage, read> i_gamma: array<f32>;
@group(0) @binding(5) var<storage, read> i_sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> idx_out: array<f32>;
@group(0) @binding(7) var<storage, read> i_beta: array<f32>;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;

// The first image and pixel of lane `lid`, and the image step of its group.
struct Walk { n0: u32, k0: u32, n_step: u32 }

fn walk(lid: u32) -> Walk {
    return Walk(lid / p.lanes_per_image, lid % p.lanes_per_image, WG / p.lanes_per_image);
}

// The normalised value from a channel's scale = invstd * gamma and shift = beta - mean * scale:
// one expression for bn_apply and the masks of the fused ReLU's backward pass.
fn normalised(x: f32, scale: f32, shift: f32) -> f32 { return x * scale + shift; }

// dy where the fused ReLU let the value through (all of dy without RELU).
fn masked(g: f32, x: f32, scale: f32, shift: f32) -> f32 {
    if (RELU && normalised(x, scale, shift) <= 0.0) { return 0.0; }
    return g;
}

// This lane's share of channel c's sum.
fn lane_sum(c: u32, w: Walk) -> f32 {
    var s = 0.0;
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var k = w.k0; k < p.hw; k += p.lanes_per_image) { s += f32(sx[base + k]); }
    }
    return s;
}

// This lane's share of channel c's squared deviations from `mean`: a second pass on the
// centred values, with no cancellation when |mean| >> std.
fn lane_centred_squares(c: u32, w: Walk, mean: f32) -> f32 {
    var q = 0.0;
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var k = w.k0; k < p.hw; k += p.lanes_per_image) {
            let d = f32(sx[base + k]) - mean;
            q += d * d;
        }
    }
    return q;
}

// Channel c's statistics and running statistics from the totals.
fn store_stats(c: u32, mean: f32, squares: f32) {
    let m = p.n * p.hw;
    let var_b = squares / f32(m);
    s_stats[c] = mean;
    s_stats[p.c + c] = inverseSqrt(var_b + p.eps);
    let unbiased = var_b * f32(m) / f32(max(m, 2u) - 1u);
    s_rmean[c] = (1.0 - p.momentum) * s_rmean[c] + p.momentum * mean;
    s_rvar[c] = (1.0 - p.momentum) * s_rvar[c] + p.momentum * unbiased;
}

// This lane's share of (dgamma, dbeta) for channel c.
fn lane_gradient_sums(c: u32, w: Walk) -> vec2f {
    let mean = r_stats[c];
    let invstd = r_stats[p.c + c];
    var scale = 0.0;
    var shift = 0.0;
    if (RELU) {
        scale = invstd * r_gamma[c];
        shift = r_beta[c] - mean * scale;
    }
    var dg = 0.0;
    var db = 0.0;
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var k = w.k0; k < p.hw; k += p.lanes_per_image) {
            let x = f32(rx[base + k]);
            let g = masked(rdy[base + k], x, scale, shift);
            dg += g * (x - mean);
            db += g;
        }
    }
    return vec2f(dg * invstd, db);
}

// Sums v over the workgroup in workgroup memory; every lane gets the total.
fn workgroup_sum2(lid: u32, v: vec2f) -> vec2f {
    red_a[lid] = v.x;
    red_b[lid] = v.y;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) {
            red_a[lid] += red_a[lid + half];
            red_b[lid] += red_b[lid + half];
        }
        workgroupBarrier();
    }
    let total = vec2f(red_a[0], red_b[0]);
    // Before the slots are written again.
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn bn_stats(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
    let c = wid.x;
    let w = walk(lid);
    let mean = workgroup_sum2(lid, vec2f(lane_sum(c, w), 0.0)).x / f32(p.n * p.hw);
    let squares = workgroup_sum2(lid, vec2f(lane_centred_squares(c, w, mean), 0.0)).x;
    if (lid == 0u) { store_stats(c, mean, squares); }
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
    for (var k = 0u; k < p.hw; k++) {
        var y = normalised(f32(ax[base + k]), scale, shift);
        if (RELU) { y = max(y, 0.0); }
        ay[base + k] = Out(y);
    }
}

@compute @workgroup_size(WG)
fn bn_backward_reduce(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
    let c = wid.x;
    let sums = workgroup_sum2(lid, lane_gradient_sums(c, walk(lid)));
    if (lid == 0u) {
        r_sums[c] = sums.x;
        r_sums[p.c + c] = sums.y;
    }
}

// training: dx = gamma*invstd/M * (M*dy - dbeta - xhat*dgamma); eval: dx = gamma*invstd*dy;
// dy masked by the fused ReLU where there is one.
@compute @workgroup_size(WG)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let plane = gid.x + gid.y * nwg.x * WG;
    if (plane >= p.n * p.c) { return; }
    let c = plane % p.c;
    let invstd = i_stats[p.c + c];
    let g = i_gamma[c] * invstd;
    let mean = i_stats[c];
    var shift = 0.0;
    if (RELU) { shift = i_beta[c] - mean * g; }
    let base = plane * p.hw;
    if (p.training == 0u) {
        for (var k = 0u; k < p.hw; k++) {
            idx_out[base + k] = g * masked(idy[base + k], f32(ix[base + k]), g, shift);
        }
        return;
    }
    let m = f32(p.n * p.hw);
    let dbeta = i_sums[p.c + c];
    let dgamma = i_sums[c];
    for (var k = 0u; k < p.hw; k++) {
        let x = f32(ix[base + k]);
        let xhat = (x - mean) * invstd;
        let dy = masked(idy[base + k], x, g, shift);
        idx_out[base + k] = g / m * (m * dy - dbeta - xhat * dgamma);
    }
}
