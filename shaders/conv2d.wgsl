// 2-D convolution, NCHW, cross-correlation as in PyTorch (square stride 1 or 2, zero padding,
// kernels up to 5 x 5).
//   x [N, Cin, H, W]   w [Cout, Cin, KH, KW]   y [N, Cout, Ho, Wo]
//
// (The forward kernel's parameters, bindings and helpers are in conv2d_direct.wgsl, prepended.)
//
// Three passes share two kernels:
//   forward          y  = conv(pad(x), w, stride)                                conv2d_forward
//   input gradient   dx = conv(pad(dilate(dy)), flipped w, Cin <-> Cout, 1)      conv2d_forward
//                    (stride 2: four stride-1 convolutions of pad(dy), one per output parity,
//                    with the taps of that parity; pack_phase, scatter_phase; with subgroups
//                    a 3x3 pad-1 kernel's four phases at once, conv2d_subgroup.wgsl; or the
//                    product of dy and the weights, folded: col2im)
//   weight gradient  dw[co, ci, ky, kx] = sum over n, oy, ox of
//                    dy[n, co, oy, ox] * pad(x)[n, ci, oy*S + ky, ox*S + kx]    conv2d_backward_weight
//                    (small maps whose width is not a multiple of 4: a matmul of channels-last
//                    dy with im2col(x); im2col, channels_last, then shaders/matmul.wgsl; the
//                    forward pass of such maps likewise: im2col, matmul, channels_first)
// `pad_dilate` writes the padded input once, its rows a whole number of vec4s long (Wq), zeros
// around, so the inner loops read aligned vec4s without bounds checks.
//
// Loads are the cost on every device, and on a CPU device (lavapipe) a vec4 load costs about
// what a scalar load does, so each invocation reuses what it loads many times:
//   conv2d_forward: invocation -> 8 output channels x 2 rows x 4 consecutive output pixels.
//     Per (ci, ky) and row: 2-3 vec4 loads cover the input window of the 4 pixels for every kx;
//     per tap 2 vec4 loads of packed weights, used for 64 multiply-adds.
//   conv2d_backward_weight: invocation -> 4 output channels x one input channel x all taps.
//     Per 4 output pixels: 4 vec4 loads of dy, KH * (2-3) of x; 4*KH*KW vec4 multiply-adds.

struct PadParams {
    planes: u32, h: u32, w: u32, hp: u32,
    wq: u32, top: u32, left: u32, dil: u32,
}

struct PackParams {
    cout: u32, cin: u32, kh: u32, kw: u32,
    cpad: u32, _p0: u32, _p1: u32, _p2: u32,
}

// Stride-2 input gradients by phases: sub-kernel packing and interleaving of the results.
struct PhaseParams {
    cout: u32, cin: u32, kh: u32, kw: u32,
    cpad: u32, ry: u32, rx: u32, ay: u32,
    ax: u32, planes: u32, hy: u32, wx: u32,
    h: u32, w: u32, py: u32, px: u32,
}

// Weight gradients of small feature maps as a matmul: im2col and a channels-last copy of dy.
struct ColParams {
    n: u32, cin: u32, h: u32, w: u32,
    ho: u32, wo: u32, kh: u32, kw: u32,
    stride: u32, pad: u32, transposed: u32, has_bias: u32,
}

@group(0) @binding(0) var<uniform> pad: PadParams;
@group(0) @binding(0) var<uniform> col: ColParams;
@group(0) @binding(0) var<uniform> ph: PhaseParams;
@group(0) @binding(0) var<uniform> pk: PackParams;

// pad_dilate, pack_*: one source, one destination
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;


