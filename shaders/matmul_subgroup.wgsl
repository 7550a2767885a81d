// matmul_broadcast of matmul.wgsl with the shared operand's loads shared through the subgroup
// (needs the SUBGROUP feature and subgroups of at least 8 lanes; prepended by matmul.wgsl,
// whose bindings, parameters and outer4 it uses). On lavapipe a storage load costs a loop over
// the 8 lanes of a SIMD vector whether or not its address is the same in every lane, while a
// subgroup broadcast costs about what a multiply-add does. matmul_broadcast loads B's 4 vec4s
// of a k step in every lane (4 loads beside the lane's own vec4 of A); here lane s of each
// subgroup loads vec4 s % 4 of step k + s / 4 and subgroupBroadcast hands the 8 vec4s of two
// k steps to every lane: 3 loads per two steps (128 multiply-adds a lane) instead of 10.
//
// Workgroup -> a block of 16 columns, lane -> 4 rows, as in matmul_broadcast; lanes past the
// last row compute the last rows again and store nothing, so that every lane of a subgroup
// takes part in the broadcasts.

@compute @workgroup_size(WG)
fn matmul_broadcast_subgroup(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let t = broadcast_tile(lane, wg, nwg, 16u);
    if (!t.inside) { return; }
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
    let a_step = q.a_sk / 4u;
    let b_step = q.b_sk / 4u;
    // This lane's share of B: column block s % 4 (past the edge: the last one again, its sums
    // not stored) of step k + (s / 4) % 2.
    let later = (sg / 4u) % 2u;
    var bi = min(t.c0 / 4u + sg % 4u, q.n / 4u - 1u) + later * b_step;
    var ai = t.ra / 4u;
    for (var kk = 0u; kk + 1u < q.k; kk += 2u) {
        let own = b4[bi];
        let av = a4[ai];
        let av_next = a4[ai + a_step];
        // Broadcast lane ids must be constants: the blocks written out.
        outer4(&acc, 0u, av, subgroupBroadcast(own, 0u));
        outer4(&acc, 1u, av, subgroupBroadcast(own, 1u));
        outer4(&acc, 2u, av, subgroupBroadcast(own, 2u));
        outer4(&acc, 3u, av, subgroupBroadcast(own, 3u));
        outer4(&acc, 0u, av_next, subgroupBroadcast(own, 4u));
        outer4(&acc, 1u, av_next, subgroupBroadcast(own, 5u));
        outer4(&acc, 2u, av_next, subgroupBroadcast(own, 6u));
        outer4(&acc, 3u, av_next, subgroupBroadcast(own, 7u));
        ai += 2u * a_step;
        bi += 2u * b_step;
    }
    if (q.k % 2u == 1u) {
        // The last step alone: every lane loads its column block of that step.
        let own = b4[bi - later * b_step];
        let av = a4[ai];
        outer4(&acc, 0u, av, subgroupBroadcast(own, 0u));
        outer4(&acc, 1u, av, subgroupBroadcast(own, 1u));
        outer4(&acc, 2u, av, subgroupBroadcast(own, 2u));
        outer4(&acc, 3u, av, subgroupBroadcast(own, 3u));
    }
    broadcast_store(&acc, t);
}

// matmul_broadcast_subgroup with 32 columns per workgroup instead of 16 (shared sides of 32 or
// more): lane s of each subgroup loads vec4 s of the 8 column blocks of a k step and the
// broadcasts hand them to every lane, so a k step costs 2 loads a lane (its A and its share of
// B) for 128 multiply-adds: 1 load per 64 instead of 1 per 43. Its 128 accumulators exceed
// lavapipe's 32 vector registers; the spills are aligned stack accesses, cheaper than the
// gathers saved (1.2-2x faster on the im2col convolutions' products, README: Performance).
@compute @workgroup_size(WG)
fn matmul_broadcast_subgroup_wide(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let t = broadcast_tile(lane, wg, nwg, 32u);
    if (!t.inside) { return; }
    // Columns c0 .. c0 + 15 and c0 + 16 .. c0 + 31 (function variables start at zero).
    var lo: array<vec4<f32>, 16>;
    var hi: array<vec4<f32>, 16>;
    let a_step = q.a_sk / 4u;
    let b_step = q.b_sk / 4u;
    var bi = wide_share(t, sg);
    var ai = t.ra / 4u;
    for (var kk = 0u; kk < q.k; kk++) {
        let own = b4[bi];
        let av = a4[ai];
        outer_wide(&lo, &hi, av, own);
        ai += a_step;
        bi += b_step;
    }
    wide_store(&lo, &hi, t);
}

