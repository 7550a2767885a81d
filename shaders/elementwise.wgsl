// Elementwise kernels: fill, ReLU, residual add, the residual add with the ReLU fused,
// gradient accumulation, scaling, the transpose of a matrix, and the copy from one storage
// type to another (f32 <-> f16).
// Thread mapping: each invocation handles 4 elements spaced by the total number of invocations
// T (i, i+T, i+2T, i+3T), so neighbouring invocations touch neighbouring elements (coalesced on a
// GPU, contiguous SIMD lanes on a CPU device) and a workgroup does 4*WG elements.
// Dispatch: ceil(n / (4*WG)) workgroups, possibly spread over x and y.

struct Params {
    n: u32,
    bits: u32,   // fill: the 32-bit pattern to store
    alpha: f32,  // scale: the factor
    _pad: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read_write> words: array<u32>;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// What the residual add reads as its second operand (Shortcut) and writes (Act), and what
// relu_backward reads as the ReLU's stored output (Act): f32 here; f16 under `--precision
// f16`, where a residual block's output goes on to the next block (gpu/kernels.rs, Storage).
alias Shortcut = f32;
alias Act = f32;

@group(0) @binding(1) var<storage, read> out_y: array<Act>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<Shortcut>;
@group(0) @binding(3) var<storage, read_write> c: array<Act>;

@group(0) @binding(1) var<storage, read_write> acc: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

// The cast's storage types: f32 here; an f16 kernel rewrites one of them (gpu/kernels.rs,
// Storage) and is its own module with `enable f16;`.
alias From = f32;
alias To = f32;
@group(0) @binding(1) var<storage, read> cast_src: array<From>;
@group(0) @binding(2) var<storage, read_write> cast_dst: array<To>;
// 1 when To is f16: values beyond its range saturate at +-65504 (WGSL leaves an out-of-range
// conversion's value undetermined).
override SATURATE: u32 = 0u;
const HALF_MAX: f32 = 65504.0;

fn first_index(gid: vec3u, nwg: vec3u) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn stride(nwg: vec3u) -> u32 {
    return nwg.x * nwg.y * WG;
}

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { words[i] = p.bits; }
    }
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { y[i] = max(x[i], 0.0); }
    }
}

// The gradient passes where the output is positive (PyTorch's convention: zero at exactly 0).
@compute @workgroup_size(WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { dx[i] = select(0.0, dy[i], f32(out_y[i]) > 0.0); }
    }
}

@compute @workgroup_size(WG)
fn add_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { c[i] = Act(a[i] + f32(b[i])); }
    }
}

@compute @workgroup_size(WG)
fn accumulate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { acc[i] = acc[i] + src[i]; }
    }
}

@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { y[i] = p.alpha * x[i]; }
    }
}

// y [C, R] = x [R, C]^T: output element i = (c, r) reads x[r * C + c]; p.bits is C.
@compute @workgroup_size(WG)
fn transpose(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    let rows = p.n / p.bits;
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { y[i] = x[(i % rows) * p.bits + i / rows]; }
    }
}

@compute @workgroup_size(WG)
fn cast_storage(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) {
            var v = f32(cast_src[i]);
            if (SATURATE != 0u) { v = clamp(v, -HALF_MAX, HALF_MAX); }
            cast_dst[i] = To(v);
        }
    }
}

// The residual block's end, relu(a + b) (its backward pass: relu_backward on the output).
@compute @workgroup_size(WG)
fn add_relu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i0 = first_index(gid, nwg);
    let t = stride(nwg);
    for (var k = 0u; k < 4u; k++) {
        let i = i0 + k * t;
        if (i < p.n) { c[i] = Act(max(a[i] + f32(b[i]), 0.0)); }
    }
}
