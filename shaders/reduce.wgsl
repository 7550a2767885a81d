// Reductions.
// sum_splits:   out[i] = sum over s < splits of x[s*len + i]         (one invocation per i)
// sum_channels: x seen as [A, B, C]; out[b] = alpha * sum over a, c of x[(a*B + b)*C + c]
//               (one workgroup per b; its WG invocations stride over the A*C terms, then a
//               tree reduction in workgroup memory). Bias gradients, means of losses.

struct Params {
    a: u32, b: u32, c: u32, splits: u32,
    len: u32, alpha: f32, _p0: u32, _p1: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn sum_splits(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.len) { return; }
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) { s += x[k * p.len + i]; }
    out[i] = s;
}

@compute @workgroup_size(WG)
fn sum_channels(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u,
                @builtin(num_workgroups) nwg: vec3u) {
    let bi = wid.x + wid.y * nwg.x;
    let terms = p.a * p.c;
    var s = 0.0;
    if (bi < p.b) {
        for (var t = lid; t < terms; t += WG) {
            let ai = t / p.c;
            let ci = t % p.c;
            s += x[(ai * p.b + bi) * p.c + ci];
        }
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if (lid < half) { partial[lid] += partial[lid + half]; }
        workgroupBarrier();
    }
    if (lid == 0u && bi < p.b) { out[bi] = p.alpha * partial[0]; }
}
