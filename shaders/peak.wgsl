// The device's FMA ceiling: every invocation runs ITERS rounds of ACC independent fused
// multiply-adds (acc = acc * a + b, `a` and `b` uniform), so nothing but the multiply-adds and
// the registers that hold the accumulators bound it. On lavapipe each scalar of an invocation is
// one SIMD register shared by 8 invocations, so the ceiling depends on ACC: too few and the FMA
// latency shows, too many and they spill.
//   peak_scalar: invocation -> ACC scalar chains (ACC a multiple of 4, at most 32)
//   peak_vec4:   invocation -> ACC vec4 chains (at most 8)
// Each invocation writes the sum of its chains, so the work cannot be optimised away.
//
// Written out rather than looped: a loop whose bound is an override constant is not unrolled
// by lavapipe's compiler, and an array indexed by its counter then lives in memory, not in
// registers (measured: 18 GFLOP/s at 32 accumulators instead of 60-85). The `if (ACC > k)`
// tests are on a constant and cost nothing. The convolution kernels follow the same rule.

override WG: u32 = 64;
override ACC: u32 = 16;
override ITERS: u32 = 256;

struct PeakParams {
    a: f32, b: f32, invocations: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> pp: PeakParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

// acc[k..k+3] = acc * a + b
fn fma4(acc: ptr<function, array<f32, 32>>, k: u32, a: f32, b: f32) {
    (*acc)[k] = fma((*acc)[k], a, b);
    (*acc)[k + 1u] = fma((*acc)[k + 1u], a, b);
    (*acc)[k + 2u] = fma((*acc)[k + 2u], a, b);
    (*acc)[k + 3u] = fma((*acc)[k + 3u], a, b);
}

fn start4(acc: ptr<function, array<f32, 32>>, k: u32, x: f32) {
    (*acc)[k] = x + f32(k);
    (*acc)[k + 1u] = x + f32(k + 1u);
    (*acc)[k + 2u] = x + f32(k + 2u);
    (*acc)[k + 3u] = x + f32(k + 3u);
}

fn sum4(acc: ptr<function, array<f32, 32>>, k: u32) -> f32 {
    return (*acc)[k] + (*acc)[k + 1u] + (*acc)[k + 2u] + (*acc)[k + 3u];
}

@compute @workgroup_size(WG)
fn peak_scalar(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    if (id >= pp.invocations) { return; }
    let x = f32(id) * 1e-6;
    let a = pp.a;
    let b = pp.b;
    var acc: array<f32, 32>;
    start4(&acc, 0u, x); start4(&acc, 4u, x); start4(&acc, 8u, x); start4(&acc, 12u, x);
    start4(&acc, 16u, x); start4(&acc, 20u, x); start4(&acc, 24u, x); start4(&acc, 28u, x);
    for (var it = 0u; it < ITERS; it++) {
        fma4(&acc, 0u, a, b);
        if (ACC > 4u) { fma4(&acc, 4u, a, b); }
        if (ACC > 8u) { fma4(&acc, 8u, a, b); }
        if (ACC > 12u) { fma4(&acc, 12u, a, b); }
        if (ACC > 16u) { fma4(&acc, 16u, a, b); }
        if (ACC > 20u) { fma4(&acc, 20u, a, b); }
        if (ACC > 24u) { fma4(&acc, 24u, a, b); }
        if (ACC > 28u) { fma4(&acc, 28u, a, b); }
    }
    var s = sum4(&acc, 0u);
    if (ACC > 4u) { s += sum4(&acc, 4u); }
    if (ACC > 8u) { s += sum4(&acc, 8u); }
    if (ACC > 12u) { s += sum4(&acc, 12u); }
    if (ACC > 16u) { s += sum4(&acc, 16u); }
    if (ACC > 20u) { s += sum4(&acc, 20u); }
    if (ACC > 24u) { s += sum4(&acc, 24u); }
    if (ACC > 28u) { s += sum4(&acc, 28u); }
    out[id] = s;
}

@compute @workgroup_size(WG)
fn peak_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    if (id >= pp.invocations) { return; }
    let x = vec4<f32>(f32(id) * 1e-6);
    let a = vec4<f32>(pp.a);
    let b = vec4<f32>(pp.b);
    let c = vec4<f32>(0.0, 0.25, 0.5, 0.75);
    var v0 = x + c; var v1 = x + c + 1.0; var v2 = x + c + 2.0; var v3 = x + c + 3.0;
    var v4 = x + c + 4.0; var v5 = x + c + 5.0; var v6 = x + c + 6.0; var v7 = x + c + 7.0;
    for (var it = 0u; it < ITERS; it++) {
        v0 = fma(v0, a, b);
        if (ACC > 1u) { v1 = fma(v1, a, b); }
        if (ACC > 2u) { v2 = fma(v2, a, b); }
        if (ACC > 3u) { v3 = fma(v3, a, b); }
        if (ACC > 4u) { v4 = fma(v4, a, b); }
        if (ACC > 5u) { v5 = fma(v5, a, b); }
        if (ACC > 6u) { v6 = fma(v6, a, b); }
        if (ACC > 7u) { v7 = fma(v7, a, b); }
    }
    var s = v0;
    if (ACC > 1u) { s += v1; }
    if (ACC > 2u) { s += v2; }
    if (ACC > 3u) { s += v3; }
    if (ACC > 4u) { s += v4; }
    if (ACC > 5u) { s += v5; }
    if (ACC > 6u) { s += v6; }
    if (ACC > 7u) { s += v7; }
    out[id] = s.x + s.y + s.z + s.w;
}

