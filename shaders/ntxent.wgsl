// NT-Xent on the cosine similarities C = U U^T of 2N L2-normalised embeddings (rows 0..N first
// views, N..2N second; row i's positive is row (i + N) mod 2N). Logits are C / tau with the
// diagonal excluded.
// ntxent_rows: one invocation per row: log-sum-exp (max-shifted) and the row's loss.
// ntxent_pair_grad: one invocation per element of M = G + G^T, where G = dL/dC; then
// dL/dU = M U (a matmul), since C = U U^T feeds both factors.

struct Params { rows: u32, half: u32, inv_tau: f32, _p0: u32 }

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sim: array<f32>;
@group(0) @binding(2) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;

fn partner(i: u32) -> u32 { return select(i + p.half, i - p.half, i >= p.half); }

@compute @workgroup_size(WG)
fn ntxent_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows) { return; }
    let base = i * p.rows;
    var m = -3.4e38;
    for (var j = 0u; j < p.rows; j++) {
        if (j != i) { m = max(m, sim[base + j] * p.inv_tau); }
    }
    var s = 0.0;
    for (var j = 0u; j < p.rows; j++) {
        if (j != i) { s += exp(sim[base + j] * p.inv_tau - m); }
    }
    let row_lse = m + log(s);
    lse[i] = row_lse;
    row_loss[i] = row_lse - sim[base + partner(i)] * p.inv_tau;
}

// Bindings of the gradient pass: the similarities, the row log-sum-exps, dL/dloss (one value),
// and the output M.
@group(0) @binding(1) var<storage, read> g_sim: array<f32>;
@group(0) @binding(2) var<storage, read> g_lse: array<f32>;
@group(0) @binding(3) var<storage, read> g_dloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_m: array<f32>;

@compute @workgroup_size(WG)
fn ntxent_pair_grad(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    if (id >= p.rows * p.rows) { return; }
    let i = id / p.rows;
    let j = id - i * p.rows;
    if (i == j) { g_m[id] = 0.0; return; }
    // The loss is a mean over rows; each logit is a similarity over tau.
    let scale = g_dloss[0] * p.inv_tau / f32(p.rows);
    let l = g_sim[id] * p.inv_tau;
    let positive = select(0.0, 2.0, j == partner(i));
    g_m[id] = scale * (exp(l - g_lse[i]) + exp(l - g_lse[j]) - positive);
}
