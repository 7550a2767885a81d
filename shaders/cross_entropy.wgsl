// Softmax cross-entropy with integer labels: logits [N, C], labels [N] (u32).
//   forward:  loss[i] = logsumexp(logits[i]) - logits[i, label[i]]   (per row; the launcher
//             takes the mean). A label >= C yields NaN, which the loss guard then reports.
//   backward: dlogits[i, j] = dloss * (softmax(logits[i])[j] - [j == label[i]]) / N
// One invocation per row; the maximum is subtracted before exp for stability.

struct Params { rows: u32, classes: u32, _p0: u32, _p1: u32 }

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;

@group(0) @binding(3) var<storage, read> dloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

fn row_max(r: u32) -> f32 {
    var m = logits[r * p.classes];
    for (var j = 1u; j < p.classes; j++) { m = max(m, logits[r * p.classes + j]); }
    return m;
}

fn row_sum_exp(r: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) { s += exp(logits[r * p.classes + j] - m); }
    return s;
}

@compute @workgroup_size(WG)
fn cross_entropy_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) { return; }
    let label = labels[r];
    let m = row_max(r);
    let lse = m + log(row_sum_exp(r, m));
    // A quiet NaN built at run time (_p0 is 0): constant NaNs are rejected by shader compilers.
    let nan = bitcast<f32>(0x7fc00000u + p._p0);
    row_loss[r] = select(nan, lse - logits[r * p.classes + min(label, p.classes - 1u)], label < p.classes);
}

@compute @workgroup_size(WG)
fn cross_entropy_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let r = gid.x + gid.y * nwg.x * WG;
    if (r >= p.rows) { return; }
    let label = labels[r];
    let m = row_max(r);
    let s = row_sum_exp(r, m);
    let scale = dloss[0] / f32(p.rows);
    for (var j = 0u; j < p.classes; j++) {
        let i = r * p.classes + j;
        let onehot = select(0.0, 1.0, j == label);
        dlogits[i] = scale * (exp(logits[i] - m) / s - onehot);
    }
}
