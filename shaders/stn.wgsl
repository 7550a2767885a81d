// The learnt crop placement (`stn`): per image a localiser's four outputs r become the two
// views' sampling matrices, and the losses that train the localiser.
//
// Placement of image k from r = (r0, r1, r2, r3):
//   mean   = image centre + side x 0.5 tanh(r0, r1)            (at most half a side away)
//   spread = max(base x exp(3 tanh(r2 / 3, r3 / 3)), floor)    (base: GCC's std at the alpha)
//   view v's centre = mean + spread x n_v, n_v ~ N(0, 1) per axis (drawn on the CPU)
// so that r = 0 is GCC. A view is the box of the view's size at that centre, read at continuous
// positions (zeros outside the image), mirrored when its flip is set.
//
// Bindings (unused ones get a placeholder):
//   view_matrices:          src0 = r [B, 4], src1 = draws [2B, 3] (n_x, n_y, flip),
//                           out = matrices [2B, 6], out2 = stats [B, 4]: offset (side
//                           fractions), spread (side fractions), share of view area outside
//                           the image, the pair's overlap (IoU)
//   view_matrices_backward: src0 = r, src1 = draws, src2 = dL/dmatrices, out = dL/dr
//   overlap_hinge:          src0 = r, src1 = draws, out = [B] shares of the mean over images
//                           of max(0, min_iou - DIoU(view 1, view 2)), DIoU = IoU - |d|^2 / c^2
//                           (d the centres' difference, c the enclosing box's diagonal): a
//                           lower bound of the IoU whose gradient does not vanish once the
//                           boxes no longer overlap
//   overlap_hinge_backward: src0 = r, src1 = draws, src2 = dL/dloss [1], out = dL/dr
//   agreement:              src0 = u [rows, dim], src2 = t [images, dim] (row v of u is
//                           compared with row v mod images of t), out = [rows] shares of
//                           1 - mean dot
// The two losses' shares are summed by `reduce.wgsl`'s sum_channels, a tree on any device.
//   agreement_backward:     src1 = dL/dloss [1], src2 = t, out = dL/du

struct Params {
    images: u32, iw: u32, ih: u32, vw: u32,
    vh: u32, dim: u32, rows: u32, _p0: u32,
    base_x: f32, base_y: f32, floor_x: f32, floor_y: f32,
    min_iou: f32, _p1: f32, _p2: f32, _p3: f32,
}

override WG: u32 = 64;

const LOG_BOUND: f32 = 3.0;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src0: array<f32>;
@group(0) @binding(2) var<storage, read> src1: array<f32>;
@group(0) @binding(3) var<storage, read> src2: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out2: array<f32>;

struct Placement {
    mean: vec2f,
    spread: vec2f,
    // d mean / d (r0, r1) and d spread / d (r2, r3) (zero where the floor holds).
    dmean: vec2f,
    dspread: vec2f,
    offset: vec2f,
}

fn placement(k: u32) -> Placement {
    let r = vec4f(src0[4u * k], src0[4u * k + 1u], src0[4u * k + 2u], src0[4u * k + 3u]);
    let size = vec2f(f32(p.iw), f32(p.ih));
    let t = tanh(r.xy);
    let tl = tanh(r.zw / LOG_BOUND);
    let raw = vec2f(p.base_x, p.base_y) * exp(LOG_BOUND * tl);
    let floor_ = vec2f(p.floor_x, p.floor_y);
    var q: Placement;
    q.offset = 0.5 * t;
    q.mean = size * (0.5 + q.offset);
    q.dmean = size * 0.5 * (1.0 - t * t);
    q.spread = max(raw, floor_);
    q.dspread = select(vec2f(0.0), raw * (1.0 - tl * tl), raw > floor_);
    return q;
}

fn noise(v: u32) -> vec2f {
    return vec2f(src1[3u * v], src1[3u * v + 1u]);
}

fn view_size() -> vec2f {
    return vec2f(f32(p.vw), f32(p.vh));
}

// The two boxes' overlap over their union, for centre difference d (equal box sizes).
fn iou_of(d: vec2f) -> f32 {
    let s = view_size();
    let inter = max(s - abs(d), vec2f(0.0));
    let i = inter.x * inter.y;
    return i / (2.0 * s.x * s.y - i);
}

// The share of a box at centre c that lies outside the image.
fn outside_share(c: vec2f) -> f32 {
    let s = view_size();
    let lo = max(c - 0.5 * s, vec2f(0.0));
    let hi = min(c + 0.5 * s, vec2f(f32(p.iw), f32(p.ih)));
    let inside = max(hi - lo, vec2f(0.0));
    return 1.0 - inside.x * inside.y / (s.x * s.y);
}

