// 2-D convolution as an implicit product over a channels-last input: lane -> one output
// pixel with CO output channels in scalar registers (forward; the input gradient is the same
// kernel over the padded, dilated or phase-split gradient), or lane -> one output channel with
// 4*KV input channels of one tap (weight gradient). It is the shape an implicit GEMM on a GPU
// starts from, and it is correct on every device (kernels-tests/conv2d.rs runs every case
// through it), but on lavapipe it is measured 3-5x slower than the direct kernels: there every
// storage load inside a loop runs once per lane (about 30 ns per 8-lane vec4, measured by the
// bench's load probe), whether or not its address is the same in every lane, because llvmpipe
// broadcasts only loads whose address is built from constants and push constants
// (nir_src_is_always_uniform), not from loop counters or the workgroup id. Here each vec4 of
// weights serves only 4 multiply-adds, so the weight loads bound it.
//
//   xq [N, Hp, Wp, C4] vec4s: the input zero-padded (and, for input gradients, dilated) with
//      channels last, 4 channels per vec4, channels >= C zero                      pad_nhwc
//   wq [KH*KW*C4*4, Cpad]: row k = (ky*KW + kx)*C4*4 + c, column o, zeros beyond    pack_igemm
//   conv2d_igemm          lane -> one output pixel (n, oy, ox); workgroup -> WG pixels x CO
//                         output channels. Per tap and vec4 of channels: 1 own vec4 load,
//                         CO vec4 loads of weights (the same in every lane), 4*CO multiply-adds.
//   conv2d_igemm_weight   lane -> one output channel co; workgroup -> a kernel tap, KV vec4s of
//                         input channels and a slice of the (n, oy) rows. Per 4 output pixels:
//                         1 own vec4 load of dy, 4*KV vec4 loads of xq (the same in every
//                         lane), 16*KV multiply-adds.
// Accumulators are indexed by constants only (helpers below, `if (CO > k)` on constants): a
// loop over an override-sized array is not unrolled there, and its array then lives in memory.

override WG: u32 = 64;
override KH: u32 = 3;
override KW: u32 = 3;
override STRIDE: u32 = 1;
// Output channels per lane (forward), a multiple of 4, at most 24.
override CO: u32 = 16;
// vec4s of input channels per lane (weight gradient), at most 6.
override KV: u32 = 4;

struct NhwcParams {
    n: u32, c: u32, h: u32, w: u32,
    hp: u32, wp: u32, c4: u32, top: u32,
    left: u32, dil: u32, _p0: u32, _p1: u32,
}

// The weights of the convolution being computed (forward: w itself; input gradient: the
// flipped, transposed w, or one stride-2 phase's taps of it): row (t, c), column o holds
// w[co, ci, by + sy*ty, bx + sx*tx] with (co, ci) = (o, c), or (c, o) when `transposed`,
// for tap t = ty*tw + tx of a th x tw sub-kernel.
struct PackParams {
    cout: u32, cin: u32, kh: u32, kw: u32,
    th: u32, tw: u32, by: i32, bx: i32,
    sy: i32, sx: i32, c4: u32, cpad: u32,
    transposed: u32, c_real: u32, o_real: u32, _p0: u32,
}

