// The direct forward kernel of conv2d.wgsl with its weight loads shared through the subgroup
// (needs the SUBGROUP feature and subgroups of at least 8 lanes; KW <= 4). On lavapipe every
// storage load in a loop costs a loop over the 8 lanes of a SIMD vector, whether or not the
// address is the same in every lane, while a subgroup broadcast costs about what a
// multiply-add does (the bench's peak section measures both). So instead of every lane loading
// the same 2 x KW vec4s of packed weights per (ci, ky), lane s of each subgroup loads vec4 s
// of them and subgroupBroadcast hands each to every lane: one load per lane instead of 2 x KW.
//
// Workgroup -> one block of 8 output channels x WG positions; lane -> (image n, pair of output
// rows, block of 4 columns) as in conv2d_forward (lane_position).

// Where a lane of a subgroup kernel works, over a grid of `ho` x `wo` cells: workgroup -> block
// `cb` of `channels` output channels (the same weights for every lane) x WG positions; lane ->
// position (image n, `rows` rows of cells from oy, block b of 4 columns of cells). A lane past
// the last position computes the last one again and stores nothing (`stores` false), so that
// every lane of a subgroup takes part in the broadcasts; `inside` is false for a workgroup past
// the grid. The forward kernels' cells are output pixels (ho = cv.ho, wo = cv.wo).
struct LanePosition { inside: bool, stores: bool, cb: u32, n: u32, oy: u32, b: u32 }

fn lane_position(
    lane: u32, wg: vec3u, nwg: vec3u, channels: u32, rows: u32, ho: u32, wo: u32,
) -> LanePosition {
    let group = wg.x + wg.y * nwg.x;
    let col_blocks = (wo + 3u) / 4u;
    let row_groups = (ho + rows - 1u) / rows;
    let positions = cv.n * row_groups * col_blocks;
    let position_groups = (positions + WG - 1u) / WG;
    let q = (group % position_groups) * WG + lane;
    let qc = min(q, positions - 1u);
    return LanePosition(
        group < (cv.cpad / channels) * position_groups,
        q < positions,
        group / position_groups,
        qc / (col_blocks * row_groups),
        ((qc / col_blocks) % row_groups) * rows,
        qc % col_blocks,
    );
}

@compute @workgroup_size(WG)
fn conv2d_forward_shared(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let at = lane_position(lane, wg, nwg, 8u, 2u, cv.ho, cv.wo);
    if (!at.inside) { return; }
    let cb = at.cb;
    let n = at.n;
    let oy = at.oy;
    let b = at.b;

    var top: array<vec4<f32>, 8>;
    var bot: array<vec4<f32>, 8>;
    let row_vec4s = cv.wq / 4u;
    let nv = window_vec4s();
    let oy2 = min(oy + 1u, cv.ho - 1u);
    let wstep = cv.cpad / 4u;
    // Lane s < 2 KW of a subgroup loads vec4 s of a (ci, ky)'s weights: tap s / 2, half s % 2.
    let s = min(sg, 2u * KW - 1u);
    var wi = cb * 2u + (s / 2u) * wstep + s % 2u;
    for (var ci = 0u; ci < cv.cin; ci++) {
        let plane = (n * cv.cin + ci) * cv.hp;
        for (var ky = 0u; ky < cv.kh; ky++) {
            let r = (plane + oy * STRIDE + ky) * row_vec4s + b * STRIDE;
            let t = (plane + oy2 * STRIDE + ky) * row_vec4s + b * STRIDE;
            let t0 = fx[r];
            let t1 = fx[r + 1u];
            let u0 = fx[t];
            let u1 = fx[t + 1u];
            var t2 = vec4<f32>(0.0);
            var u2 = vec4<f32>(0.0);
            if (nv > 2u) {
                t2 = fx[r + 2u];
                u2 = fx[t + 2u];
            }
            let w = fw[wi];
            wi += KW * wstep;
            // Broadcast lane ids must be constants: the taps written out (KW <= 4).
            var wa = subgroupBroadcast(w, 0u);
            var wb = subgroupBroadcast(w, 1u);
            tap8(&top, window(t0, t1, t2, 0u), wa, wb);
            tap8(&bot, window(u0, u1, u2, 0u), wa, wb);
            if (KW > 1u) {
                wa = subgroupBroadcast(w, 2u);
                wb = subgroupBroadcast(w, 3u);
                tap8(&top, window(t0, t1, t2, 1u), wa, wb);
                tap8(&bot, window(u0, u1, u2, 1u), wa, wb);
            }
            if (KW > 2u) {
                wa = subgroupBroadcast(w, 4u);
                wb = subgroupBroadcast(w, 5u);
                tap8(&top, window(t0, t1, t2, 2u), wa, wb);
                tap8(&bot, window(u0, u1, u2, 2u), wa, wb);
            }
            if (KW > 3u) {
                wa = subgroupBroadcast(w, 6u);
                wb = subgroupBroadcast(w, 7u);
                tap8(&top, window(t0, t1, t2, 3u), wa, wb);
                tap8(&bot, window(u0, u1, u2, 3u), wa, wb);
            }
        }
    }
    if (!at.stores) { return; }
    store_row(&top, n, cb, oy, b);
    store_row(&bot, n, cb, oy + 1u, b);
}


