//! The IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed): a big-endian header
//! (two zero bytes, a type byte 0x08 for u8, the number of dimensions, then each dimension as a
//! u32) followed by the values.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::io::{read_file, write_atomically};

pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

fn file_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Deflate expands at most 1032:1, so no gzip file can hold more than this many bytes per byte.
const MAX_GZIP_RATIO: u64 = 1032;

/// The file's bytes, decompressed when it starts with the gzip magic number. The decompressed
/// size is bounded before anything is allocated: by what the IDX header of `dims` dimensions
/// promises (plus one byte, to detect trailing data), and by what the file could hold.
fn read_maybe_gzip(path: &Path, dims: u8) -> Result<Vec<u8>> {
    let raw = read_file(path)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let not_gzip = |e: std::io::Error| file_error(path, format!("not a valid gzip file: {e}"));
    let header_len = 4 + 4 * dims as usize;
    let mut decoder = flate2::read::GzDecoder::new(&raw[..]);
    let mut head = Vec::with_capacity(header_len);
    (&mut decoder)
        .take(header_len as u64)
        .read_to_end(&mut head)
        .map_err(not_gzip)?;
    let shape = header_shape(path, &head, dims)?;
    let promised = match header_len.checked_add(payload_size(path, &shape)?) {
        Some(n) => n as u64,
        None => return Err(too_large(path)),
    };
    let could_hold = (raw.len() as u64).saturating_mul(MAX_GZIP_RATIO);
    if promised > could_hold {
        return Err(file_error(
            path,
            format!(
                "truncated: the header promises {promised} bytes, more than this {}-byte gzip \
                 file can hold",
                raw.len()
            ),
        ));
    }
    let mut out = head;
    decoder
        .take(promised + 1 - out.len() as u64)
        .read_to_end(&mut out)
        .map_err(not_gzip)?;
    Ok(out)
}

fn too_large(path: &Path) -> Error {
    file_error(
        path,
        "the IDX header's dimensions multiply past what this machine can address; the file is \
         damaged or not an IDX file",
    )
}

