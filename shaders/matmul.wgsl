// C[m, n] = sum over k of A[m, k] * B[k, n]  (+ bias[n]), A and B read through strides so that
// transposed operands cost nothing: A[m, k] = a[m*a_sm + k*a_sk], B[k, n] = b[k*b_sk + n*b_sn].
// C is dense row-major [M, N]. Linear layers use it for their forward pass and both gradients.
// Invocation -> a 4x4 block of C (4 rows, 4 consecutive columns); columns vary fastest.

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

// The same product when A's rows and B's columns are contiguous (a_sm = b_sn = 1, the other
// strides, M and N multiples of 4): the weight gradients dW = dy^T x. Each k then needs one
// vec4 load of A and one of B for 16 multiply-adds, instead of eight scalar loads.
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn matmul_contiguous(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    let col_blocks = p.n / 4u;
    if (id >= (p.m / 4u) * col_blocks) { return; }
    let r0 = (id / col_blocks) * 4u;
    let c0 = (id % col_blocks) * 4u;
    var acc: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) { acc[r] = vec4<f32>(0.0); }
    let a_step = p.a_sk / 4u;
    let b_step = p.b_sk / 4u;
    var ai = r0 / 4u;
    var bi = c0 / 4u;
    for (var kk = 0u; kk < p.k; kk++) {
        let av = a4[ai];
        let bv = b4[bi];
        ai += a_step;
        bi += b_step;
        acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
        acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
        acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
        acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
    }
    for (var r = 0u; r < 4u; r++) {
        for (var j = 0u; j < 4u; j++) {
            var v = acc[r][j];
            if (p.has_bias != 0u) { v += bias[c0 + j]; }
            c[(r0 + r) * p.n + c0 + j] = v;
        }
    }
}
