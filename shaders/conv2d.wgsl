// 2-D convolution, NCHW, cross-correlation as in PyTorch: square stride and zero padding.
//   x  [N, Cin, H, W]    w  [Cout, Cin, KH, KW]    y  [N, Cout, Ho, Wo]
//   Ho = (H + 2*pad - KH) / stride + 1   (likewise Wo)
//
// The kernels are register-blocked implicit GEMMs without workgroup memory (barriers are
// expensive on CPU Vulkan devices): each invocation keeps a block of 8 channels x 4 pixels
// (or 8 output channels x 4 kernel taps) in 8 vec4 accumulators.
//
// conv2d_pack_*: the weights are first re-laid out so that the 8 channels one invocation needs
// for a kernel tap are two consecutive vec4s: packed[tap][channel], channels padded to 8 with 0.

struct Params {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, ho: u32, wo: u32, kh: u32,
    kw: u32, stride: u32, pad: u32, has_bias: u32,
    splits: u32,          // backward_weight: the reduction over N*Ho*Wo is cut into this many parts
    _p0: u32, _p1: u32, _p2: u32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;

// pack kernels
@group(0) @binding(1) var<storage, read> w_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> packed_out: array<f32>;

// forward: x, packed weights, bias, y
@group(0) @binding(1) var<storage, read> fx: array<f32>;
@group(0) @binding(2) var<storage, read> fw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> fbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;

// backward_input: dy, packed weights, dx
@group(0) @binding(1) var<storage, read> bdy: array<f32>;
@group(0) @binding(2) var<storage, read> bw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> bdx: array<f32>;

// backward_weight: x, dy, partial dw [splits, Cout, Cin*KH*KW]
@group(0) @binding(1) var<storage, read> gx: array<f32>;
@group(0) @binding(2) var<storage, read> gdy: array<f32>;
@group(0) @binding(3) var<storage, read_write> gdw: array<f32>;

fn linear_id(gid: vec3u, nwg: vec3u) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// packed[tap][c] with tap = (ci*KH + ky)*KW + kx and c = cout index: for the forward pass.
@compute @workgroup_size(WG)
fn conv2d_pack_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = linear_id(gid, nwg);
    let taps = p.cin * p.kh * p.kw;
    let cpad = (p.cout + 7u) / 8u * 8u;
    if (i >= taps * cpad) { return; }
    let tap = i / cpad;
    let co = i % cpad;
    packed_out[i] = select(0.0, w_in[min(co, p.cout - 1u) * taps + tap], co < p.cout);
}

// packed[tap][c] with tap = (co*KH + ky)*KW + kx and c = cin index: for the input gradient.
@compute @workgroup_size(WG)
fn conv2d_pack_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = linear_id(gid, nwg);
    let kk = p.kh * p.kw;
    let taps = p.cout * kk;
    let cpad = (p.cin + 7u) / 8u * 8u;
    if (i >= taps * cpad) { return; }
    let tap = i / cpad;
    let ci = i % cpad;
    let co = tap / kk;
    let k = tap % kk;
    packed_out[i] = select(0.0, w_in[(co * p.cin + min(ci, p.cin - 1u)) * kk + k], ci < p.cin);
}