// dst [planes, Hp, Wq]: src [planes, H, W] spread `dil` (1 or 2) apart, shifted by (top, left),
// zeros elsewhere. One invocation per destination row: integer division, which a CPU device
// cannot vectorise, happens once per row rather than once per element.
@compute @workgroup_size(WG)
fn pad_dilate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let row = linear_id(gid, nwg);
    if (row >= pad.planes * pad.hp) { return; }
    let y = row % pad.hp;
    let plane = row / pad.hp;
    let ty = i32(y) - i32(pad.top);
    let sy = u32(max(ty, 0)) / pad.dil;
    let row_inside = ty >= 0 && u32(ty) % pad.dil == 0u && sy < pad.h;
    let src_row = (plane * pad.h + min(sy, pad.h - 1u)) * pad.w;
    let dst_row = row * pad.wq;
    for (var x = 0u; x < pad.wq; x++) {
        let tx = i32(x) - i32(pad.left);
        let sx = u32(max(tx, 0)) >> (pad.dil - 1u);
        let inside = row_inside && tx >= 0 && (u32(tx) & (pad.dil - 1u)) == 0u && sx < pad.w;
        dst[dst_row + x] = select(0.0, src[src_row + min(sx, pad.w - 1u)], inside);
    }
}

// The packing kernels run one invocation per packed row, so that the integer divisions that
// find a row's tap (which a CPU device cannot vectorise) happen once per row, not per element.

// dst[tap][co] = w[co, ci, ky, kx], tap = (ci*KH + ky)*KW + kx; columns co >= Cout are 0.
@compute @workgroup_size(WG)
fn pack_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let tap = linear_id(gid, nwg);
    let taps = pk.cin * pk.kh * pk.kw;
    if (tap >= taps) { return; }
    let row = tap * pk.cpad;
    for (var co = 0u; co < pk.cout; co++) { dst[row + co] = src[co * taps + tap]; }
    for (var co = pk.cout; co < pk.cpad; co++) { dst[row + co] = 0.0; }
}

// The weights of the input-gradient convolution, whose input channels are the forward pass's
// output channels: dst[tap'][ci] = w[co, ci, KH-1-ky, KW-1-kx], tap' = (co*KH + ky)*KW + kx.
@compute @workgroup_size(WG)
fn pack_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let tap = linear_id(gid, nwg);
    let kk = pk.kh * pk.kw;
    if (tap >= pk.cout * kk) { return; }
    let co = tap / kk;
    let ky = (tap % kk) / pk.kw;
    let kx = tap % pk.kw;
    // w[co, ci, flipped tap] for ci = 0, 1, ...: kk apart.
    let first = co * pk.cin * kk + (pk.kh - 1u - ky) * pk.kw + (pk.kw - 1u - kx);
    let row = tap * pk.cpad;
    for (var ci = 0u; ci < pk.cin; ci++) { dst[row + ci] = src[first + ci * kk]; }
    for (var ci = pk.cin; ci < pk.cpad; ci++) { dst[row + ci] = 0.0; }
}

// The weights of one phase of a stride-2 input gradient (see backward_input_by_phases in
// src/ops/conv2d.rs): dst[tap'][ci] = w[co, ci, ry + 2 (ay-1-t), rx + 2 (ax-1-u)],
// tap' = (co*ay + t)*ax + u: the taps of one parity, flipped.
@compute @workgroup_size(WG)
fn pack_phase(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = linear_id(gid, nwg);
    let kk = ph.ay * ph.ax;
    if (i >= ph.cout * kk * ph.cpad) { return; }
    let tap = i / ph.cpad;
    let ci = i % ph.cpad;
    let co = tap / kk;
    let t = (tap % kk) / ph.ax;
    let u = tap % ph.ax;
    let ky = ph.ry + 2u * (ph.ay - 1u - t);
    let kx = ph.rx + 2u * (ph.ax - 1u - u);
    let s = ((co * ph.cin + min(ci, ph.cin - 1u)) * ph.kh + ky) * ph.kw + kx;
    dst[i] = select(0.0, src[s], ci < ph.cin);
}