// conv2d_backward_weight of conv2d.wgsl with its dy loads shared through the subgroup: the lanes
// of a workgroup are input channels of one block of 4 output channels, so they all read the
// same 4 vec4s of dy per block of 4 pixels; lanes 0-3 of each subgroup load one each and
// subgroupBroadcast hands them to every lane. Workgroup -> (split s, block of 4 output
// channels, group of WG input channels), the channel group fastest; lane -> input channel.
// Lanes past Cin compute the last channel again and store nothing.
@compute @workgroup_size(WG)
fn conv2d_backward_weight_shared(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let group = wg.x + wg.y * nwg.x;
    let co_blocks = (cv.cout + 3u) / 4u;
    let ci_groups = (cv.cin + WG - 1u) / WG;
    let rows = cv.n * cv.ho;
    let splits = (rows + cv.rows_per_split - 1u) / cv.rows_per_split;
    if (group >= splits * co_blocks * ci_groups) { return; }
    let cig = group % ci_groups;
    let cb = (group / ci_groups) % co_blocks;
    let split = group / (ci_groups * co_blocks);
    let ci_lane = cig * WG + lane;
    let ci = min(ci_lane, cv.cin - 1u);
    let co0 = cb * 4u;

    // acc[(c*KH + ky)*KW + kx]: a vec4 of partial sums over the 4 pixels of a block.
    var acc: array<vec4<f32>, 100>;
    for (var k = 0u; k < 4u * KH * KW; k++) { acc[k] = vec4<f32>(0.0); }
    let col_blocks = (cv.wo + 3u) / 4u;
    let row_vec4s = cv.wq / 4u;
    let dy_row_vec4s = cv.dyq / 4u;
    // Lane sg % 4 of each subgroup loads output channel co0 + sg % 4's dy.
    let mine = min(co0 + sg % 4u, cv.cout - 1u);
    let r1 = min((split + 1u) * cv.rows_per_split, rows);
    for (var r = split * cv.rows_per_split; r < r1; r++) {
        let n = r / cv.ho;
        let oy = r % cv.ho;
        let xr = ((n * cv.cin + ci) * cv.hp + oy * STRIDE) * row_vec4s;
        let d = ((n * cv.cout + mine) * cv.ho + oy) * dy_row_vec4s;
        // Neighbouring column blocks share a vec4 of each x row: carry it instead of reloading.
        var next: array<vec4<f32>, 5>;
        for (var ky = 0u; ky < KH; ky++) { next[ky] = gx[xr + ky * row_vec4s]; }
        for (var b = 0u; b < col_blocks; b++) {
            let g = gdy[d + b];
            let g0 = subgroupBroadcast(g, 0u);
            let g1 = subgroupBroadcast(g, 1u);
            let g2 = subgroupBroadcast(g, 2u);
            let g3 = subgroupBroadcast(g, 3u);
            weight_block(&acc, &next, xr, b, g0, g1, g2, g3);
        }
    }
    if (ci_lane >= cv.cin) { return; }
    store_weight_gradient(&acc, split, co0, ci);
}