// Invocation -> (image n, block of 8 output channels, block of 4 consecutive output pixels);
// the pixel block varies fastest so that neighbouring invocations read neighbouring inputs and
// the same weights.
@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let npix = p.ho * p.wo;
    let pix_blocks = (npix + 3u) / 4u;
    let co_blocks = (p.cout + 7u) / 8u;
    if (id >= p.n * co_blocks * pix_blocks) { return; }
    let pb = id % pix_blocks;
    let cb = (id / pix_blocks) % co_blocks;
    let n = id / (pix_blocks * co_blocks);

    // Top-left input coordinate of each of the 4 pixels (pixels past the end repeat the last).
    var iy0: vec4<i32>;
    var ix0: vec4<i32>;
    for (var j = 0u; j < 4u; j++) {
        let pix = min(pb * 4u + j, npix - 1u);
        iy0[j] = i32((pix / p.wo) * p.stride) - i32(p.pad);
        ix0[j] = i32((pix % p.wo) * p.stride) - i32(p.pad);
    }
    let hw = p.h * p.w;
    let wrow = i32(p.w);
    let cpad4 = (p.cout + 7u) / 8u * 2u;
    var acc: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) { acc[c] = vec4<f32>(0.0); }

    for (var ci = 0u; ci < p.cin; ci++) {
        let base = i32((n * p.cin + ci) * hw);
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = iy0 + vec4<i32>(i32(ky));
            let row_ok = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h)));
            let row = vec4<i32>(base) + clamp(iy, vec4<i32>(0), vec4<i32>(i32(p.h) - 1)) * wrow;
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = ix0 + vec4<i32>(i32(kx));
                let ok = row_ok & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(wrow));
                let idx = vec4<u32>(row + clamp(ix, vec4<i32>(0), vec4<i32>(wrow - 1)));
                let v = select(vec4<f32>(0.0), vec4<f32>(fx[idx.x], fx[idx.y], fx[idx.z], fx[idx.w]), ok);
                let tap = (ci * p.kh + ky) * p.kw + kx;
                let wa = fw[tap * cpad4 + cb * 2u];
                let wb = fw[tap * cpad4 + cb * 2u + 1u];
                acc[0] = fma(vec4<f32>(wa.x), v, acc[0]);
                acc[1] = fma(vec4<f32>(wa.y), v, acc[1]);
                acc[2] = fma(vec4<f32>(wa.z), v, acc[2]);
                acc[3] = fma(vec4<f32>(wa.w), v, acc[3]);
                acc[4] = fma(vec4<f32>(wb.x), v, acc[4]);
                acc[5] = fma(vec4<f32>(wb.y), v, acc[5]);
                acc[6] = fma(vec4<f32>(wb.z), v, acc[6]);
                acc[7] = fma(vec4<f32>(wb.w), v, acc[7]);
            }
        }
    }
    for (var c = 0u; c < 8u; c++) {
        let co = cb * 8u + c;
        if (co >= p.cout) { break; }
        var b = 0.0;
        if (p.has_bias != 0u) { b = fbias[co]; }
        let out_base = (n * p.cout + co) * npix;
        for (var j = 0u; j < 4u; j++) {
            let pix = pb * 4u + j;
            if (pix < npix) { fy[out_base + pix] = acc[c][j] + b; }
        }
    }
}

// dx[n, ci, iy, ix] = sum over (co, ky, kx) of w[co, ci, ky, kx] * dy[n, co, oy, ox] where
// oy*stride - pad + ky = iy (likewise x). Invocation -> (n, 8 input channels, 4 input pixels).
@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let npix = p.h * p.w;
    let pix_blocks = (npix + 3u) / 4u;
    let ci_blocks = (p.cin + 7u) / 8u;
    if (id >= p.n * ci_blocks * pix_blocks) { return; }
    let pb = id % pix_blocks;
    let cb = (id / pix_blocks) % ci_blocks;
    let n = id / (pix_blocks * ci_blocks);

    var py: vec4<i32>;
    var px: vec4<i32>;
    for (var j = 0u; j < 4u; j++) {
        let pix = min(pb * 4u + j, npix - 1u);
        py[j] = i32(pix / p.w) + i32(p.pad);
        px[j] = i32(pix % p.w) + i32(p.pad);
    }
    let s = vec4<i32>(i32(p.stride));
    let ohw = p.ho * p.wo;
    let cpad4 = (p.cin + 7u) / 8u * 2u;
    var acc: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) { acc[c] = vec4<f32>(0.0); }

    for (var co = 0u; co < p.cout; co++) {
        let base = i32((n * p.cout + co) * ohw);
        for (var ky = 0u; ky < p.kh; ky++) {
            let ty = py - vec4<i32>(i32(ky));
            let oy = ty / s;
            let row_ok = (ty >= vec4<i32>(0)) & (oy * s == ty) & (oy < vec4<i32>(i32(p.ho)));
            let row = vec4<i32>(base) + clamp(oy, vec4<i32>(0), vec4<i32>(i32(p.ho) - 1)) * i32(p.wo);
            for (var kx = 0u; kx < p.kw; kx++) {
                let tx = px - vec4<i32>(i32(kx));
                let ox = tx / s;
                let ok = row_ok & (tx >= vec4<i32>(0)) & (ox * s == tx) & (ox < vec4<i32>(i32(p.wo)));
                let idx = vec4<u32>(row + clamp(ox, vec4<i32>(0), vec4<i32>(i32(p.wo) - 1)));
                let v = select(vec4<f32>(0.0), vec4<f32>(bdy[idx.x], bdy[idx.y], bdy[idx.z], bdy[idx.w]), ok);
                let tap = (co * p.kh + ky) * p.kw + kx;
                let wa = bw[tap * cpad4 + cb * 2u];
                let wb = bw[tap * cpad4 + cb * 2u + 1u];
                acc[0] = fma(vec4<f32>(wa.x), v, acc[0]);
                acc[1] = fma(vec4<f32>(wa.y), v, acc[1]);
                acc[2] = fma(vec4<f32>(wa.z), v, acc[2]);
                acc[3] = fma(vec4<f32>(wa.w), v, acc[3]);
                acc[4] = fma(vec4<f32>(wb.x), v, acc[4]);
                acc[5] = fma(vec4<f32>(wb.y), v, acc[5]);
                acc[6] = fma(vec4<f32>(wb.z), v, acc[6]);
                acc[7] = fma(vec4<f32>(wb.w), v, acc[7]);
            }
        }
    }
    for (var c = 0u; c < 8u; c++) {
        let ci = cb * 8u + c;
        if (ci >= p.cin) { break; }
        let out_base = (n * p.cin + ci) * npix;
        for (var j = 0u; j < 4u; j++) {
            let pix = pb * 4u + j;
            if (pix < npix) { bdx[out_base + pix] = acc[c][j]; }
        }
    }
}

