// Convolutions as an implicit GEMM with workgroup-memory tiles, for discrete GPUs (the loop of
// matmul_tiled.wgsl, with the operands gathered from NCHW tensors instead of read from
// matrices). One entry point; PASS picks what the product is:
//
//   forward          C[co, pixel] = sum over (ci, ky, kx) of w[co, ci, ky, kx] * x[pixel + tap]
//                    rows cout, columns n*ho*wo, depth cin*kh*kw; C lands in y (NCHW) + bias.
//   input gradient   C[ci, pixel] = sum over (co, ky, kx) of w[co, ci, ky, kx] * dy[...]
//                    one dispatch per stride phase: the columns are the input pixels of one
//                    (row, column) parity and the depth only the taps that reach it, so at
//                    stride 2 no multiply-add is by a position between two outputs.
//   weight gradient  C[co, (ci, ky, kx)] = sum over (n, oy, ox) of dy[n, co, oy, ox] * x[...]
//                    rows cout, columns cin*kh*kw, depth n*ho*wo, which is long and the C
//                    small: the depth is split over workgroups (split-K), each writing its
//                    partial C to its own slice, summed afterwards (reduce.wgsl: sum_splits).
//
// A workgroup of 16 x 16 threads computes a 64 x 64 tile of C, 4 x 4 outputs per thread (rows
// ty + 16i, columns tx + 16j), staging 64 x 16 sub-tiles of both operands in workgroup memory per
// step of 16 along the depth. A (weights, or dy for the weight gradient) is loaded along the
// depth, B (the gathered operand) along its columns (consecutive threads on consecutive pixels,
// so their loads coalesce) except for the weight gradient, whose B goes along the depth too:
// there the depth is the pixel. What each thread's loads need of its column (image, position)
// is computed once, before the loop; KH, KW and STRIDE are pipeline constants, so splitting a
// depth index into its taps is a multiply and a shift. The sub-tiles are stored with a row of
// 65 so that stores along the depth fall on distinct banks. Out-of-range and padding elements
// load as zero. On a CPU device (lavapipe) this kernel is correct but slow; see conv2d/mod.rs.

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, ho: u32, wo: u32, pad: u32,
    kh: u32, kw: u32, has_bias: u32, k_per_split: u32,
    m: u32, cols: u32, depth: u32, _pad0: u32,
    // Input gradient: the phase's input parity (py, px), the kernel parity of its taps (ry, rx),
    // and its size in input positions (ph x pw); (0, 0, 0, 0, h, w) at stride 1.
    py: u32, px: u32, ry: u32, rx: u32,
    ph: u32, pw: u32, _pad1: u32, _pad2: u32,
}

const FORWARD: u32 = 0u;
const INPUT_GRADIENT: u32 = 1u;
const WEIGHT_GRADIENT: u32 = 2u;

override PASS: u32 = 0u;
// Taps along the depth: the kernel's size (forward, weight gradient) or the phase's sub-kernel
// (input gradient).
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
const ROW: u32 = 65u;
const THREADS: u32 = 256u;

// What the operands are stored in: f32 here; under `--precision f16` the weights and x are
// f16 (dy stays f32), and so is the forward pass's y where batch norm reads it (Res); each
// such kernel its own module (gpu/kernels.rs, Storage). The tiles and the sums are f32 either
// way.
alias Lhs = f32;
alias Rhs = f32;
alias Res = f32;

@group(0) @binding(0) var<uniform> p: Params;
// Forward and input gradient: the weights; weight gradient: dy.
@group(0) @binding(1) var<storage, read> lhs: array<Lhs>;
// Forward and weight gradient: x; input gradient: dy.
@group(0) @binding(2) var<storage, read> rhs: array<Rhs>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<Res>;

// a_tile[d * ROW + r] = A[row0 + r, k0 + d]; b_tile[d * ROW + j] = B[k0 + d, col0 + j].
var<workgroup> a_tile: array<f32, 1040>;
var<workgroup> b_tile: array<f32, 1040>;

