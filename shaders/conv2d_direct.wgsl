// What the direct forward kernels share (conv2d.wgsl's conv2d_forward and
// conv2d_subgroup.wgsl's conv2d_forward_shared): the padded-input parameters, the bindings, and
// the row window, tap and store helpers. Prepended to both files (src/gpu/kernels.rs).

override WG: u32 = 64;
override KH: u32 = 3;
override KW: u32 = 3;
override STRIDE: u32 = 1;

// The convolution proper over a padded input xp [N, Cin, Hp, Wq] (Wq a multiple of 4).
struct ConvParams {
    n: u32, cin: u32, hp: u32, wq: u32,
    cout: u32, ho: u32, wo: u32, kh: u32,
    cpad: u32, has_bias: u32, rows_per_split: u32, dyq: u32,
}

@group(0) @binding(0) var<uniform> cv: ConvParams;

// conv2d_forward: padded input, packed weights [tap][cpad], bias, output
@group(0) @binding(1) var<storage, read> fx: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> fw: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> fbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> fy: array<f32>;

fn linear_id(gid: vec3u, nwg: vec3u) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The inputs that output pixels 0..3 of a block see at kernel column kx: elements
// kx + STRIDE*j of the 12 floats v0 ++ v1 ++ v2 (the block's row window).
fn window(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, kx: u32) -> vec4<f32> {
    if (STRIDE == 1u) {
        switch kx {
            case 0u: { return v0; }
            case 1u: { return vec4<f32>(v0.yzw, v1.x); }
            case 2u: { return vec4<f32>(v0.zw, v1.xy); }
            case 3u: { return vec4<f32>(v0.w, v1.xyz); }
            default: { return v1; }
        }
    }
    switch kx {
        case 0u: { return vec4<f32>(v0.xz, v1.xz); }
        case 1u: { return vec4<f32>(v0.yw, v1.yw); }
        case 2u: { return vec4<f32>(v0.z, v1.xz, v2.x); }
        case 3u: { return vec4<f32>(v0.w, v1.yw, v2.y); }
        default: { return vec4<f32>(v1.xz, v2.xz); }
    }
}

// vec4s of row window a block of 4 outputs needs: (3*STRIDE + KW - 1) floats, rounded up.
fn window_vec4s() -> u32 {
    return (3u * STRIDE + KW - 1u) / 4u + 1u;
}

// acc[j] += w[j] * xw for the 8 output channels of one kernel tap (xw: 4 pixels).
fn tap8(acc: ptr<function, array<vec4<f32>, 8>>, xw: vec4<f32>, wa: vec4<f32>, wb: vec4<f32>) {
    (*acc)[0] = fma(vec4<f32>(wa.x), xw, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(wa.y), xw, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(wa.z), xw, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(wa.w), xw, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(wb.x), xw, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(wb.y), xw, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(wb.z), xw, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(wb.w), xw, (*acc)[7]);
}

fn store_row(acc: ptr<function, array<vec4<f32>, 8>>, n: u32, cb: u32, oy: u32, b: u32) {
    if (oy >= cv.ho) { return; }
    for (var j = 0u; j < 8u; j++) {
        let co = cb * 8u + j;
        if (co < cv.cout) {
            var bias = 0.0;
            if (cv.has_bias != 0u) { bias = fbias[co]; }
            let yb = ((n * cv.cout + co) * cv.ho + oy) * cv.wo;
            for (var k = 0u; k < 4u; k++) {
                let ox = b * 4u + k;
                if (ox < cv.wo) { fy[yb + ox] = (*acc)[j][k] + bias; }
            }
        }
    }
}


// The weight gradients: padded input, dy, partial sums [splits, Cout, Cin, KH, KW]. dy is
// row-padded ([N, Cout, Ho, dyq], whole vec4s: gdy) for conv2d_backward_weight_shared and read
// as it is ([N, Cout, Ho, Wo], one float at a time: gdy_rows) by conv2d_backward_weight.
@group(0) @binding(1) var<storage, read> gx: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gdy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gdy_rows: array<f32>;
@group(0) @binding(3) var<storage, read_write> gdw: array<f32>;

// The weight gradients' update for one block b of 4 pixels of the x rows at xr: every tap of 4
// output channels (dy vec4s g0..g3 of those pixels) against the row windows, carrying the vec4
// the next block shares in `next`. acc[(c*KH + ky)*KW + kx]: partial sums over the 4 pixels.
fn weight_block(
    acc: ptr<function, array<vec4<f32>, 100>>,
    next: ptr<function, array<vec4<f32>, 5>>,
    xr: u32,
    b: u32,
    g0: vec4<f32>, g1: vec4<f32>, g2: vec4<f32>, g3: vec4<f32>,
) {
    let row_vec4s = cv.wq / 4u;
    let nv = window_vec4s();
    for (var ky = 0u; ky < KH; ky++) {
        let xk = xr + ky * row_vec4s + b * STRIDE;
        // The next block's window starts STRIDE vec4s further on: carry that vec4 when
        // this block loads it anyway (stride 1, or stride 2 with a 3-vec4 window).
        var v0 = (*next)[ky];
        if (STRIDE == 2u && nv == 2u) { v0 = gx[xk]; }
        let v1 = gx[xk + 1u];
        var v2 = vec4<f32>(0.0);
        if (nv > 2u) { v2 = gx[xk + 2u]; }
        if (STRIDE == 1u) {
            (*next)[ky] = v1;
        } else {
            (*next)[ky] = v2;
        }
        for (var kx = 0u; kx < KW; kx++) {
            let xw = window(v0, v1, v2, kx);
            let t = ky * KW + kx;
            (*acc)[t] = fma(g0, xw, (*acc)[t]);
            (*acc)[KH * KW + t] = fma(g1, xw, (*acc)[KH * KW + t]);
            (*acc)[2u * KH * KW + t] = fma(g2, xw, (*acc)[2u * KH * KW + t]);
            (*acc)[3u * KH * KW + t] = fma(g3, xw, (*acc)[3u * KH * KW + t]);
        }
    }
}

// The 4 output channels' sums at input channel ci into split `split`'s part of gdw.
fn store_weight_gradient(acc: ptr<function, array<vec4<f32>, 100>>, split: u32, co0: u32, ci: u32) {
    let taps = cv.cin * KH * KW;
    let out = split * cv.cout * taps;
    for (var c = 0u; c < 4u; c++) {
        let co = co0 + c;
        if (co >= cv.cout) { break; }
        for (var t = 0u; t < KH * KW; t++) {
            let a = (*acc)[c * KH * KW + t];
            gdw[out + co * taps + ci * KH * KW + t] = a.x + a.y + a.z + a.w;
        }
    }
}
