// What a subgroup broadcast costs inside a loop (needs the SUBGROUP feature; on lavapipe a
// subgroup is the 8 lanes of one SIMD vector): every round advances a vec4 held by each lane
// (4 multiply-adds) and hands its four components, from lanes 0 and 1, to every lane by
// subgroupBroadcast, each feeding 4 accumulators: 8 broadcasts and 36 multiply-adds per round.

// (peak.wgsl is prepended: its parameters, bindings and fma4.)

fn sum8(acc: ptr<function, array<f32, 32>>, k: u32) -> f32 {
    return (*acc)[k] + (*acc)[k + 1u] + (*acc)[k + 2u] + (*acc)[k + 3u]
        + (*acc)[k + 4u] + (*acc)[k + 5u] + (*acc)[k + 6u] + (*acc)[k + 7u];
}

@compute @workgroup_size(WG)
fn peak_broadcast(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = gid.x + gid.y * nwg.x * WG;
    let a = pp.a;
    let b = pp.b;
    var v = vec4<f32>(f32(id) * 1e-6) + vec4<f32>(0.1, 0.2, 0.3, 0.4);
    var acc: array<f32, 32>;
    for (var it = 0u; it < ITERS; it++) {
        v = fma(v, vec4<f32>(a), vec4<f32>(b));
        fma4(&acc, 0u, subgroupBroadcast(v.x, 0u), b);
        fma4(&acc, 4u, subgroupBroadcast(v.y, 0u), b);
        fma4(&acc, 8u, subgroupBroadcast(v.z, 0u), b);
        fma4(&acc, 12u, subgroupBroadcast(v.w, 0u), b);
        fma4(&acc, 16u, subgroupBroadcast(v.x, 1u), b);
        fma4(&acc, 20u, subgroupBroadcast(v.y, 1u), b);
        fma4(&acc, 24u, subgroupBroadcast(v.z, 1u), b);
        fma4(&acc, 28u, subgroupBroadcast(v.w, 1u), b);
    }
    let s = sum8(&acc, 0u) + sum8(&acc, 8u) + sum8(&acc, 16u) + sum8(&acc, 24u);
    if (id < pp.invocations) { out[id] = s; }
}
