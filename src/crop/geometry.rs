//! From a crop box to what the sampling kernel reads: a pixel matrix and a zero-outside
//! rectangle, for the two padding modes of PAPER.md and an optional horizontal flip.

use crate::names::string_enum;

/// A crop box in source pixels; it may reach outside the image (GCC, MGCC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub left: i64,
    pub top: i64,
    pub width: u32,
    pub height: u32,
}

impl CropBox {
    pub fn right(&self) -> i64 {
        self.left + self.width as i64
    }
    pub fn bottom(&self) -> i64 {
        self.top + self.height as i64
    }
    /// Whether the box lies entirely inside a `w` x `h` image.
    pub fn inside(&self, w: usize, h: usize) -> bool {
        self.left >= 0 && self.top >= 0 && self.right() <= w as i64 && self.bottom() <= h as i64
    }
}

string_enum! {
    /// What a view shows where its box leaves the image.
    pub enum PadMode as "padding mode" {
        /// The authors' behaviour (the published numbers): the box is clipped to the image and
        /// the clipped content is centred in a zero canvas of the box's size (zeros split
        /// evenly, the extra one on the bottom/right).
        Centre = "centre" | "center",
        /// The translated window: zeros exactly where the box left the image.
        Window = "window",
    }
}

// Not derivable: string_enum! declares the variants, so `#[default]` cannot mark one.
#[allow(clippy::derivable_impls)]
impl Default for PadMode {
    fn default() -> PadMode {
        PadMode::Centre
    }
}

/// The sampling of one view: `matrix` in the pixel units of `ops::affine_sample`, and the
/// source rectangle `[x0, y0, x1, y1)` outside which it reads zeros.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewGeometry {
    pub matrix: [f64; 6],
    pub rect: [i32; 4],
}

/// The geometry that shows `b` of an `image_wh` image as an `out_wh` view (a resize when the
/// sizes differ), mirrored left-right when `flip`.
pub fn view_geometry(
    b: &CropBox,
    image_wh: [usize; 2],
    out_wh: [usize; 2],
    pad: PadMode,
    flip: bool,
) -> ViewGeometry {
    let [iw, ih] = image_wh.map(|v| v as i64);
    let (sx, sy) = (
        b.width as f64 / out_wh[0] as f64,
        b.height as f64 / out_wh[1] as f64,
    );
    // The canvas position (in source pixels) of the view's top-left box corner, and the rect.
    let (origin_x, origin_y, rect) = match pad {
        PadMode::Window => (b.left, b.top, [0, 0, iw, ih]),
        PadMode::Centre => {
            let (x0, x1) = (b.left.clamp(0, iw), b.right().clamp(0, iw));
            let (y0, y1) = (b.top.clamp(0, ih), b.bottom().clamp(0, ih));
            if x1 <= x0 || y1 <= y0 {
                // Entirely outside: an all-zero view.
                (b.left, b.top, [0, 0, 0, 0])
            } else {
                let pad_left = (b.width as i64 - (x1 - x0)) / 2;
                let pad_top = (b.height as i64 - (y1 - y0)) / 2;
                (x0 - pad_left, y0 - pad_top, [x0, y0, x1, y1])
            }
        }
    };
    // Output pixel j covers box pixels [j sx, (j + 1) sx): its centre is at j sx + sx/2 - 1/2
    // from the box's left edge (an exact integer offset when sx = 1).
    let mut matrix = [
        sx,
        0.0,
        origin_x as f64 + 0.5 * sx - 0.5,
        0.0,
        sy,
        origin_y as f64 + 0.5 * sy - 0.5,
    ];
    if flip {
        matrix[2] += matrix[0] * (out_wh[0] as f64 - 1.0);
        matrix[0] = -matrix[0];
    }
    let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    ViewGeometry {
        matrix,
        rect: rect.map(clamp),
    }
}