// What a storage-buffer load costs inside a loop: every round loads one vec4 and feeds its 4
// components to 16 accumulators (16 multiply-adds per load). SAME = 1: the address is the same
// in every lane (built from the workgroup id and the loop counter), SAME = 0: each lane reads
// its own. src4 holds 4096 vec4s (64 KiB, in cache).
override SAME: u32 = 0;

@group(0) @binding(2) var<storage, read> src4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn peak_load(
    @builtin(global_invocation_id) gid: vec3u,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let id = gid.x + gid.y * nwg.x * WG;
    if (id >= pp.invocations) { return; }
    var at = id * 7u;
    if (SAME == 1u) { at = (wg.x + wg.y * nwg.x) * 7u; }
    let b = pp.b;
    var acc: array<f32, 32>;
    start4(&acc, 0u, f32(id) * 1e-6); start4(&acc, 4u, f32(id) * 1e-6);
    start4(&acc, 8u, f32(id) * 1e-6); start4(&acc, 12u, f32(id) * 1e-6);
    for (var it = 0u; it < ITERS; it++) {
        let v = src4[(at + it) & 4095u];
        fma4(&acc, 0u, v.x, b);
        fma4(&acc, 4u, v.y, b);
        fma4(&acc, 8u, v.z, b);
        fma4(&acc, 12u, v.w, b);
    }
    out[id] = sum4(&acc, 0u) + sum4(&acc, 4u) + sum4(&acc, 8u) + sum4(&acc, 12u);
}

// The same with the vec4 read from workgroup memory (filled once, then one barrier): what a
// workgroup-memory load costs inside a loop.
var<workgroup> tile: array<vec4<f32>, 1024>;

@compute @workgroup_size(WG)
fn peak_shared(
    @builtin(global_invocation_id) gid: vec3u,
    @builtin(local_invocation_index) lane: u32,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let id = gid.x + gid.y * nwg.x * WG;
    for (var j = lane; j < 1024u; j += WG) { tile[j] = src4[j]; }
    workgroupBarrier();
    let at = id * 7u;
    let b = pp.b;
    var acc: array<f32, 32>;
    start4(&acc, 0u, f32(id) * 1e-6); start4(&acc, 4u, f32(id) * 1e-6);
    start4(&acc, 8u, f32(id) * 1e-6); start4(&acc, 12u, f32(id) * 1e-6);
    for (var it = 0u; it < ITERS; it++) {
        let v = tile[(at + it) & 1023u];
        fma4(&acc, 0u, v.x, b);
        fma4(&acc, 4u, v.y, b);
        fma4(&acc, 8u, v.z, b);
        fma4(&acc, 12u, v.w, b);
    }
    if (id < pp.invocations) {
        out[id] = sum4(&acc, 0u) + sum4(&acc, 4u) + sum4(&acc, 8u) + sum4(&acc, 12u);
    }
}