// dw[co, tap] = sum over (n, oy, ox) of dy[n, co, oy, ox] * x[n, ci, oy*s - pad + ky, ...],
// tap = (ci*KH + ky)*KW + kx. Invocation -> (split, 8 output channels, 4 consecutive taps); the
// taps vary fastest. Split `s` of `splits` covers positions s, s+splits, ... of the N*Ho*Wo
// reduction and writes its partial sums to gdw[s]; the launcher sums the splits afterwards.
@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let id = linear_id(gid, nwg);
    let kk = p.kh * p.kw;
    let taps = p.cin * kk;
    let tap_blocks = (taps + 3u) / 4u;
    let co_blocks = (p.cout + 7u) / 8u;
    if (id >= p.splits * co_blocks * tap_blocks) { return; }
    let tb = id % tap_blocks;
    let cb = (id / tap_blocks) % co_blocks;
    let split = id / (tap_blocks * co_blocks);

    var ci4: vec4<u32>;
    var ky4: vec4<i32>;
    var kx4: vec4<i32>;
    for (var j = 0u; j < 4u; j++) {
        let tap = min(tb * 4u + j, taps - 1u);
        ci4[j] = tap / kk;
        ky4[j] = i32((tap % kk) / p.kw) - i32(p.pad);
        kx4[j] = i32(tap % p.kw) - i32(p.pad);
    }
    let ohw = p.ho * p.wo;
    let hw = p.h * p.w;
    let total = p.n * ohw;
    var acc: array<vec4<f32>, 8>;
    for (var c = 0u; c < 8u; c++) { acc[c] = vec4<f32>(0.0); }
    let co0 = cb * 8u;
    var dys: array<f32, 8>;

    for (var q = split; q < total; q += p.splits) {
        let n = q / ohw;
        let o = q % ohw;
        let oy = i32(o / p.wo) * i32(p.stride);
        let ox = i32(o % p.wo) * i32(p.stride);
        let iy = vec4<i32>(oy) + ky4;
        let ix = vec4<i32>(ox) + kx4;
        let ok = (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.h))) & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.w)));
        let idx = vec4<u32>(
            vec4<i32>((vec4<u32>(n * p.cin) + ci4) * hw)
            + clamp(iy, vec4<i32>(0), vec4<i32>(i32(p.h) - 1)) * i32(p.w)
            + clamp(ix, vec4<i32>(0), vec4<i32>(i32(p.w) - 1)));
        let v = select(vec4<f32>(0.0), vec4<f32>(gx[idx.x], gx[idx.y], gx[idx.z], gx[idx.w]), ok);
        let dy_base = (n * p.cout + co0) * ohw + o;
        for (var c = 0u; c < 8u; c++) {
            dys[c] = select(0.0, gdy[min(dy_base + c * ohw, p.n * p.cout * ohw - 1u)], co0 + c < p.cout);
        }
        acc[0] = fma(vec4<f32>(dys[0]), v, acc[0]);
        acc[1] = fma(vec4<f32>(dys[1]), v, acc[1]);
        acc[2] = fma(vec4<f32>(dys[2]), v, acc[2]);
        acc[3] = fma(vec4<f32>(dys[3]), v, acc[3]);
        acc[4] = fma(vec4<f32>(dys[4]), v, acc[4]);
        acc[5] = fma(vec4<f32>(dys[5]), v, acc[5]);
        acc[6] = fma(vec4<f32>(dys[6]), v, acc[6]);
        acc[7] = fma(vec4<f32>(dys[7]), v, acc[7]);
    }
    let out_base = split * p.cout * taps;
    for (var c = 0u; c < 8u; c++) {
        let co = co0 + c;
        if (co >= p.cout) { break; }
        for (var j = 0u; j < 4u; j++) {
            let tap = tb * 4u + j;
            if (tap < taps) { gdw[out_base + co * taps + tap] = acc[c][j]; }
        }
    }
}
