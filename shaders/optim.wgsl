// Optimiser updates, in place, one invocation per 4 parameters (spaced by the invocation count).
// sgd_step  (PyTorch SGD, dampening 0, not Nesterov):
//   g = grad + wd * p;  buf = first ? g : momentum * buf + g;  p -= lr * buf
// adam_step (PyTorch Adam, L2 weight decay added to the gradient, bias-corrected):
//   g = grad + wd * p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^t

struct Params {
    n: u32, first: u32, _p0: u32, _p1: u32,
    lr: f32, momentum: f32, weight_decay: f32, eps: f32,
    beta1: f32, beta2: f32, bc1: f32, bc2: f32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> state_a: array<f32>;
@group(0) @binding(4) var<storage, read_write> state_b: array<f32>;

@compute @workgroup_size(WG)
fn sgd_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let t = nwg.x * nwg.y * WG;
    for (var k = 0u; k < 4u; k++) {
        let i = gid.x + gid.y * nwg.x * WG + k * t;
        if (i >= p.n) { return; }
        let g = grad[i] + p.weight_decay * param[i];
        var buf = g;
        if (p.first == 0u) { buf = p.momentum * state_a[i] + g; }
        state_a[i] = buf;
        param[i] -= p.lr * buf;
    }
}

@compute @workgroup_size(WG)
fn adam_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let t = nwg.x * nwg.y * WG;
    for (var k = 0u; k < 4u; k++) {
        let i = gid.x + gid.y * nwg.x * WG + k * t;
        if (i >= p.n) { return; }
        let g = grad[i] + p.weight_decay * param[i];
        let m = p.beta1 * state_a[i] + (1.0 - p.beta1) * g;
        let v = p.beta2 * state_b[i] + (1.0 - p.beta2) * g * g;
        state_a[i] = m;
        state_b[i] = v;
        param[i] -= (p.lr / p.bc1) * m / (sqrt(v) / sqrt(p.bc2) + p.eps);
    }
}