/// The dimensions in an IDX header of `dims` dimensions, after checking its magic number; the
/// header may be shorter than that (a truncated file), which is an error.
fn header_shape(path: &Path, bytes: &[u8], dims: u8) -> Result<Vec<usize>> {
    let header = 4 + 4 * dims as usize;
    if bytes.len() < header {
        return Err(file_error(
            path,
            format!(
                "truncated: {} bytes, shorter than the {header}-byte IDX header",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] != dims {
        return Err(file_error(
            path,
            format!(
                "bad magic number {:02x}{:02x}{:02x}{:02x}: expected 000008{dims:02x} (u8 values, {dims} dimensions)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    Ok((0..dims as usize)
        .map(|d| {
            let field = [
                bytes[4 + 4 * d],
                bytes[5 + 4 * d],
                bytes[6 + 4 * d],
                bytes[7 + 4 * d],
            ];
            u32::from_be_bytes(field) as usize
        })
        .collect())
}

/// The number of value bytes a header's `shape` promises, with checked arithmetic.
fn payload_size(path: &Path, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| too_large(path))
}

/// Parses an IDX file of u8 values with `dims` dimensions: returns the dimensions and the data.
fn parse(path: &Path, bytes: &[u8], dims: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let shape = header_shape(path, bytes, dims)?;
    let want = payload_size(path, &shape)?;
    let record = want.checked_div(shape[0]).unwrap_or(0);
    let data = &bytes[4 + 4 * dims as usize..];
    if data.len() < want {
        let complete = data.len() / record.max(1);
        return Err(file_error(
            path,
            format!("truncated: the header promises {} records of {record} bytes, but record {complete} is incomplete", shape[0]),
        ));
    }
    if data.len() > want {
        return Err(file_error(
            path,
            format!(
                "{} bytes follow the {} records the header promises",
                data.len() - want,
                shape[0]
            ),
        ));
    }
    Ok((shape, data.to_vec()))
}

/// Loads an images file ([N, rows, cols]) and a labels file ([N]) as one-channel images.
pub fn load_idx(images: &Path, labels: &Path, class_names: &[&str]) -> Result<Dataset> {
    let (shape, pixels) = parse(images, &read_maybe_gzip(images, 3)?, 3)?;
    let (lshape, label_bytes) = parse(labels, &read_maybe_gzip(labels, 1)?, 1)?;
    if lshape[0] != shape[0] {
        return Err(file_error(
            labels,
            format!(
                "{} labels for the {} images of {}",
                lshape[0],
                shape[0],
                images.display()
            ),
        ));
    }
    let names = class_names.iter().map(|s| s.to_string()).collect();
    Dataset::new(
        pixels,
        label_bytes.into_iter().map(u32::from).collect(),
        [1, shape[1], shape[2]],
        names,
        labels,
    )
}

/// `prefix-images-idx3-ubyte(.gz)` and `prefix-labels-idx1-ubyte(.gz)` in `dir`.
pub fn idx_paths(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str| {
        let base = format!("{prefix}-{kind}-ubyte");
        [format!("{base}.gz"), base.clone()].into_iter().map(|n| dir.join(n)).find(|p| p.is_file()).ok_or_else(|| {
            file_error(dir, format!("no {base}.gz or {base} here; point --data at a folder with the Fashion-MNIST IDX files"))
        })
    };
    Ok((find("images-idx3")?, find("labels-idx1")?))
}

/// Fashion-MNIST (or MNIST, with other class names) from the standard file names in `dir`.
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let (images, labels) = idx_paths(dir, split)?;
    load_idx(&images, &labels, &FASHION_MNIST_CLASSES)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

fn header(dims: &[usize]) -> Vec<u8> {
    let mut h = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        h.extend_from_slice(&(d as u32).to_be_bytes());
    }
    h
}

/// Writes a one-channel data set as a gzip-compressed IDX pair in `dir`, under the standard
/// file names for `split`.
pub fn write_idx_gz(ds: &Dataset, dir: &Path, split: Split) -> Result<()> {
    let [c, h, w] = ds.shape();
    if c != 1 {
        return Err(Error::InvalidArgument(format!(
            "IDX files hold one-channel images; this data set has {c} channels"
        )));
    }
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, format!("cannot create: {e}")))?;
    let mut images = header(&[ds.len(), h, w]);
    images.extend_from_slice(ds.pixels());
    write_atomically(
        &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        &gzip(&images)?,
    )?;
    let mut labels = header(&[ds.len()]);
    labels.extend(ds.labels().iter().map(|&l| l as u8));
    write_atomically(
        &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        &gzip(&labels)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_dir;

    fn tiny() -> Dataset {
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
        let names = FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect();
        Dataset::new(pixels, vec![0, 9, 4], [1, 4, 5], names, Path::new("tiny")).unwrap()
    }

    #[test]
    fn idx_round_trip_through_gzip_and_raw() {
        let dir = test_dir::fresh("idx-round-trip");
        let ds = tiny();
        write_idx_gz(&ds, &dir, Split::Test).unwrap();
        assert_eq!(load_fashion_mnist(&dir, Split::Test).unwrap(), ds);
        // The same files uncompressed load the same.
        for (kind, dims) in [("images-idx3", 3), ("labels-idx1", 1)] {
            let gz = dir.join(format!("t10k-{kind}-ubyte.gz"));
            std::fs::write(
                dir.join(format!("t10k-{kind}-ubyte")),
                read_maybe_gzip(&gz, dims).unwrap(),
            )
            .unwrap();
            std::fs::remove_file(gz).unwrap();
        }
        assert_eq!(load_fashion_mnist(&dir, Split::Test).unwrap(), ds);
    }

    #[test]
    fn truncated_bad_magic_out_of_range_and_mismatched_files_are_clear_errors() {
        let dir = test_dir::fresh("idx-errors");
        let ds = tiny();
        write_idx_gz(&ds, &dir, Split::Train).unwrap();
        let (images, labels) = idx_paths(&dir, Split::Train).unwrap();
        let raw = read_maybe_gzip(&images, 3).unwrap();
        let raw_labels = read_maybe_gzip(&labels, 1).unwrap();
        let bad_images = dir.join("bad-images");
        let bad_labels = dir.join("bad-labels");
        let check = |img: &[u8], lab: &[u8], want: &[&str]| {
            std::fs::write(&bad_images, img).unwrap();
            std::fs::write(&bad_labels, lab).unwrap();
            let msg = load_idx(&bad_images, &bad_labels, &FASHION_MNIST_CLASSES)
                .unwrap_err()
                .to_string();
            for w in want {
                assert!(msg.contains(w), "{msg:?} should mention {w:?}");
            }
        };
        check(
            &raw[..raw.len() - 7],
            &raw_labels,
            &["bad-images", "truncated", "record 2"],
        );
        let mut magic = raw.clone();
        magic[3] = 1;
        check(&magic, &raw_labels, &["bad-images", "magic"]);
        let mut label = raw_labels.clone();
        *label.last_mut().unwrap() = 10;
        check(&raw, &label, &["bad-labels", "record 2", "label 10"]);
        let mut fewer = header(&[2]);
        fewer.extend_from_slice(&[1, 2]);
        check(&raw, &fewer, &["bad-labels", "2 labels", "3 images"]);
        check(&[0x1f, 0x8b, 1, 2, 3], &raw_labels, &["bad-images", "gzip"]);
        // Dimensions whose product passes 64 bits, raw and compressed.
        let huge = header(&[u32::MAX as usize, u32::MAX as usize, u32::MAX as usize]);
        check(&huge, &raw_labels, &["bad-images", "multiply past"]);
        check(
            &gzip(&huge).unwrap(),
            &raw_labels,
            &["bad-images", "multiply past"],
        );
        // A small gzip file whose header promises far more than it could decompress to.
        let mut promise = header(&[1 << 20, 1 << 10, 1]);
        promise.extend_from_slice(&[0; 64]);
        check(
            &gzip(&promise).unwrap(),
            &raw_labels,
            &["bad-images", "can hold"],
        );
    }
}