// Where a column of C lies in the output: image, row, column (output pixels for the forward
// pass, input pixels for the input gradient).
struct Pixel { b: u32, y: u32, x: u32 }

fn column_pixel(col: u32) -> Pixel {
    if (PASS == FORWARD) {
        let per_image = p.ho * p.wo;
        let q = col % per_image;
        return Pixel(col / per_image, q / p.wo, q % p.wo);
    }
    // Input gradient: the phase's position (i, j) is input position (STRIDE i + py, STRIDE j + px).
    let per_image = p.ph * p.pw;
    let q = col % per_image;
    return Pixel(col / per_image, STRIDE * (q / p.pw) + p.py, STRIDE * (q % p.pw) + p.px);
}

@compute @workgroup_size(16, 16)
fn conv2d_tiled(
    @builtin(local_invocation_id) lid: vec3u,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let tiles_n = (p.cols + TILE - 1u) / TILE;
    let tiles = tiles_n * ((p.m + TILE - 1u) / TILE);
    let splits = (p.depth + p.k_per_split - 1u) / p.k_per_split;
    let flat = wg.x + wg.y * nwg.x;
    // The same for the whole workgroup, so the barriers below stay in uniform control flow.
    if (flat >= tiles * splits) { return; }
    let tile = flat % tiles;
    let split = flat / tiles;
    let row0 = (tile / tiles_n) * TILE;
    let col0 = (tile % tiles_n) * TILE;
    let k_begin = split * p.k_per_split;
    let k_end = min(p.depth, k_begin + p.k_per_split);
    let taps = KH * KW;
    let pad = i32(p.pad);

    // A: this thread loads rows a_row + 16q at depth k0 + a_d.
    let a_d = li % DEPTH;
    let a_row = li / DEPTH;
    // B along columns (forward, input gradient): column col0 + b_col at depths k0 + b_d + 4q.
    let b_col = li % TILE;
    let b_d = li / TILE;
    let col = col0 + b_col;
    let col_ok = col < p.cols;
    var rhs_base = 0u;
    var y0 = 0i;
    var x0 = 0i;
    if (PASS == FORWARD && col_ok) {
        let px = column_pixel(col);
        rhs_base = px.b * p.cin * p.h * p.w;
        y0 = i32(px.y * STRIDE) - pad;
        x0 = i32(px.x * STRIDE) - pad;
    }
    if (PASS == INPUT_GRADIENT && col_ok) {
        // The output row reached by tap ky = ry + STRIDE t of input row STRIDE i + py is
        // i + (py + pad - ry) / STRIDE - t (exact: ry has the parity that makes it so).
        let per_image = p.ph * p.pw;
        let q = col % per_image;
        rhs_base = (col / per_image) * p.cout * p.ho * p.wo;
        y0 = i32(q / p.pw) + i32((p.py + p.pad - p.ry) / STRIDE);
        x0 = i32(q % p.pw) + i32((p.px + p.pad - p.rx) / STRIDE);
    }
    // B along the depth (weight gradient): columns col0 + a_row + 16q, i.e. taps (ci, ky, kx).
    var tap_plane: array<u32, 4>;
    var tap_y: array<i32, 4>;
    var tap_x: array<i32, 4>;
    if (PASS == WEIGHT_GRADIENT) {
        for (var q = 0u; q < 4u; q++) {
            let c = col0 + a_row + 16u * q;
            let t = c % taps;
            tap_plane[q] = c / taps;
            tap_y[q] = i32(t / KW) - pad;
            tap_x[q] = i32(t % KW) - pad;
        }
    }

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
    for (var k0 = k_begin; k0 < k_end; k0 += DEPTH) {
        let ka = k0 + a_d;
        let ka_ok = ka < k_end;
        // The weight gradient's depth index is an output pixel: image b, position (oy, ox).
        var wb = 0u;
        var wq = 0u;
        if (PASS == WEIGHT_GRADIENT) {
            let per_image = p.ho * p.wo;
            wb = ka / per_image;
            wq = ka % per_image;
        }
        for (var q = 0u; q < 4u; q++) {
            let r = a_row + 16u * q;
            let row = row0 + r;
            var av = 0.0;
            if (row < p.m && ka_ok) {
                if (PASS == FORWARD) {
                    av = f32(lhs[row * p.depth + ka]);
                } else if (PASS == INPUT_GRADIENT) {
                    // Depth (co, t): tap (ry + STRIDE ta, rx + STRIDE tb) of weight [co, row].
                    let t = ka % taps;
                    let ky = p.ry + STRIDE * (t / KW);
                    let kx = p.rx + STRIDE * (t % KW);
                    av = f32(lhs[(((ka / taps) * p.cin + row) * p.kh + ky) * p.kw + kx]);
                } else {
                    av = f32(lhs[(wb * p.cout + row) * p.ho * p.wo + wq]);
                }
            }
            a_tile[a_d * ROW + r] = av;

            var bv = 0.0;
            if (PASS == WEIGHT_GRADIENT) {
                let c = col0 + r;
                if (c < p.cols && ka_ok) {
                    let iy = i32((wq / p.wo) * STRIDE) + tap_y[q];
                    let ix = i32((wq % p.wo) * STRIDE) + tap_x[q];
                    if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                        bv = f32(rhs[((wb * p.cin + tap_plane[q]) * p.h + u32(iy)) * p.w + u32(ix)]);
                    }
                }
                b_tile[a_d * ROW + r] = bv;
            } else {
                let d = b_d + 4u * q;
                let kb = k0 + d;
                let t = kb % taps;
                if (col_ok && kb < k_end) {
                    if (PASS == FORWARD) {
                        let iy = y0 + i32(t / KW);
                        let ix = x0 + i32(t % KW);
                        if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                            bv = f32(rhs[rhs_base + ((kb / taps) * p.h + u32(iy)) * p.w + u32(ix)]);
                        }
                    } else {
                        let oy = y0 - i32(t / KW);
                        let ox = x0 - i32(t % KW);
                        if (oy >= 0 && oy < i32(p.ho) && ox >= 0 && ox < i32(p.wo)) {
                            bv = f32(rhs[rhs_base + ((kb / taps) * p.ho + u32(oy)) * p.wo + u32(ox)]);
                        }
                    }
                }
                b_tile[d * ROW + b_col] = bv;
            }
        }
        workgroupBarrier();
        for (var d = 0u; d < DEPTH; d++) {
            let at = d * ROW + lid.y;
            let bt = d * ROW + lid.x;
            let av = vec4<f32>(a_tile[at], a_tile[at + 16u], a_tile[at + 32u], a_tile[at + 48u]);
            let bv = vec4<f32>(b_tile[bt], b_tile[bt + 16u], b_tile[bt + 32u], b_tile[bt + 48u]);
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < 4u; j++) {
        let c = col0 + lid.x + 16u * j;
        if (c >= p.cols) { break; }
        var base = 0u;
        var plane = 0u;
        if (PASS == WEIGHT_GRADIENT) {
            base = split * p.m * p.cols + c;
            plane = p.cols;
        } else {
            let px = column_pixel(c);
            let y_planes = select(p.cin, p.cout, PASS == FORWARD);
            plane = p.h * p.w;
            if (PASS == FORWARD) { plane = p.ho * p.wo; }
            let width = select(p.w, p.wo, PASS == FORWARD);
            base = px.b * y_planes * plane + px.y * width + px.x;
        }
        for (var i = 0u; i < 4u; i++) {
            let row = row0 + lid.y + 16u * i;
            if (row < p.m) {
                var v = acc[i][j];
                if (PASS == FORWARD && p.has_bias != 0u) { v += bias[row]; }
                out[base + row * plane] = Res(v);
            }
        }
    }
}