// dst [planes, h, w] at (2 i + py, 2 j + px) = src [planes, hy, wx] at (i, j). One invocation
// per source row.
@compute @workgroup_size(WG)
fn scatter_phase(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let row = linear_id(gid, nwg);
    if (row >= ph.planes * ph.hy) { return; }
    let plane = row / ph.hy;
    let i = row - plane * ph.hy;
    let d = (plane * ph.h + 2u * i + ph.py) * ph.w + ph.px;
    let s = row * ph.wx;
    for (var j = 0u; j < ph.wx; j++) { dst[d + 2u * j] = src[s + j]; }
}

// dst [N*Ho*Wo, Cin*KH*KW] row-major: row (n, oy, ox), column (ci, ky, kx) holds the input
// pixel that tap sees (0 in the padding); `transposed`: dst [Cin*KH*KW, N*Ho*Wo] instead.
// One invocation per (n, oy, ci).
@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    if (id >= col.n * col.ho * col.cin) { return; }
    let ci = id % col.cin;
    let oy = (id / col.cin) % col.ho;
    let n = id / (col.cin * col.ho);
    let kk = col.kh * col.kw;
    let row_len = col.cin * kk;
    let rows = col.n * col.ho * col.wo;
    let plane = (n * col.cin + ci) * col.h;
    for (var ox = 0u; ox < col.wo; ox++) {
        let row = (n * col.ho + oy) * col.wo + ox;
        for (var ky = 0u; ky < col.kh; ky++) {
            let y = i32(oy * col.stride + ky) - i32(col.pad);
            for (var kx = 0u; kx < col.kw; kx++) {
                let x = i32(ox * col.stride + kx) - i32(col.pad);
                let inside = y >= 0 && y < i32(col.h) && x >= 0 && x < i32(col.w);
                let at = (plane + u32(clamp(y, 0, i32(col.h) - 1))) * col.w + u32(clamp(x, 0, i32(col.w) - 1));
                let tap = ci * kk + ky * col.kw + kx;
                var out = row * row_len + tap;
                if (col.transposed != 0u) { out = tap * rows + row; }
                dst[out] = select(0.0, src[at], inside);
            }
        }
    }
}

// im2col with vec4 stores, for the CPU device, where each store of a lane is a scatter of one
// element per SIMD lane whatever its width, so writing 4 floats at once quarters the stores.
// KH, KW and STRIDE are pipeline constants (the loops over taps unroll); col.* as in im2col.
@group(0) @binding(2) var<storage, read_write> dst4: array<vec4<f32>>;

// The input value tap (ky, kx) of output pixel (n, oy, ox) sees in channel ci (0 in the padding).
fn tap_value(n: u32, ci: u32, oy: u32, ox: u32, ky: u32, kx: u32) -> f32 {
    let y = i32(oy * STRIDE + ky) - i32(col.pad);
    let x = i32(ox * STRIDE + kx) - i32(col.pad);
    let inside = y >= 0 && y < i32(col.h) && x >= 0 && x < i32(col.w);
    let at = ((n * col.cin + ci) * col.h + u32(clamp(y, 0, i32(col.h) - 1))) * col.w
        + u32(clamp(x, 0, i32(col.w) - 1));
    return select(0.0, src[at], inside);
}

