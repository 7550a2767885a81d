// Batch normalisation over NCHW, per channel c, with M = N*H*W values per channel.
//   training: mean and biased variance of the batch; running stats updated with momentum
//             (PyTorch: running_var takes the unbiased variance M/(M-1) * var)
//   eval:     the running statistics
// stats [2C] = mean[c] then invstd[c] = 1/sqrt(var + eps); sums [2C] = dgamma[c] then dbeta[c].
//
// bn_stats, bn_backward_reduce: one workgroup per channel; its WG invocations stride over the
//   M values (image by image, pixel by pixel), then reduce in workgroup memory (WG: power of 2).
// bn_apply, bn_backward_input: one invocation per element.

struct Params {
    n: u32, c: u32, hw: u32, training: u32,
    momentum: f32, eps: f32, _p0: u32, _p1: u32,
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

fn element(c: u32, t: u32) -> u32 {
    return ((t / p.hw) * p.c + c) * p.hw + t % p.hw;
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
    var s = 0.0;
    for (var t = lid; t < m; t += WG) { s += sx[element(c, t)]; }
    red_a[lid] = s;
    red_b[lid] = 0.0;
    reduce_pair(lid);
    let mean = red_a[0] / f32(m);
    workgroupBarrier();
    // Second pass on the centred values: no cancellation when |mean| >> std.
    var q = 0.0;
    for (var t = lid; t < m; t += WG) {
        let d = sx[element(c, t)] - mean;
        q += d * d;
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
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n * p.c * p.hw) { return; }
    let c = (i / p.hw) % p.c;
    ay[i] = (ax[i] - a_stats[c]) * a_stats[p.c + c] * a_gamma[c] + a_beta[c];
}

@compute @workgroup_size(WG)
fn bn_backward_reduce(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
    let c = wid.x;
    let m = p.n * p.hw;
    let mean = r_stats[c];
    let invstd = r_stats[p.c + c];
    var dg = 0.0;
    var db = 0.0;
    for (var t = lid; t < m; t += WG) {
        let e = element(c, t);
        dg += rdy[e] * (rx[e] - mean) * invstd;
        db += rdy[e];
    }
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
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n * p.c * p.hw) { return; }
    let c = (i / p.hw) % p.c;
    let invstd = i_stats[p.c + c];
    let k = i_gamma[c] * invstd;
    if (p.training == 0u) {
        idx_out[i] = k * idy[i];
        return;
    }
    let m = f32(p.n * p.hw);
    let xhat = (ix[i] - i_stats[c]) * invstd;
    idx_out[i] = k / m * (m * idy[i] - i_sums[p.c + c] - xhat * i_sums[c]);
}