// This lane's share of B's 32 columns at k = 0: column block s % 8 of the workgroup's (past
// the edge: the last one again), as a vec4 index.
fn wide_share(t: BroadcastTile, sg: u32) -> u32 {
    return min(t.c0 / 4u + sg % 8u, q.n / 4u - 1u);
}

// Writes the sums of columns c0 .. c0 + 15 (`lo`) and c0 + 16 .. c0 + 31 (`hi`).
fn wide_store(
    lo: ptr<function, array<vec4<f32>, 16>>,
    hi: ptr<function, array<vec4<f32>, 16>>,
    t: BroadcastTile,
) {
    broadcast_store(lo, t);
    broadcast_store(hi, BroadcastTile(t.c0 + 16u, t.r0, t.ra, t.inside));
}

// One k step of the 32-column product: the lane's 4 rows `av` times the 32 columns, whose 8
// vec4s lanes 0-7 hold (`own`) and the broadcasts hand to every lane.
fn outer_wide(
    lo: ptr<function, array<vec4<f32>, 16>>,
    hi: ptr<function, array<vec4<f32>, 16>>,
    av: vec4<f32>,
    own: vec4<f32>,
) {
    outer4(lo, 0u, av, subgroupBroadcast(own, 0u));
    outer4(lo, 1u, av, subgroupBroadcast(own, 1u));
    outer4(lo, 2u, av, subgroupBroadcast(own, 2u));
    outer4(lo, 3u, av, subgroupBroadcast(own, 3u));
    outer4(hi, 0u, av, subgroupBroadcast(own, 4u));
    outer4(hi, 1u, av, subgroupBroadcast(own, 5u));
    outer4(hi, 2u, av, subgroupBroadcast(own, 6u));
    outer4(hi, 3u, av, subgroupBroadcast(own, 7u));
}

// matmul_broadcast_subgroup_wide for a convolution's forward product with A read straight from
// the NCHW input (an implicit im2col): A[row, tap] = x[n, ci, oy * STRIDE + ky - PAD,
// ox * STRIDE + kx - PAD] for output pixel row = (n, oy, ox) and tap = (ci, ky, kx), zero in
// the padding. On lavapipe a load costs per float, so a lane's 4 masked scalar loads of its
// rows cost about what its vec4 of the unfolded input did, and the unfolding pass, which wrote
// and read every entry once more, is gone (README: Performance). The input's shape and the
// kernel's are pipeline constants, so the per-step index arithmetic divides by constants.
// B is the packed weights [taps, Cpad]; the sums (plus the bias, with HAS_BIAS) go straight
// into y [N, OUT_C, OUT_H, OUT_W] (NCHW: a channels-last product would need a layout pass
// after it); q.m is N*Ho*Wo, q.n Cpad, q.k Cin*KH*KW.
override IN_C: u32 = 1u;
override IN_H: u32 = 1u;
override IN_W: u32 = 1u;
override OUT_C: u32 = 1u;
override OUT_H: u32 = 1u;
override OUT_W: u32 = 1u;
override K_H: u32 = 3u;
override K_W: u32 = 3u;
override STRIDE: u32 = 1u;
override PAD: u32 = 0u;
override HAS_BIAS: bool = false;

// Where 4 positions (y, x) of the IN_H x IN_W planes starting at `plane` are (clamped into
// them), and which are inside them (the rest is padding).
struct Positions { at: vec4<i32>, inside: vec4<bool> }

fn positions(plane: vec4<i32>, y: vec4<i32>, x: vec4<i32>) -> Positions {
    let h = vec4<i32>(i32(IN_H));
    let w = vec4<i32>(i32(IN_W));
    let inside = (y >= vec4<i32>(0)) & (y < h) & (x >= vec4<i32>(0)) & (x < w);
    let at = plane + clamp(y, vec4<i32>(0), h - 1) * i32(IN_W) + clamp(x, vec4<i32>(0), w - 1);
    return Positions(at, inside);
}

// x at `p`, `channel` planes on, zero in the padding: 4 lane-varying scalar loads.
fn load4(p: Positions, channel: u32) -> vec4<f32> {
    let at = p.at + vec4<i32>(i32(channel * IN_H * IN_W));
    return select(vec4<f32>(0.0), vec4<f32>(a[at.x], a[at.y], a[at.z], a[at.w]), p.inside);
}

// x at 4 positions (y, x) of the planes starting at `plane`, zero outside them.
fn input4(plane: vec4<i32>, y: vec4<i32>, x: vec4<i32>) -> vec4<f32> {
    return load4(positions(plane, y, x), 0u);
}