// The transposed layout [Cin*KH*KW, N*Ho*Wo] (N*Ho*Wo a multiple of 4). Invocation -> (input
// channel, 4 consecutive output pixels, which may cross rows and images): per tap one vec4.
@compute @workgroup_size(WG)
fn im2col_rows4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let rows = col.n * col.ho * col.wo;
    let blocks = rows / 4u;
    if (id >= col.cin * blocks) { return; }
    let ci = id / blocks;
    let row = (id % blocks) * 4u;
    // (n, oy, ox) of the 4 pixels, stepped from the first without dividing again.
    var n: array<u32, 4>;
    var oy: array<u32, 4>;
    var ox: array<u32, 4>;
    n[0] = row / (col.ho * col.wo);
    oy[0] = (row / col.wo) % col.ho;
    ox[0] = row % col.wo;
    for (var j = 1u; j < 4u; j++) {
        let wrap = ox[j - 1u] + 1u == col.wo;
        let next_row = oy[j - 1u] + u32(wrap);
        let wrap_image = next_row == col.ho;
        ox[j] = select(ox[j - 1u] + 1u, 0u, wrap);
        oy[j] = select(next_row, 0u, wrap_image);
        n[j] = n[j - 1u] + u32(wrap_image);
    }
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let tap = (ci * KH + ky) * KW + kx;
            dst4[(tap * rows + row) / 4u] = vec4<f32>(
                tap_value(n[0], ci, oy[0], ox[0], ky, kx),
                tap_value(n[1], ci, oy[1], ox[1], ky, kx),
                tap_value(n[2], ci, oy[2], ox[2], ky, kx),
                tap_value(n[3], ci, oy[3], ox[3], ky, kx),
            );
        }
    }
}

// The row-major layout [N*Ho*Wo, Cin*KH*KW] (Cin a multiple of 4). Invocation -> (output
// pixel, 4 consecutive input channels): their 4 * KH*KW taps, contiguous in the row, as KH*KW
// vec4s; element e of them is channel e / (KH*KW), tap e % (KH*KW).
@compute @workgroup_size(WG)
fn im2col_taps4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let groups = col.cin / 4u;
    let rows = col.n * col.ho * col.wo;
    if (id >= rows * groups) { return; }
    let row = id / groups;
    let c0 = (id % groups) * 4u;
    let n = row / (col.ho * col.wo);
    let oy = (row / col.wo) % col.ho;
    let ox = row % col.wo;
    let kk = KH * KW;
    let out = (row * col.cin * kk + c0 * kk) / 4u;
    for (var j = 0u; j < kk; j++) {
        var v: vec4<f32>;
        for (var q = 0u; q < 4u; q++) {
            let e = 4u * j + q;
            let tap = e % kk;
            v[q] = tap_value(n, c0 + e / kk, oy, ox, tap / KW, tap % KW);
        }
        dst4[out + j] = v;
    }
}

// dx [N, Cin, H, W] (here col.h, col.w; col.ho, col.wo those of dy) from src = the input
// gradient's unfolded form [N*Ho*Wo, Cin*KH*KW] (the product of dy and the weights: the
// gradient of every value im2col would have written), each input pixel summing the entries
// of the taps that saw it. Invocation -> (n, ci, block of STRIDE x STRIDE pixels from
// (STRIDE i, STRIDE j)): tap (ky, kx) reaches exactly one pixel of a block, from output
// pixel (i, j) + ((phase + PAD - tap) / STRIDE) per axis, so every load is used. PAD is a
// pipeline constant, like KH, KW and STRIDE, so that the sums' indices are too (STRIDE is 1
// or 2, as ConvShape allows: at most 4 sums).
override PAD: u32 = 0u;

@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let bh = (col.h + STRIDE - 1u) / STRIDE;
    let bw = (col.w + STRIDE - 1u) / STRIDE;
    if (id >= col.n * col.cin * bh * bw) { return; }
    let j = id % bw;
    let i = (id / bw) % bh;
    let ci = (id / (bw * bh)) % col.cin;
    let n = id / (bw * bh * col.cin);
    let taps = col.cin * KH * KW;
    var sum: array<f32, 4>;
    for (var ky = 0u; ky < KH; ky++) {
        // The block row this tap reaches, and the output row it comes from.
        let py = (ky + STRIDE * KH - PAD % STRIDE) % STRIDE;
        let oy = i32(i) + (i32(py + PAD) - i32(ky)) / i32(STRIDE);
        for (var kx = 0u; kx < KW; kx++) {
            let px = (kx + STRIDE * KW - PAD % STRIDE) % STRIDE;
            let ox = i32(j) + (i32(px + PAD) - i32(kx)) / i32(STRIDE);
            let inside = oy >= 0 && oy < i32(col.ho) && ox >= 0 && ox < i32(col.wo);
            let pixel = (n * col.ho + u32(clamp(oy, 0, i32(col.ho) - 1))) * col.wo
                + u32(clamp(ox, 0, i32(col.wo) - 1));
            let v = src[pixel * taps + (ci * KH + ky) * KW + kx];
            sum[py * STRIDE + px] += select(0.0, v, inside);
        }
    }
    for (var py = 0u; py < STRIDE; py++) {
        for (var px = 0u; px < STRIDE; px++) {
            let y = STRIDE * i + py;
            let x = STRIDE * j + px;
            if (y < col.h && x < col.w) {
                dst[((n * col.cin + ci) * col.h + y) * col.w + x] = sum[py * STRIDE + px];
            }
        }
    }
}

