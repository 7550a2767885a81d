// Global average pooling: x [N, C, H, W] -> y [N, C], y = mean over H*W.
// forward: one invocation per (n, c) row of H*W values; backward: one per input element.

struct Params { rows: u32, hw: u32, _p0: u32, _p1: u32 }

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn gap_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) { return; }
    var s = 0.0;
    for (var k = 0u; k < p.hw; k++) { s += x[r * p.hw + k]; }
    y[r] = s / f32(p.hw);
}

// Here x is the output gradient dy [N*C] and y the input gradient dx [N*C*H*W].
@compute @workgroup_size(WG)
fn gap_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows * p.hw) { return; }
    y[i] = x[i / p.hw] / f32(p.hw);
}