// One invocation per image.
@compute @workgroup_size(WG)
fn view_matrices(@builtin(global_invocation_id) gid: vec3u) {
    let k = gid.x;
    if (k >= p.images) { return; }
    let q = placement(k);
    var centres: array<vec2f, 2>;
    var outside = 0.0;
    for (var view = 0u; view < 2u; view++) {
        let v = k + view * p.images;
        let c = q.mean + q.spread * noise(v);
        centres[view] = c;
        outside += 0.5 * outside_share(c);
        // Output pixel j reads source x = j + left (pixel centres at integers).
        let corner = c - 0.5 * view_size();
        var m = array<f32, 6>(1.0, 0.0, corner.x, 0.0, 1.0, corner.y);
        if (src1[3u * v + 2u] > 0.5) {
            m[0] = -1.0;
            m[2] = corner.x + f32(p.vw) - 1.0;
        }
        for (var e = 0u; e < 6u; e++) { out[6u * v + e] = m[e]; }
    }
    let size = vec2f(f32(p.iw), f32(p.ih));
    let spread = q.spread / size;
    out2[4u * k] = length(q.offset);
    out2[4u * k + 1u] = 0.5 * (spread.x + spread.y);
    out2[4u * k + 2u] = outside;
    out2[4u * k + 3u] = iou_of(centres[0] - centres[1]);
}

// One invocation per image: only the translations (entries 2 and 5) depend on r.
@compute @workgroup_size(WG)
fn view_matrices_backward(@builtin(global_invocation_id) gid: vec3u) {
    let k = gid.x;
    if (k >= p.images) { return; }
    let q = placement(k);
    var dmean = vec2f(0.0);
    var dspread = vec2f(0.0);
    for (var view = 0u; view < 2u; view++) {
        let v = k + view * p.images;
        let dc = vec2f(src2[6u * v + 2u], src2[6u * v + 5u]);
        dmean += dc;
        dspread += dc * noise(v);
    }
    let dr = vec4f(dmean * q.dmean, dspread * q.dspread);
    for (var e = 0u; e < 4u; e++) { out[4u * k + e] = dr[e]; }
}

// Distance-IoU of two boxes of the view's size whose centres differ by d.
fn diou_of(d: vec2f) -> f32 {
    let c = view_size() + abs(d);
    return iou_of(d) - dot(d, d) / dot(c, c);
}

// d DIoU / d d.
fn diou_gradient(d: vec2f) -> vec2f {
    let s = view_size();
    let inter = max(s - abs(d), vec2f(0.0));
    let i = inter.x * inter.y;
    let union_ = 2.0 * s.x * s.y - i;
    // d IoU / d inter, then d inter / d d per axis (zero once the boxes are apart on it).
    let diou_dinter = 2.0 * s.x * s.y / (union_ * union_);
    let dinter_dd = -sign(d) * select(vec2f(0.0), inter.yx, inter > vec2f(0.0));
    let c = s + abs(d);
    let c2 = dot(c, c);
    let rho2 = dot(d, d);
    let dpenalty = 2.0 * d / c2 - 2.0 * rho2 * c * sign(d) / (c2 * c2);
    return diou_dinter * dinter_dd - dpenalty;
}

// One invocation per image: its share of the batch's mean hinge (summed by the reduce kernel).
@compute @workgroup_size(WG)
fn overlap_hinge(@builtin(global_invocation_id) gid: vec3u) {
    let k = gid.x;
    if (k >= p.images) { return; }
    let q = placement(k);
    let d = q.spread * (noise(k) - noise(k + p.images));
    out[k] = max(p.min_iou - diou_of(d), 0.0) / f32(p.images);
}

// One invocation per image. The centre difference q.spread x (n_1 - n_2) does not depend on
// the mean: the hinge moves only the spread.
@compute @workgroup_size(WG)
fn overlap_hinge_backward(@builtin(global_invocation_id) gid: vec3u) {
    let k = gid.x;
    if (k >= p.images) { return; }
    let q = placement(k);
    let dn = noise(k) - noise(k + p.images);
    let d = q.spread * dn;
    let below = diou_of(d) < p.min_iou;
    let dd = select(0.0, -src2[0] / f32(p.images), below) * diou_gradient(d);
    let dr = vec4f(0.0, 0.0, dd * dn * q.dspread);
    for (var e = 0u; e < 4u; e++) { out[4u * k + e] = dr[e]; }
}

// One invocation per row of u: its share of 1 - mean dot (summed by the reduce kernel).
@compute @workgroup_size(WG)
fn agreement(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let v = gid.x + gid.y * nwg.x * WG;
    if (v >= p.rows) { return; }
    let t = (v % p.images) * p.dim;
    var dot_ = 0.0;
    for (var d = 0u; d < p.dim; d++) { dot_ += src0[v * p.dim + d] * src2[t + d]; }
    out[v] = (1.0 - dot_) / f32(p.rows);
}

// One invocation per element of u.
@compute @workgroup_size(WG)
fn agreement_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.rows * p.dim) { return; }
    let v = i / p.dim;
    out[i] = -src1[0] / f32(p.rows) * src2[(v % p.images) * p.dim + i % p.dim];
}
