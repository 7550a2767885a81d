//! A folder of PNG images with one sub-folder per class (the sub-folder names, sorted, are the
//! classes). Grey images load as one channel, colour as three (alpha is dropped); every image
//! must have the size and the channel count of the first.

use std::path::{Path, PathBuf};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::read_file;

fn file_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| file_error(dir, format!("cannot list: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

/// Decodes a PNG to (channels, height, width, CHW bytes).
fn decode(path: &Path) -> Result<([usize; 3], Vec<u8>)> {
    let bytes = read_file(path)?;
    let bytes_len = bytes.len();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| file_error(path, format!("not a readable PNG: {e}")))?;
    // Deflate expands at most 1032:1: a header promising more pixels than the file could
    // hold is damaged, and nothing that large is allocated.
    let size = reader.output_buffer_size().unwrap_or(usize::MAX);
    if size as u64 > 1032 * bytes_len as u64 {
        return Err(file_error(
            path,
            format!("damaged: its header promises {size} bytes of pixels, more than this {bytes_len}-byte file can hold"),
        ));
    }
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| file_error(path, format!("not a readable PNG: {e}")))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let (stored, kept) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        other => {
            return Err(file_error(
                path,
                format!("unsupported PNG colour type {other:?}"),
            ))
        }
    };
    let hwc = &buf[..info.buffer_size()];
    let mut chw = vec![0; kept * h * w];
    for p in 0..h * w {
        for c in 0..kept {
            chw[c * h * w + p] = hwc[p * stored + c];
        }
    }
    Ok(([kept, h, w], chw))
}

pub fn load_png_folder(dir: &Path) -> Result<Dataset> {
    let classes: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if classes.is_empty() {
        return Err(file_error(
            dir,
            "no class sub-folders: expected DIR/<class>/<image>.png",
        ));
    }
    let (mut pixels, mut labels, mut shape) = (Vec::new(), Vec::new(), None);
    for (label, class_dir) in classes.iter().enumerate() {
        for file in sorted_entries(class_dir)? {
            if file
                .extension()
                .is_none_or(|e| !e.eq_ignore_ascii_case("png"))
            {
                continue;
            }
            let (s, chw) = decode(&file)?;
            match shape {
                None => shape = Some(s),
                Some(first) if first != s => {
                    return Err(file_error(
                        &file,
                        format!("image is {s:?} (C, H, W) but the first image is {first:?}"),
                    ));
                }
                _ => {}
            }
            pixels.extend(chw);
            labels.push(label as u32);
        }
    }
    let shape = shape.ok_or_else(|| file_error(dir, "no .png files in the class sub-folders"))?;
    let names = classes
        .iter()
        .map(|c| {
            c.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    Dataset::new(pixels, labels, shape, names, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_dir;

    fn write_png(path: &Path, w: u32, h: u32, color: png::ColorType, data: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(data).unwrap();
    }

    #[test]
    fn loads_classes_from_sub_folders_as_chw_and_rejects_mixed_sizes() {
        let dir = test_dir::fresh("png-folder");
        for class in ["cat", "dog"] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
        }
        // 2x1 RGBA: pixel 0 = (1, 2, 3, 255), pixel 1 = (4, 5, 6, 0); alpha is dropped.
        write_png(
            &dir.join("dog/a.png"),
            2,
            1,
            png::ColorType::Rgba,
            &[1, 2, 3, 255, 4, 5, 6, 0],
        );
        write_png(
            &dir.join("cat/b.png"),
            2,
            1,
            png::ColorType::Rgb,
            &[7, 8, 9, 10, 11, 12],
        );
        std::fs::write(dir.join("cat/notes.txt"), "ignored").unwrap();
        let ds = load_png_folder(&dir).unwrap();
        assert_eq!(ds.class_names(), ["cat", "dog"]);
        assert_eq!(ds.labels(), [0, 1]);
        assert_eq!(ds.shape(), [3, 1, 2]);
        assert_eq!(ds.image(0), [7, 10, 8, 11, 9, 12]);
        assert_eq!(ds.image(1), [1, 4, 2, 5, 3, 6]);

        write_png(
            &dir.join("dog/c.png"),
            1,
            1,
            png::ColorType::Rgb,
            &[1, 2, 3],
        );
        let msg = load_png_folder(&dir).unwrap_err().to_string();
        assert!(
            msg.contains("c.png") && msg.contains("[3, 1, 1]") && msg.contains("[3, 1, 2]"),
            "{msg}"
        );
    }
}