// dst [N*H*W, C] = src [N, C, H, W] with channels last. One invocation per (n, c) plane;
// here col.cin is C and col.h * col.w the plane size.
@compute @workgroup_size(WG)
fn channels_last(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let plane = linear_id(gid, nwg);
    if (plane >= col.n * col.cin) { return; }
    let c = plane % col.cin;
    let n = plane / col.cin;
    let hw = col.h * col.w;
    for (var p = 0u; p < hw; p++) { dst[(n * hw + p) * col.cin + c] = src[plane * hw + p]; }
}

// dst [N, C, H, W] = src [N*H*W, Cs] (channels last, row stride Cs >= C) plus the bias when
// there is one (binding 3). One invocation per (n, c) plane; col.cin is C, col.kw is Cs,
// col.h * col.w the plane size.
@group(0) @binding(3) var<storage, read> cbias: array<f32>;

@compute @workgroup_size(WG)
fn channels_first(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let plane = linear_id(gid, nwg);
    if (plane >= col.n * col.cin) { return; }
    let c = plane % col.cin;
    let n = plane / col.cin;
    let hw = col.h * col.w;
    var b = 0.0;
    if (col.has_bias != 0u) { b = cbias[c]; }
    for (var p = 0u; p < hw; p++) { dst[plane * hw + p] = src[(n * hw + p) * col.kw + c] + b; }
}

// Invocation -> (image n, block of 8 output channels, pair of output rows, block of 4
// columns); the column block varies fastest. Each packed weight load serves 8 pixels.
@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let col_blocks = (cv.wo + 3u) / 4u;
    let row_pairs = (cv.ho + 1u) / 2u;
    let co_blocks = cv.cpad / 8u;
    if (id >= cv.n * co_blocks * row_pairs * col_blocks) { return; }
    let b = id % col_blocks;
    let oy = ((id / col_blocks) % row_pairs) * 2u;
    let cb = (id / (col_blocks * row_pairs)) % co_blocks;
    let n = id / (col_blocks * row_pairs * co_blocks);

    var top: array<vec4<f32>, 8>;
    var bot: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
        top[j] = vec4<f32>(0.0);
        bot[j] = vec4<f32>(0.0);
    }
    let row_vec4s = cv.wq / 4u;
    let nv = window_vec4s();
    // The second row of a pair past the bottom reads the last padded row again; it is not stored.
    let oy2 = min(oy + 1u, cv.ho - 1u);
    var wi = cb * 2u;
    let wstep = cv.cpad / 4u;
    for (var ci = 0u; ci < cv.cin; ci++) {
        let plane = (n * cv.cin + ci) * cv.hp;
        for (var ky = 0u; ky < cv.kh; ky++) {
            let r = (plane + oy * STRIDE + ky) * row_vec4s + b * STRIDE;
            let s = (plane + oy2 * STRIDE + ky) * row_vec4s + b * STRIDE;
            let t0 = fx[r];
            let t1 = fx[r + 1u];
            let u0 = fx[s];
            let u1 = fx[s + 1u];
            var t2 = vec4<f32>(0.0);
            var u2 = vec4<f32>(0.0);
            if (nv > 2u) {
                t2 = fx[r + 2u];
                u2 = fx[s + 2u];
            }
            for (var kx = 0u; kx < KW; kx++) {
                let wa = fw[wi];
                let wb = fw[wi + 1u];
                wi += wstep;
                tap8(&top, window(t0, t1, t2, kx), wa, wb);
                tap8(&bot, window(u0, u1, u2, kx), wa, wb);
            }
        }
    }
    store_row(&top, n, cb, oy, b);
    store_row(&bot, n, cb, oy + 1u, b);
}