// The lane's 4 rows from r0, those past the last (q.m - 1) read as the last again.
fn lane_rows(t: BroadcastTile) -> vec4<u32> {
    return min(vec4<u32>(t.r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(q.m - 1u));
}

// Writes the lane's row r (columns c0 .. c0 + 31 of `lo` and `hi`) into the NCHW planes of an
// output with OUT_C channels: column c at at + c * OUT_H * OUT_W, plus the bias with HAS_BIAS.
fn store_planes(
    lo: ptr<function, array<vec4<f32>, 16>>,
    hi: ptr<function, array<vec4<f32>, 16>>,
    r: u32,
    c0: u32,
    at: u32,
) {
    let plane = OUT_H * OUT_W;
    for (var j = 0u; j < 4u; j++) {
        for (var i = 0u; i < 4u; i++) {
            let col = c0 + 4u * j + i;
            if (col < OUT_C) {
                c[at + col * plane] = (*lo)[4u * j + r][i] + select(0.0, bias[col], HAS_BIAS);
            }
            if (col + 16u < OUT_C) {
                let v = (*hi)[4u * j + r][i] + select(0.0, bias[col + 16u], HAS_BIAS);
                c[at + (col + 16u) * plane] = v;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn conv2d_forward_implicit(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let t = broadcast_tile(lane, wg, nwg, 32u);
    if (!t.inside) { return; }
    var lo: array<vec4<f32>, 16>;
    var hi: array<vec4<f32>, 16>;
    let b_step = q.b_sk / 4u;
    let share = wide_share(t, sg);
    // The 4 rows' images and the input position of their tap (0, 0).
    let rows = lane_rows(t);
    let image = vec4<i32>((rows / (OUT_H * OUT_W)) * IN_C * IN_H * IN_W);
    let y0 = vec4<i32>(((rows / OUT_W) % OUT_H) * STRIDE) - i32(PAD);
    let x0 = vec4<i32>((rows % OUT_W) * STRIDE) - i32(PAD);
    // Tap by tap, x's channels inner: the positions and their padding once per tap. (The
    // channel loop runs to a uniform, not to the constant IN_C: LLVM would unroll a constant
    // count of hundreds around 128 accumulators and take minutes to compile it.)
    let channels = q.k / (K_H * K_W);
    for (var tap = 0u; tap < K_H * K_W; tap++) {
        let at = positions(image, y0 + i32(tap / K_W), x0 + i32(tap % K_W));
        var bi = tap * b_step + share;
        for (var ci = 0u; ci < channels; ci++) {
            outer_wide(&lo, &hi, load4(at, ci), b4[bi]);
            bi += K_H * K_W * b_step;
        }
    }
    let plane = OUT_H * OUT_W;
    for (var r = 0u; r < 4u; r++) {
        let row = t.r0 + r;
        if (row >= q.m) { break; }
        store_planes(&lo, &hi, r, t.c0, (row / plane) * OUT_C * plane + row % plane);
    }
}

// The weight gradient's product the same way: dW^T [taps, Cout] = im2col(x)^T dy_last, the
// lanes on taps (4 each), the workgroup's 32 columns output channels, k the output pixels;
// A[tap, row] = im2col(x)[row, tap] read from x. B is dy channels-last [N*Ho*Wo, Cout] (read
// from dy in place, a lane's 4 columns would be 4 loads a plane apart: 1.2x slower, README:
// Performance), C is dW [Cout, taps] written through C's strides; q.m is taps (a multiple of
// 4), q.n Cout, q.k N*Ho*Wo. Per k step the pixel is the same for every lane; each lane's 4
// taps are fixed.
@compute @workgroup_size(WG)
fn conv2d_weight_grad_implicit(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let t = broadcast_tile(lane, wg, nwg, 32u);
    if (!t.inside) { return; }
    var lo: array<vec4<f32>, 16>;
    var hi: array<vec4<f32>, 16>;
    let b_step = q.b_sk / 4u;
    var bi = wide_share(t, sg);
    // The lane's 4 taps: their channel planes and kernel offsets.
    let taps = vec4<u32>(t.ra) + vec4<u32>(0u, 1u, 2u, 3u);
    let plane = vec4<i32>((taps / (K_H * K_W)) * IN_H * IN_W);
    let ky = vec4<i32>((taps % (K_H * K_W)) / K_W);
    let kx = vec4<i32>(taps % K_W);
    for (var kk = 0u; kk < q.k; kk++) {
        let own = b4[bi];
        let image = i32((kk / (OUT_H * OUT_W)) * IN_C * IN_H * IN_W);
        let y = ky + i32(((kk / OUT_W) % OUT_H) * STRIDE) - i32(PAD);
        let x = kx + i32((kk % OUT_W) * STRIDE) - i32(PAD);
        let av = input4(plane + image, y, x);
        outer_wide(&lo, &hi, av, own);
        bi += b_step;
    }
    wide_store(&lo, &hi, t);
}

// The input gradient of a strided convolution the same way, one phase of dx at a time, with dy
// read in place: positions (y, x) = (STRIDE a + PHASE_Y, STRIDE b + PHASE_X) of dx receive only
// the taps ky = ry + STRIDE jy, ry = (PHASE_Y + PAD) % STRIDE, from dy row
// a + (PHASE_Y + PAD) / STRIDE - jy, and likewise along x. Rows: the phase's positions
// (n, a, b), 4 a lane; columns: dx's channels, 32 a workgroup; k: (co, jy, jx). A[row, k] =
// dy[n, co, oy, ox] (zero outside dy), B the weights as pack_backward lays them out
// ([(co, KH-1-ky, KW-1-kx), Cpad]). Every sum is an entry of dx, written in place (NCHW), so
// neither dy's unfolding nor the fold of an unfolded gradient is needed. Here IN_* is dy's
// shape, OUT_H x OUT_W dx's planes and OUT_C its channels; q.m the phase's positions (any
// count: the lanes past it read the last one and store nothing), q.n Cpad, q.k Cout * taps.
override PHASE_Y: u32 = 0u;
override PHASE_X: u32 = 0u;

// The phase's taps along an axis: ky = r, r + STRIDE, ... below `k` (none when r >= k).
fn phase_taps(r: u32, k: u32) -> u32 {
    return select(0u, (k - r + STRIDE - 1u) / STRIDE, r < k);
}

@compute @workgroup_size(WG)
fn conv2d_input_grad_implicit(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let t = broadcast_tile(lane, wg, nwg, 32u);
    if (!t.inside) { return; }
    var lo: array<vec4<f32>, 16>;
    var hi: array<vec4<f32>, 16>;
    let ry = (PHASE_Y + PAD) % STRIDE;
    let rx = (PHASE_X + PAD) % STRIDE;
    let taps_y = phase_taps(ry, K_H);
    let taps_x = phase_taps(rx, K_W);
    let phase_h = (OUT_H - PHASE_Y + STRIDE - 1u) / STRIDE;
    let phase_w = (OUT_W - PHASE_X + STRIDE - 1u) / STRIDE;
    // The 4 rows' images and the dy position of their tap (jy, jx) = (0, 0).
    let rows = lane_rows(t);
    let image = vec4<i32>((rows / (phase_h * phase_w)) * IN_C * IN_H * IN_W);
    let y0 = vec4<i32>((rows / phase_w) % phase_h + (PHASE_Y + PAD) / STRIDE);
    let x0 = vec4<i32>(rows % phase_w + (PHASE_X + PAD) / STRIDE);
    let b_step = q.b_sk / 4u;
    let share = wide_share(t, sg);
    // Tap by tap, dy's channels inner, as in conv2d_forward_implicit.
    let taps = taps_y * taps_x;
    let channels = q.k / max(taps, 1u);
    for (var tap = 0u; tap < taps; tap++) {
        let jy = tap / taps_x;
        let jx = tap % taps_x;
        let at = positions(image, y0 - i32(jy), x0 - i32(jx));
        let flipped = (K_H - 1u - ry - STRIDE * jy) * K_W + K_W - 1u - rx - STRIDE * jx;
        var bi = flipped * b_step + share;
        for (var co = 0u; co < channels; co++) {
            outer_wide(&lo, &hi, load4(at, co), b4[bi]);
            bi += K_H * K_W * b_step;
        }
    }
    // dx[n, c0 + col, STRIDE a + PHASE_Y, STRIDE b + PHASE_X] for the lane's rows.
    for (var r = 0u; r < 4u; r++) {
        let row = t.r0 + r;
        if (row >= q.m) { break; }
        let y = STRIDE * ((row / phase_w) % phase_h) + PHASE_Y;
        let x = STRIDE * (row % phase_w) + PHASE_X;
        let at = (row / (phase_h * phase_w)) * OUT_C * OUT_H * OUT_W + y * OUT_W + x;
        store_planes(&lo, &hi, r, t.c0, at);
    }
}
