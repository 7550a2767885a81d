// batchnorm.wgsl's per-channel reductions with subgroup sums (needs the SUBGROUP feature;
// prepended by batchnorm.wgsl, whose per-lane loops and bindings these share). A workgroup
// tree in workgroup memory costs log2(WG) = 8 barriers per sum; here each subgroup sums its
// lanes with one subgroupAdd, the first subgroup sums the per-subgroup totals, and two
// barriers remain.

var<workgroup> sg_total: vec2f;

// Where a lane is: its channel's workgroup, its index, its subgroup and its place in it.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3u,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(num_subgroups) subgroups: u32,
}

// Sums v over the workgroup; every lane gets the total.
fn subgroup_sum2(v: vec2f, l: Lane) -> vec2f {
    let part = subgroupAdd(v);
    if (l.sg_lane == 0u) {
        red_a[l.sg] = part.x;
        red_b[l.sg] = part.y;
    }
    workgroupBarrier();
    var t = vec2f(0.0);
    if (l.sg == 0u) {
        for (var i = l.sg_lane; i < l.subgroups; i += l.sg_size) { t += vec2f(red_a[i], red_b[i]); }
    }
    // Every lane takes part (zeros outside the first subgroup), so the call stays in uniform
    // control flow; the first subgroup's lanes hold the total.
    let total = subgroupAdd(t);
    if (l.lid == 0u) { sg_total = total; }
    workgroupBarrier();
    let out = sg_total;
    // Before the slots are written again.
    workgroupBarrier();
    return out;
}

@compute @workgroup_size(WG)
fn bn_stats_subgroup(l: Lane) {
    let c = l.wid.x;
    // One pass over x (bn_stats makes two): the sums of x - k and of its squares, k the
    // channel's first value. k is a sample of the channel, so |mean - k| is of the order of its
    // spread and the squares do not cancel as sums around zero would when |mean| >> std.
    let k = f32(sx[c * p.hw]);
    let sums = subgroup_sum2(lane_shifted_sums(c, walk(l.lid), k), l);
    let d = sums.x / f32(p.n * p.hw);
    // The squared deviations from the mean k + d: sum (x - k)^2 - m d^2.
    let squares = max(sums.y - sums.x * d, 0.0);
    if (l.lid == 0u) { store_stats(c, k + d, squares); }
}

// This lane's share of channel c's sums of x - k and (x - k)^2.
fn lane_shifted_sums(c: u32, w: Walk, k: f32) -> vec2f {
    var s = vec2f(0.0);
    for (var n = w.n0; n < p.n; n += w.n_step) {
        let base = (n * p.c + c) * p.hw;
        for (var i = w.k0; i < p.hw; i += p.lanes_per_image) {
            let d = f32(sx[base + i]) - k;
            s += vec2f(d, d * d);
        }
    }
    return s;
}

@compute @workgroup_size(WG)
fn bn_backward_reduce_subgroup(l: Lane) {
    let c = l.wid.x;
    let sums = subgroup_sum2(lane_gradient_sums(c, walk(l.lid)), l);
    if (l.lid == 0u) {
        r_sums[c] = sums.x;
        r_sums[p.c + c] = sums.y;
    }
}
