// The workgroup-tiled product for discrete GPUs: C[m, n] = sum over k of A[m, k] * B[k, n]
// (+ bias[n]), through the same strides as `matmul` (matmul.wgsl): A[m, k] = a[m*a_sm + k*a_sk],
// B[k, n] = b[k*b_sk + n*b_sn], C dense row-major [M, N].
//
// A workgroup of 16 x 16 threads computes a 64 x 64 tile of C. Per step of 16 along k it stages
// A's 64 x 16 and B's 16 x 64 sub-tiles in workgroup memory, so each element is read from
// global memory once per tile instead of once per output row or column, and every thread then
// accumulates a 4 x 4 block of outputs: rows ty + 16i and columns tx + 16j (i, j < 4). In a
// warp (two values of ty, sixteen of tx) the reads of the B sub-tile are consecutive and those
// of the A sub-tile two broadcasts, so neither conflicts on workgroup-memory banks. The global
// loads go along whichever of each operand's dimensions is contiguous, so that consecutive
// threads read consecutive addresses. On a CPU device (lavapipe) this kernel is correct but
// slow: its barriers are coroutine switches there; `matmul_broadcast` is that device's kernel.

struct Params {
    m: u32, n: u32, k: u32, has_bias: u32,
    a_sm: u32, a_sk: u32, b_sk: u32, b_sn: u32,
}

const TILE: u32 = 64u;
const DEPTH: u32 = 16u;
const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// a_tile[d * TILE + r] = A[row0 + r, k0 + d]; b_tile[d * TILE + j] = B[k0 + d, col0 + j].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn matmul_tiled(
    @builtin(local_invocation_id) lid: vec3u,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let tiles_n = (p.n + TILE - 1u) / TILE;
    let tiles_m = (p.m + TILE - 1u) / TILE;
    let tile = wg.x + wg.y * nwg.x;
    // The same for the whole workgroup, so the barriers below stay in uniform control flow.
    if (tile >= tiles_m * tiles_n) { return; }
    let row0 = (tile / tiles_n) * TILE;
    let col0 = (tile % tiles_n) * TILE;
    let a_along_k = p.a_sk == 1u;
    let b_along_n = p.b_sn == 1u;
    // acc[i][j]: row row0 + ty + 16i, column col0 + tx + 16j.
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
    for (var k0 = 0u; k0 < p.k; k0 += DEPTH) {
        // 1024 elements of each sub-tile, 4 per thread; elements past an edge are zero.
        for (var q = 0u; q < 4u; q++) {
            let e = li + q * THREADS;
            var ar = e % TILE;
            var ad = e / TILE;
            if (a_along_k) { ar = e / DEPTH; ad = e % DEPTH; }
            var av = 0.0;
            if (row0 + ar < p.m && k0 + ad < p.k) {
                av = a[(row0 + ar) * p.a_sm + (k0 + ad) * p.a_sk];
            }
            a_tile[ad * TILE + ar] = av;
            var bj = e / DEPTH;
            var bd = e % DEPTH;
            if (b_along_n) { bj = e % TILE; bd = e / TILE; }
            var bv = 0.0;
            if (col0 + bj < p.n && k0 + bd < p.k) {
                bv = b[(k0 + bd) * p.b_sk + (col0 + bj) * p.b_sn];
            }
            b_tile[bd * TILE + bj] = bv;
        }
        workgroupBarrier();
        for (var d = 0u; d < DEPTH; d++) {
            let at = d * TILE + lid.y;
            let bt = d * TILE + lid.x;
            let av = vec4<f32>(a_tile[at], a_tile[at + 16u], a_tile[at + 32u], a_tile[at + 48u]);
            let bv = vec4<f32>(b_tile[bt], b_tile[bt + 16u], b_tile[bt + 32u], b_tile[bt + 48u]);
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        if (row >= p.m) { break; }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (col < p.n) {
                var v = acc[i][j];
                if (p.has_bias != 0u) { v += bias[col]; }
                c[row * p.n + col] = v;
            }
        }
    }
}
