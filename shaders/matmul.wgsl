// C[m, n] = sum over k of A[m, k] * B[k, n]  (+ bias[n]), A and B read through strides so that
// transposed operands cost nothing: A[m, k] = a[m*a_sm + k*a_sk], B[k, n] = b[k*b_sk + n*b_sn].
// C is dense row-major [M, N]. Linear layers and convolutions by im2col use it.
// matmul: invocation -> a 4x4 block of C (4 rows, 4 consecutive columns); columns vary fastest.
// matmul_broadcast (contiguous operands): see below.

struct Params {
    m: u32, n: u32, k: u32, has_bias: u32,
    a_sm: u32, a_sk: u32, b_sk: u32, b_sn: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WG)
fn matmul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    let col_blocks = (p.n + 3u) / 4u;
    let row_blocks = (p.m + 3u) / 4u;
    if (id >= row_blocks * col_blocks) { return; }
    let r0 = (id / col_blocks) * 4u;
    let c0 = (id % col_blocks) * 4u;
    // Rows and columns past the edge are clamped for reading and skipped for writing.
    let rows = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u)) * p.a_sm;
    let cols = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u)) * p.b_sn;
    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) { acc[r] = vec4<f32>(0.0); }
    for (var kk = 0u; kk < p.k; kk++) {
        let bk = kk * p.b_sk;
        let bv = vec4<f32>(b[bk + cols.x], b[bk + cols.y], b[bk + cols.z], b[bk + cols.w]);
        let ak = kk * p.a_sk;
        acc[0] = fma(vec4<f32>(a[rows.x + ak]), bv, acc[0]);
        acc[1] = fma(vec4<f32>(a[rows.y + ak]), bv, acc[1]);
        acc[2] = fma(vec4<f32>(a[rows.z + ak]), bv, acc[2]);
        acc[3] = fma(vec4<f32>(a[rows.w + ak]), bv, acc[3]);
    }
    for (var r = 0u; r < 4u; r++) {
        let row = r0 + r;
        if (row >= p.m) { break; }
        for (var j = 0u; j < 4u; j++) {
            let col = c0 + j;
            if (col < p.n) {
                var v = acc[r][j];
                if (p.has_bias != 0u) { v += bias[col]; }
                c[row * p.n + col] = v;
            }
        }
    }
}

// matmul_broadcast reads contiguous operands as vec4s.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

// The product when A's rows and B's columns are contiguous (a_sm = b_sn = 1; M, N and the
// k strides multiples of 4), with one operand's loads shared by the whole workgroup, for
// devices that run a workgroup's invocations as SIMD lanes (a CPU device: lavapipe). There a
// load whose address differs between lanes runs as a loop over the lanes, while a load whose
// address is the same for every lane (built from the workgroup id, uniforms and loop counters)
// is one scalar load broadcast to all of them. So the workgroup -> a block of 16 columns
// (the B loads are shared), lane -> 4 rows (one vec4 load of A per k, its own): per k one
// lane-varying load serves 64 multiply-adds (`matmul` needs 8 for 16). C is written through
// strides (c_sm, c_sn), so the caller can compute C^T = B^T A^T with the roles swapped and
// give the lanes whichever dimension is larger. No bias. A GPU runs it too (64 lanes): there
// the shared loads are served to a whole warp at once from cache.
struct BroadcastParams {
    m: u32, n: u32, k: u32, a_sk: u32,
    b_sk: u32, c_sm: u32, c_sn: u32, _p0: u32,
}

@group(0) @binding(0) var<uniform> q: BroadcastParams;

// acc[4j + r] += av[r] * bv: 4 rows times column block j.
fn outer4(acc: ptr<function, array<vec4<f32>, 16>>, j: u32, av: vec4<f32>, bv: vec4<f32>) {
    (*acc)[4u * j] = fma(vec4<f32>(av.x), bv, (*acc)[4u * j]);
    (*acc)[4u * j + 1u] = fma(vec4<f32>(av.y), bv, (*acc)[4u * j + 1u]);
    (*acc)[4u * j + 2u] = fma(vec4<f32>(av.z), bv, (*acc)[4u * j + 2u]);
    (*acc)[4u * j + 3u] = fma(vec4<f32>(av.w), bv, (*acc)[4u * j + 3u]);
}

// Where a broadcast workgroup's lane works: columns c0 .. c0 + cols - 1, rows r0 .. r0 + 3;
// `ra` the rows it reads (past the last row: the last rows again, their sums not stored);
// `inside` false for a workgroup past the grid. Everything but r0 is the same for every lane.
struct BroadcastTile { c0: u32, r0: u32, ra: u32, inside: bool }

fn broadcast_tile(lane: u32, wg: vec3u, nwg: vec3u, cols: u32) -> BroadcastTile {
    let group = wg.x + wg.y * nwg.x;
    let row_groups = (q.m + 4u * WG - 1u) / (4u * WG);
    let col_groups = (q.n + cols - 1u) / cols;
    let r0 = ((group % row_groups) * WG + lane) * 4u;
    let inside = group < row_groups * col_groups;
    return BroadcastTile((group / row_groups) * cols, r0, min(r0, q.m - 4u), inside);
}

// Writes a lane's sums (acc[4j + r]: row r0 + r, columns c0 + 4j .. c0 + 4j + 3) through C's
// strides, skipping rows and columns past the edge.
fn broadcast_store(acc: ptr<function, array<vec4<f32>, 16>>, t: BroadcastTile) {
    if (t.r0 >= q.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        for (var r = 0u; r < 4u; r++) {
            let row = t.r0 + r;
            for (var i = 0u; i < 4u; i++) {
                let col = t.c0 + 4u * j + i;
                if (col < q.n) { c[row * q.c_sm + col * q.c_sn] = (*acc)[4u * j + r][i]; }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn matmul_broadcast(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let t = broadcast_tile(lane, wg, nwg, 16u);
    if (!t.inside) { return; }
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
    let a_step = q.a_sk / 4u;
    let b_step = q.b_sk / 4u;
    var ai = t.ra / 4u;
    var bi = t.c0 / 4u;
    let last_b = q.n / 4u - 1u;
    for (var kk = 0u; kk < q.k; kk++) {
        let av = a4[ai];
        // Column blocks past the edge read the last one again; their sums are not stored.
        let row_end = bi - t.c0 / 4u + last_b;
        outer4(&acc, 0u, av, b4[min(bi, row_end)]);
        outer4(&acc, 1u, av, b4[min(bi + 1u, row_end)]);
        outer4(&acc, 2u, av, b4[min(bi + 2u, row_end)]);
        outer4(&acc, 3u, av, b4[min(bi + 3u, row_end)]);
        ai += a_step;
        bi += b_step;
    }
    broadcast_store(&acc, t);
}
