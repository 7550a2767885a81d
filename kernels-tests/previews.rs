//! The crop previews of `taming crops`: real PNGs of the expected size whose view panels hold
//! the GPU views, and heat maps whose mass sits where each strategy puts its centres.

mod common;

use common::*;
use taming::crop::{CropSpec, Method};
use taming::data::{load_dir, Split};
use taming::experiment::crop_preview::{centre_heatmap, contact_sheet};

fn decode(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn contact_sheet_and_heatmap_are_written_as_png() {
    let dir = std::env::temp_dir().join(format!("taming-previews-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (w, h) = (28usize, 28usize);

    let heat = centre_heatmap([w, h], 0.4, 1.5, 2000, 0).unwrap();
    let heat_path = dir.join("heat.png");
    heat.save_png(&heat_path).unwrap();
    let (hw, _, pixels) = decode(&heat_path);
    // Panel k starts at x = 20 + k * (3 * 28 * 3 + 20), y = 64; GCC is panel 1. Its image
    // centre is bright, its far corner (outside the image) dark.
    let at = |x: usize, y: usize| {
        let i = (y * hw as usize + x) * 3;
        pixels[i] as u32 + pixels[i + 1] as u32 + pixels[i + 2] as u32
    };
    let gcc_x = 20 + (3 * 28 * 3 + 20);
    let centre = at(gcc_x + 3 * 42, 64 + 3 * 42);
    let corner = at(gcc_x + 2, 64 + 2);
    assert!(
        centre > 300 && corner < 30,
        "centre {centre}, corner {corner}"
    );

    let Some(gpu) = gpu() else { return };
    let data = load_dir(None, Split::Test).unwrap();
    let spec = CropSpec::new(Method::Gcc, 0.4, 1.5).unwrap();
    let sheet = contact_sheet(&gpu, &data, &spec, 3, 0, "gcc", None, None).unwrap();
    let path = dir.join("views.png");
    sheet.save_png(&path).unwrap();
    let (sw, sh, pixels) = decode(&path);
    assert_eq!((sw as usize, sh as usize), (sheet.width(), sheet.height()));
    assert_eq!(pixels.len(), sheet.width() * sheet.height() * 3);
    // Three rows of 56 * 4 pixels plus header and gaps.
    assert_eq!(sh, 56 + 3 * (224 + 20) + 20);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