struct IgemmParams {
    n: u32, hp: u32, wp: u32, c4: u32,
    cout: u32, ho: u32, wo: u32, cpad: u32,
    has_bias: u32, pixels: u32, co_blocks: u32, dyq: u32,
    rows_per_split: u32, k_blocks: u32, cin: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> nh: NhwcParams;
@group(0) @binding(0) var<uniform> pk: PackParams;
@group(0) @binding(0) var<uniform> ig: IgemmParams;

// pad_nhwc, pack_igemm: one source, one destination
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// conv2d_igemm: xq, wq, bias, y
@group(0) @binding(1) var<storage, read> xq: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wq: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// conv2d_igemm_weight: xq, row-padded dy [N, Cout, Ho, dyq], partial sums [splits, Cout, Cin, KH, KW]
@group(0) @binding(2) var<storage, read> dyq: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

fn linear_id(gid: vec3u, nwg: vec3u) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// xq[n, yp, xp, c4] = src[n, 4 c4 .. 4 c4 + 3, sy, sx] where yp = top + dil*sy, xp = left +
// dil*sx; zeros elsewhere. One invocation per (n, yp, c4) row of vec4s: the integer divisions
// happen once per row.
@compute @workgroup_size(WG)
fn pad_nhwc(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    if (id >= nh.n * nh.hp * nh.c4) { return; }
    let c4 = id % nh.c4;
    let yp = (id / nh.c4) % nh.hp;
    let n = id / (nh.c4 * nh.hp);
    let ty = i32(yp) - i32(nh.top);
    let sy = u32(max(ty, 0)) / nh.dil;
    let row_inside = ty >= 0 && u32(ty) % nh.dil == 0u && sy < nh.h;
    let plane = nh.h * nh.w;
    // The four channels' rows, clamped to real channels for reading.
    let r0 = (n * nh.c + min(4u * c4, nh.c - 1u)) * plane + min(sy, nh.h - 1u) * nh.w;
    let r1 = (n * nh.c + min(4u * c4 + 1u, nh.c - 1u)) * plane + min(sy, nh.h - 1u) * nh.w;
    let r2 = (n * nh.c + min(4u * c4 + 2u, nh.c - 1u)) * plane + min(sy, nh.h - 1u) * nh.w;
    let r3 = (n * nh.c + min(4u * c4 + 3u, nh.c - 1u)) * plane + min(sy, nh.h - 1u) * nh.w;
    let real = vec4<bool>(4u * c4 < nh.c, 4u * c4 + 1u < nh.c, 4u * c4 + 2u < nh.c, 4u * c4 + 3u < nh.c);
    let out = ((n * nh.hp + yp) * nh.wp) * nh.c4 + c4;
    for (var xp = 0u; xp < nh.wp; xp++) {
        let tx = i32(xp) - i32(nh.left);
        let sx = u32(max(tx, 0)) >> (nh.dil - 1u);
        let inside = row_inside && tx >= 0 && (u32(tx) & (nh.dil - 1u)) == 0u && sx < nh.w;
        let s = min(sx, nh.w - 1u);
        let v = vec4<f32>(src[r0 + s], src[r1 + s], src[r2 + s], src[r3 + s]);
        dst4[out + xp * nh.c4] = select(vec4<f32>(0.0), v, real & vec4<bool>(inside));
    }
}

// dst[(t*C4*4 + c)*Cpad + o]: see PackParams. One invocation per element.
@compute @workgroup_size(WG)
fn pack_igemm(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = linear_id(gid, nwg);
    let cs = pk.c4 * 4u;
    if (i >= pk.th * pk.tw * cs * pk.cpad) { return; }
    let o = i % pk.cpad;
    let c = (i / pk.cpad) % cs;
    let t = i / (pk.cpad * cs);
    let ky = u32(pk.by + pk.sy * i32(t / pk.tw));
    let kx = u32(pk.bx + pk.sx * i32(t % pk.tw));
    var co = o;
    var ci = c;
    if (pk.transposed != 0u) {
        co = c;
        ci = o;
    }
    let real = c < pk.c_real && o < pk.o_real;
    let s = ((min(co, pk.cout - 1u) * pk.cin + min(ci, pk.cin - 1u)) * pk.kh + min(ky, pk.kh - 1u)) * pk.kw + min(kx, pk.kw - 1u);
    dst[i] = select(0.0, src[s], real);
}

// acc[k .. k+3] += a * w
fn fma4(acc: ptr<function, array<f32, 24>>, k: u32, a: f32, w: vec4<f32>) {
    (*acc)[k] = fma(a, w.x, (*acc)[k]);
    (*acc)[k + 1u] = fma(a, w.y, (*acc)[k + 1u]);
    (*acc)[k + 2u] = fma(a, w.z, (*acc)[k + 2u]);
    (*acc)[k + 3u] = fma(a, w.w, (*acc)[k + 3u]);
}

// One input value a against the CO weights of row `wi` (vec4 index).
fn row_update(acc: ptr<function, array<f32, 24>>, a: f32, wi: u32) {
    fma4(acc, 0u, a, wq[wi]);
    if (CO > 4u) { fma4(acc, 4u, a, wq[wi + 1u]); }
    if (CO > 8u) { fma4(acc, 8u, a, wq[wi + 2u]); }
    if (CO > 12u) { fma4(acc, 12u, a, wq[wi + 3u]); }
    if (CO > 16u) { fma4(acc, 16u, a, wq[wi + 4u]); }
    if (CO > 20u) { fma4(acc, 20u, a, wq[wi + 5u]); }
}

fn store4(acc: ptr<function, array<f32, 24>>, k: u32, co0: u32, at: u32, plane: u32) {
    for (var j = 0u; j < 4u; j++) {
        let co = co0 + k + j;
        if (co < ig.cout) {
            var b = 0.0;
            if (ig.has_bias != 0u) { b = bias[co]; }
            var v = (*acc)[k];
            if (j == 1u) { v = (*acc)[k + 1u]; }
            if (j == 2u) { v = (*acc)[k + 2u]; }
            if (j == 3u) { v = (*acc)[k + 3u]; }
            y[at + co * plane] = v + b;
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_igemm(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    // Everything up to `p` is the same in every lane.
    let group = wg.x + wg.y * nwg.x;
    let pixel_groups = (ig.pixels + WG - 1u) / WG;
    if (group >= pixel_groups * ig.co_blocks) { return; }
    let co0 = (group / pixel_groups) * CO;
    let p = (group % pixel_groups) * WG + lane;
    // Lanes past the last pixel compute the last one again and store nothing.
    let pc = min(p, ig.pixels - 1u);
    let ox = pc % ig.wo;
    let oy = (pc / ig.wo) % ig.ho;
    let n = pc / (ig.wo * ig.ho);
    // Zero-initialised, as every WGSL variable without an initialiser.
    var acc: array<f32, 24>;
    let row = ig.wp * ig.c4;
    let base = ((n * ig.hp + oy * STRIDE) * ig.wp + ox * STRIDE) * ig.c4;
    let wrow = ig.cpad / 4u;
    var wi = co0 / 4u;
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let xb = base + ky * row + kx * ig.c4;
            for (var c = 0u; c < ig.c4; c++) {
                let a = xq[xb + c];
                row_update(&acc, a.x, wi);
                row_update(&acc, a.y, wi + wrow);
                row_update(&acc, a.z, wi + 2u * wrow);
                row_update(&acc, a.w, wi + 3u * wrow);
                wi += 4u * wrow;
            }
        }
    }
    if (p >= ig.pixels) { return; }
    let plane = ig.ho * ig.wo;
    let at = n * ig.cout * plane + oy * ig.wo + ox;
    store4(&acc, 0u, co0, at, plane);
    if (CO > 4u) { store4(&acc, 4u, co0, at, plane); }
    if (CO > 8u) { store4(&acc, 8u, co0, at, plane); }
    if (CO > 12u) { store4(&acc, 12u, co0, at, plane); }
    if (CO > 16u) { store4(&acc, 16u, co0, at, plane); }
    if (CO > 20u) { store4(&acc, 20u, co0, at, plane); }
}

// The lane's dy value d at one pixel against the KV vec4s of input channels there (vec4 index xi).
fn pixel_update(acc: ptr<function, array<f32, 24>>, d: f32, xi: u32) {
    fma4(acc, 0u, d, xq[xi]);
    if (KV > 1u) { fma4(acc, 4u, d, xq[xi + 1u]); }
    if (KV > 2u) { fma4(acc, 8u, d, xq[xi + 2u]); }
    if (KV > 3u) { fma4(acc, 12u, d, xq[xi + 3u]); }
    if (KV > 4u) { fma4(acc, 16u, d, xq[xi + 4u]); }
    if (KV > 5u) { fma4(acc, 20u, d, xq[xi + 5u]); }
}

// acc[k .. k+3] -> dw of input channels 4 v .. 4 v + 3 (k = 4 (v - v0)) at one tap.
fn store4w(acc: ptr<function, array<f32, 24>>, k: u32, v: u32, at: u32) {
    for (var j = 0u; j < 4u; j++) {
        let ci = 4u * v + j;
        if (v < ig.c4 && ci < ig.cin) {
            var a = (*acc)[k];
            if (j == 1u) { a = (*acc)[k + 1u]; }
            if (j == 2u) { a = (*acc)[k + 2u]; }
            if (j == 3u) { a = (*acc)[k + 3u]; }
            dw[at + ci * KH * KW] = a;
        }
    }
}

// Workgroup -> (split s, block kb of KV vec4s of input channels at one tap, group of WG output
// channels), the channel group fastest; lane -> output channel. Split s sums the rows (n, oy)
// in [s*R, (s+1)*R), R = rows_per_split, into dw[s]. Pixels of the last quad past Wo have
// dy = 0 in the row-padded dy, so they add nothing.
@compute @workgroup_size(WG)
fn conv2d_igemm_weight(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    // Everything but `co` and the dy addresses is the same in every lane.
    let group = wg.x + wg.y * nwg.x;
    let co_groups = (ig.cout + WG - 1u) / WG;
    let rows = ig.n * ig.ho;
    let splits = (rows + ig.rows_per_split - 1u) / ig.rows_per_split;
    if (group >= splits * ig.k_blocks * co_groups) { return; }
    let cg = group % co_groups;
    let kb = (group / co_groups) % ig.k_blocks;
    let split = group / (co_groups * ig.k_blocks);
    let blocks_per_tap = (ig.c4 + KV - 1u) / KV;
    let tap = kb / blocks_per_tap;
    let v0 = (kb % blocks_per_tap) * KV;
    let ky = tap / KW;
    let kx = tap % KW;
    let co = cg * WG + lane;
    let coc = min(co, ig.cout - 1u);
    var acc: array<f32, 24>;
    let quads = ig.dyq / 4u;
    let step = STRIDE * ig.c4;
    let r1 = min((split + 1u) * ig.rows_per_split, rows);
    for (var r = split * ig.rows_per_split; r < r1; r++) {
        let n = r / ig.ho;
        let oy = r % ig.ho;
        let d_row = ((n * ig.cout + coc) * ig.ho + oy) * quads;
        var xi = ((n * ig.hp + oy * STRIDE + ky) * ig.wp + kx) * ig.c4 + v0;
        for (var q = 0u; q < quads; q++) {
            let d = dyq[d_row + q];
            pixel_update(&acc, d.x, xi);
            pixel_update(&acc, d.y, xi + step);
            pixel_update(&acc, d.z, xi + 2u * step);
            pixel_update(&acc, d.w, xi + 3u * step);
            xi += 4u * step;
        }
    }
    if (co >= ig.cout) { return; }
    let at = ((split * ig.cout + co) * ig.cin) * KH * KW + tap;
    store4w(&acc, 0u, v0, at);
    if (KV > 1u) { store4w(&acc, 4u, v0 + 1u, at); }
    if (KV > 2u) { store4w(&acc, 8u, v0 + 2u, at); }
    if (KV > 3u) { store4w(&acc, 12u, v0 + 3u, at); }
    if (KV > 4u) { store4w(&acc, 16u, v0 + 4u, at); }
    if (KV > 5u) { store4w(&acc, 20u, v0 + 5u, at); }
}