// Invocation -> (split s, block of 4 output channels, ci); ci varies fastest. All KH x KW taps
// of the 4 channels are accumulated together, so each load of dy serves every tap. Split s sums
// the rows (n, oy) in [s*R, (s+1)*R), R = rows_per_split, into gdw[s].
@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let co_blocks = (cv.cout + 3u) / 4u;
    let rows = cv.n * cv.ho;
    let splits = (rows + cv.rows_per_split - 1u) / cv.rows_per_split;
    if (id >= splits * co_blocks * cv.cin) { return; }
    let ci = id % cv.cin;
    let cb = (id / cv.cin) % co_blocks;
    let split = id / (cv.cin * co_blocks);
    let co0 = cb * 4u;

    // acc[(c*KH + ky)*KW + kx]: a vec4 of partial sums over the 4 pixels of a block.
    var acc: array<vec4<f32>, 100>;
    for (var k = 0u; k < 4u * KH * KW; k++) { acc[k] = vec4<f32>(0.0); }
    let col_blocks = (cv.wo + 3u) / 4u;
    let row_vec4s = cv.wq / 4u;
    let last_co = cv.cout - 1u;
    let r1 = min((split + 1u) * cv.rows_per_split, rows);
    for (var r = split * cv.rows_per_split; r < r1; r++) {
        let n = r / cv.ho;
        let oy = r % cv.ho;
        let xr = ((n * cv.cin + ci) * cv.hp + oy * STRIDE) * row_vec4s;
        let d0 = ((n * cv.cout + min(co0, last_co)) * cv.ho + oy) * cv.wo;
        let d1 = ((n * cv.cout + min(co0 + 1u, last_co)) * cv.ho + oy) * cv.wo;
        let d2 = ((n * cv.cout + min(co0 + 2u, last_co)) * cv.ho + oy) * cv.wo;
        let d3 = ((n * cv.cout + min(co0 + 3u, last_co)) * cv.ho + oy) * cv.wo;
        // Neighbouring column blocks share a vec4 of each x row: carry it instead of reloading.
        var next: array<vec4<f32>, 5>;
        for (var ky = 0u; ky < KH; ky++) { next[ky] = gx[xr + ky * row_vec4s]; }
        for (var b = 0u; b < col_blocks; b++) {
            let g0 = dy_block(d0, b);
            let g1 = dy_block(d1, b);
            let g2 = dy_block(d2, b);
            let g3 = dy_block(d3, b);
            weight_block(&acc, &next, xr, b, g0, g1, g2, g3);
        }
    }
    store_weight_gradient(&acc, split, co0, ci);
}

// dy at pixels 4b .. 4b + 3 of the row that starts at d, zero past its end (Wo wide, unpadded:
// 4 scalar loads from one row cost what a vec4 of a row-padded copy did, and the copy is gone).
fn dy_block(d: u32, b: u32) -> vec4<f32> {
    let ox = vec4<u32>(4u * b) + vec4<u32>(0u, 1u, 2u, 3u);
    let at = vec4<u32>(d) + min(ox, vec4<u32>(cv.wo - 1u));
    let g = vec4<f32>(gdy_rows[at.x], gdy_rows[at.y], gdy_rows[at.z], gdy_rows[at.w]);
    return select(vec4<f32>(0.0), g, ox < vec4<u32>(cv.wo));
}
