//! `--data DIR`: which of the supported formats a folder holds.

use std::path::Path;

use crate::data::{cifar10, folder, idx, shipped_sample_dir, Dataset, Split};
use crate::error::{Error, Result};

/// The `split` of the data set in `dir` (the shipped Fashion-MNIST sample when `None`):
/// Fashion-MNIST/MNIST IDX files, the CIFAR-10 binary batches (in DIR or in its
/// cifar-10-batches-bin folder), or PNG folders `DIR/train/<class>/` and `DIR/test/<class>/`.
pub fn load_dir(dir: Option<&Path>, split: Split) -> Result<Dataset> {
    let shipped = shipped_sample_dir();
    let dir = dir.unwrap_or(&shipped);
    if !dir.is_dir() {
        return Err(Error::File {
            path: dir.to_path_buf(),
            detail: "is not a folder; --data takes a folder holding a data set".into(),
        });
    }
    if idx::idx_paths(dir, split).is_ok() {
        return idx::load_fashion_mnist(dir, split);
    }
    if cifar10::cifar10_files(dir, split).is_ok() {
        return cifar10::load_cifar10(dir, split);
    }
    let sub = dir.join(match split {
        Split::Train => "train",
        Split::Test => "test",
    });
    if sub.is_dir() {
        return folder::load_png_folder(&sub);
    }
    Err(Error::File {
        path: dir.to_path_buf(),
        detail: format!(
            "holds no {split:?} data set that taming reads: expected Fashion-MNIST IDX files \
             (train-images-idx3-ubyte.gz, ...), the CIFAR-10 binary batches (data_batch_1.bin, \
             ..., test_batch.bin; `taming data fetch cifar10 --to DIR` downloads them) or PNG \
             folders train/<class>/ and test/<class>/"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_dir;

    #[test]
    fn finds_the_shipped_sample_and_explains_an_empty_folder() {
        let train = load_dir(None, Split::Test).unwrap();
        assert_eq!((train.len(), train.shape()), (2000, [1, 28, 28]));
        let empty = test_dir::fresh("detect-empty");
        let msg = load_dir(Some(&empty), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("no Train data set") && msg.contains("data fetch"),
            "{msg}"
        );
    }
}
