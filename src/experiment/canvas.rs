//! A small RGB canvas for the preview pictures: rectangles, upscaled images, 8x8 bitmap text,
//! and PNG output written atomically.

use std::path::Path;

use font8x8::legacy::BASIC_LEGACY;

use crate::error::{Error, Result};
use crate::io::write_atomically;

pub type Rgb = [u8; 3];

pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    /// Sets one pixel; anything outside the canvas is ignored.
    pub fn put(&mut self, x: i64, y: i64, color: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = color;
        }
    }

    pub fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, color);
            }
        }
    }

    /// The outline of a rectangle, `t` pixels thick, drawn inside its bounds.
    pub fn outline(&mut self, x: i64, y: i64, w: i64, h: i64, t: i64, color: Rgb) {
        self.fill(x, y, w, t, color);
        self.fill(x, y + h - t, w, t, color);
        self.fill(x, y, t, h, color);
        self.fill(x + w - t, y, t, h, color);
    }

    /// An image given as `pixel(x, y) -> Rgb`, `w` x `h`, upscaled by `scale` (nearest).
    pub fn image(
        &mut self,
        x: i64,
        y: i64,
        w: usize,
        h: usize,
        scale: usize,
        pixel: impl Fn(usize, usize) -> Rgb,
    ) {
        for iy in 0..h {
            for ix in 0..w {
                let s = scale as i64;
                let color = pixel(ix, iy);
                self.fill(x + ix as i64 * s, y + iy as i64 * s, s, s, color);
            }
        }
    }

    /// Copies `other` with its top-left corner at (x, y), clipped to this canvas.
    pub fn blit(&mut self, other: &Canvas, x: i64, y: i64) {
        for oy in 0..other.height {
            for ox in 0..other.width {
                self.put(
                    x + ox as i64,
                    y + oy as i64,
                    other.pixels[oy * other.width + ox],
                );
            }
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }

    /// ASCII text in the 8x8 bitmap font, each font pixel `scale` pixels wide.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, color: Rgb) {
        for (k, ch) in text.chars().enumerate() {
            let glyph = BASIC_LEGACY[(ch as usize).min(127)];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        let gx = x + (k as i64 * 8 + col) * scale;
                        self.fill(gx, y + row as i64 * scale, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Writes the canvas as an RGB PNG (through a temporary file).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        save_rgb_png(path, self.width, self.height, self.pixels.as_flattened())
    }
}

/// Writes `rgb` (row-major, 3 bytes per pixel) as a PNG, through a temporary file.
pub fn save_rgb_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let fail = |e: png::EncodingError| Error::File {
            path: path.to_path_buf(),
            detail: format!("cannot encode the PNG: {e}"),
        };
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(rgb).map_err(fail)?;
    }
    write_atomically(path, &bytes)
}

/// A dark-to-bright colour ramp for heat maps (black, purple, orange, pale yellow), t in [0, 1].
pub fn heat_color(t: f64) -> Rgb {
    const STOPS: [[f64; 3]; 5] = [
        [0.0, 0.0, 4.0],
        [87.0, 16.0, 110.0],
        [188.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let k = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - k as f64;
    std::array::from_fn(|c| (STOPS[k][c] * (1.0 - f) + STOPS[k + 1][c] * f).round() as u8)
}