// conv2d_forward_shared with 16 output channels per lane instead of 8 (channel counts that are
// multiples of 16; KW <= 4): each lane's input row window, whose loads are what bounds the
// kernel on lavapipe, serves twice the multiply-adds. One output row per lane keeps the 64
// accumulators the 8-channel kernel holds; two rows of 16 channels measured no faster.
// The 4 x KW vec4s of a (ci, ky)'s weights come from two loads per lane: item i = (tap i / 4,
// vec4 i % 4 of the block's 16 channels), lane s loading items s and s + 8.
@compute @workgroup_size(WG)
fn conv2d_forward_shared16(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let at = lane_position(lane, wg, nwg, 16u, 1u, cv.ho, cv.wo);
    if (!at.inside) { return; }
    let cb = at.cb;
    let n = at.n;
    let oy = at.oy;
    let b = at.b;

    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    let row_vec4s = cv.wq / 4u;
    let nv = window_vec4s();
    let wstep = cv.cpad / 4u;
    let i0 = min(sg, 4u * KW - 1u);
    let i1 = min(sg + 8u, 4u * KW - 1u);
    var w0i = cb * 4u + (i0 / 4u) * wstep + i0 % 4u;
    var w1i = cb * 4u + (i1 / 4u) * wstep + i1 % 4u;
    for (var ci = 0u; ci < cv.cin; ci++) {
        let plane = (n * cv.cin + ci) * cv.hp;
        for (var ky = 0u; ky < cv.kh; ky++) {
            let r = (plane + oy * STRIDE + ky) * row_vec4s + b * STRIDE;
            let v0 = fx[r];
            let v1 = fx[r + 1u];
            var v2 = vec4<f32>(0.0);
            if (nv > 2u) { v2 = fx[r + 2u]; }
            let w = fw[w0i];
            var wx = vec4<f32>(0.0);
            if (KW > 2u) { wx = fw[w1i]; }
            w0i += KW * wstep;
            w1i += KW * wstep;
            // Broadcast lane ids must be constants: the taps written out.
            var xw = window(v0, v1, v2, 0u);
            tap8(&lo, xw, subgroupBroadcast(w, 0u), subgroupBroadcast(w, 1u));
            tap8(&hi, xw, subgroupBroadcast(w, 2u), subgroupBroadcast(w, 3u));
            if (KW > 1u) {
                xw = window(v0, v1, v2, 1u);
                tap8(&lo, xw, subgroupBroadcast(w, 4u), subgroupBroadcast(w, 5u));
                tap8(&hi, xw, subgroupBroadcast(w, 6u), subgroupBroadcast(w, 7u));
            }
            if (KW > 2u) {
                xw = window(v0, v1, v2, 2u);
                tap8(&lo, xw, subgroupBroadcast(wx, 0u), subgroupBroadcast(wx, 1u));
                tap8(&hi, xw, subgroupBroadcast(wx, 2u), subgroupBroadcast(wx, 3u));
            }
            if (KW > 3u) {
                xw = window(v0, v1, v2, 3u);
                tap8(&lo, xw, subgroupBroadcast(wx, 4u), subgroupBroadcast(wx, 5u));
                tap8(&hi, xw, subgroupBroadcast(wx, 6u), subgroupBroadcast(wx, 7u));
            }
        }
    }
    if (!at.stores) { return; }
    store_row(&lo, n, 2u * cb, oy, b);
    store_row(&hi, n, 2u * cb + 1u, oy, b);
}


