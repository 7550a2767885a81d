// Row-wise L2 normalisation of x [R, D]: y = x / max(||x||, eps)  (torch.nn.functional.normalize).
// backward: dx = (dy - y * dot(y, dy)) / ||x|| where ||x|| > eps, else dy / eps.
// One invocation per row.

struct Params { rows: u32, d: u32, eps: f32, _p0: u32 }

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn row_norm(r: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.d; k++) {
        let v = x[r * p.d + k];
        s += v * v;
    }
    return sqrt(s);
}

@compute @workgroup_size(WG)
fn l2norm_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) { return; }
    let inv = 1.0 / max(row_norm(r), p.eps);
    for (var k = 0u; k < p.d; k++) { y[r * p.d + k] = x[r * p.d + k] * inv; }
}

@compute @workgroup_size(WG)
fn l2norm_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) { return; }
    let norm = row_norm(r);
    if (norm <= p.eps) {
        for (var k = 0u; k < p.d; k++) { dx[r * p.d + k] = dy[r * p.d + k] / p.eps; }
        return;
    }
    var ydy = 0.0;
    for (var k = 0u; k < p.d; k++) { ydy += x[r * p.d + k] * dy[r * p.d + k]; }
    ydy /= norm;
    for (var k = 0u; k < p.d; k++) {
        let i = r * p.d + k;
        dx[i] = (dy[i] - x[i] / norm * ydy) / norm;
    }
}
