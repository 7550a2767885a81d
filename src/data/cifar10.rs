//! The CIFAR-10 binary format: files of 3073-byte records, one label byte (0-9) then 3072 pixel
//! bytes (1024 red, 1024 green, 1024 blue, each 32 x 32 row-major), i.e. already CHW.

use std::path::{Path, PathBuf};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::io::read_file;

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const RECORD: usize = 1 + 3 * 32 * 32;

/// The batch files of `split`, in `dir` or in its `cifar-10-batches-bin` sub-folder.
pub fn cifar10_files(dir: &Path, split: Split) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    let base = if dir.join(&names[0]).is_file() {
        dir.to_path_buf()
    } else {
        dir.join("cifar-10-batches-bin")
    };
    names
        .iter()
        .map(|n| {
            let p = base.join(n);
            p.is_file().then_some(p).ok_or_else(|| Error::File {
                path: dir.to_path_buf(),
                detail: format!("no {n} here or in cifar-10-batches-bin/; `taming data fetch cifar10 --to DIR` downloads the set"),
            })
        })
        .collect()
}

/// Parses one batch file, appending to `pixels` and `labels`.
fn parse_batch(
    path: &Path,
    bytes: &[u8],
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    if bytes.len() % RECORD != 0 {
        return Err(Error::File {
            path: path.to_path_buf(),
            detail: format!(
                "truncated: {} bytes is not a whole number of {RECORD}-byte records; record {} has only {} bytes",
                bytes.len(),
                bytes.len() / RECORD,
                bytes.len() % RECORD
            ),
        });
    }
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] as usize >= CIFAR10_CLASSES.len() {
            return Err(Error::File {
                path: path.to_path_buf(),
                detail: format!("record {i}: label {} is out of range (0..10)", rec[0]),
            });
        }
        labels.push(rec[0] as u32);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

pub fn load_cifar10(dir: &Path, split: Split) -> Result<Dataset> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let files = cifar10_files(dir, split)?;
    for f in &files {
        parse_batch(f, &read_file(f)?, &mut pixels, &mut labels)?;
    }
    let names = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    Dataset::new(pixels, labels, [3, 32, 32], names, &files[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_dir;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        std::iter::once(label)
            .chain(std::iter::repeat_n(fill, RECORD - 1))
            .collect()
    }

    #[test]
    fn loads_the_test_batch_and_rejects_truncated_files_and_bad_labels() {
        let dir = test_dir::fresh("cifar").join("cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("test_batch.bin");
        std::fs::write(&file, [record(3, 7), record(9, 200)].concat()).unwrap();
        let ds = load_cifar10(dir.parent().unwrap(), Split::Test).unwrap();
        assert_eq!(
            (ds.len(), ds.shape(), ds.labels()),
            (2, [3, 32, 32], &[3u32, 9][..])
        );
        assert!(ds.image(1).iter().all(|&p| p == 200));

        std::fs::write(
            &file,
            [record(3, 7), record(9, 200)[..100].to_vec()].concat(),
        )
        .unwrap();
        let msg = load_cifar10(&dir, Split::Test).unwrap_err().to_string();
        assert!(
            msg.contains("test_batch.bin") && msg.contains("record 1") && msg.contains("truncated"),
            "{msg}"
        );

        std::fs::write(&file, [record(3, 7), record(12, 0)].concat()).unwrap();
        let msg = load_cifar10(&dir, Split::Test).unwrap_err().to_string();
        assert!(
            msg.contains("record 1") && msg.contains("label 12"),
            "{msg}"
        );

        let msg = load_cifar10(&dir, Split::Train).unwrap_err().to_string();
        assert!(
            msg.contains("data_batch_1.bin") && msg.contains("taming data fetch"),
            "{msg}"
        );
    }
}