// The input gradient of a 3x3, stride-2, pad-1 convolution, all four output phases at once.
// Input position 2i receives dy row i through kernel row 1; position 2i + 1 receives dy rows
// i + 1 and i through kernel rows 0 and 2 (columns likewise). So the 2 x 2 block of dx at
// (2i, 2j) needs only dy[i..i+1, j..j+1], and each of the 9 taps reaches exactly one of its
// four phases: one pass over dy with every multiply-add useful, instead of four
// sub-convolutions with a padding copy and an interleaving pass each (backward_input_by_phases).
//
// Here fx is dy padded to [N, Cout, Ho + 1, Wq] (zeros past its edges), fw the weights packed
// by pack_backward ([co][tap'][cpad] with tap' = (2 - ky) * 3 + (2 - kx)), fy is dx, cv.cin
// the output gradient's channels (Cout), cv.cout, cv.ho and cv.wo those of dx (Cin, H, W).
// Workgroup -> block of 4 dx channels x WG cells; lane -> cell (n, i, b): dx rows 2i and 2i + 1,
// columns 8b..8b+7, held as even and odd columns (vec4s over 4 pixels) per channel: 64
// accumulators, as in the forward kernels. Per output-gradient channel a lane loads dy
// columns 4b..4b+4 of rows i and i + 1 (4 vec4s) and 2 of the 9 vec4s of weights (lane s:
// tap' s, every lane: tap' 8), and does 144 multiply-adds.
@compute @workgroup_size(WG)
fn conv2d_backward_input_stride2_shared(
    @builtin(local_invocation_index) lane: u32,
    @builtin(subgroup_invocation_id) sg: u32,
    @builtin(workgroup_id) wg: vec3u,
    @builtin(num_workgroups) nwg: vec3u,
) {
    let at = lane_position(lane, wg, nwg, 4u, 1u, (cv.ho + 1u) / 2u, (cv.wo + 1u) / 2u);
    if (!at.inside) { return; }
    // [channel]: dx row 2i, even and odd columns; row 2i + 1 likewise.
    var even0: array<vec4<f32>, 4>;
    var odd0: array<vec4<f32>, 4>;
    var even1: array<vec4<f32>, 4>;
    var odd1: array<vec4<f32>, 4>;
    let row_vec4s = cv.wq / 4u;
    let wstep = cv.cpad / 4u;
    let mine = min(sg, 7u) * wstep;
    var taps = at.cb;
    for (var co = 0u; co < cv.cin; co++) {
        let r = ((at.n * cv.cin + co) * cv.hp + at.oy) * row_vec4s + at.b;
        let a0 = fx[r];
        let a1 = fx[r + 1u];
        let b0 = fx[r + row_vec4s];
        let b1 = fx[r + row_vec4s + 1u];
        // dy columns 4b+1..4b+4: what the odd columns see through kernel column 0.
        let a_next = vec4<f32>(a0.yzw, a1.x);
        let b_next = vec4<f32>(b0.yzw, b1.x);
        let w = fw[taps + mine];
        let w8 = fw[taps + 8u * wstep];
        taps += 9u * wstep;
        // Kernel tap (ky, kx) is tap' (2 - ky) * 3 + (2 - kx), broadcast from lane tap'.
        tap4(&even0, a0, subgroupBroadcast(w, 4u));
        tap4(&odd0, a_next, subgroupBroadcast(w, 5u));
        tap4(&odd0, a0, subgroupBroadcast(w, 3u));
        tap4(&even1, b0, subgroupBroadcast(w, 7u));
        tap4(&even1, a0, subgroupBroadcast(w, 1u));
        tap4(&odd1, b_next, w8);
        tap4(&odd1, b0, subgroupBroadcast(w, 6u));
        tap4(&odd1, a_next, subgroupBroadcast(w, 2u));
        tap4(&odd1, a0, subgroupBroadcast(w, 0u));
    }
    if (!at.stores) { return; }
    store_phases(&even0, &odd0, at.n, at.cb, 2u * at.oy, at.b);
    store_phases(&even1, &odd1, at.n, at.cb, 2u * at.oy + 1u, at.b);
}

// acc[c] += w[c] * v for 4 channels (v: 4 pixels).
fn tap4(acc: ptr<function, array<vec4<f32>, 4>>, v: vec4<f32>, w: vec4<f32>) {
    (*acc)[0] = fma(vec4<f32>(w.x), v, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(w.y), v, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(w.z), v, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(w.w), v, (*acc)[3]);
}

// Row y of dx, columns 8b..8b+7 (even ones from `even`, odd from `odd`), channels 4cb..4cb+3.
fn store_phases(
    even: ptr<function, array<vec4<f32>, 4>>,
    odd: ptr<function, array<vec4<f32>, 4>>,
    n: u32, cb: u32, y: u32, b: u32,
) {
    if (y >= cv.ho) { return; }
    for (var c = 0u; c < 4u; c++) {
        let ci = cb * 4u + c;
        if (ci < cv.cout) {
            let row = ((n * cv.cout + ci) * cv.ho + y) * cv.wo;
            for (var m = 0u; m < 4u; m++) {
                let x = b * 8u + 2u * m;
                if (x < cv.wo) { fy[row + x] = (*even)[c][m]; }
                if (x + 1u < cv.wo) { fy[row + x + 1u] = (*odd)[c][m]; }
            }
        }
    }
}
