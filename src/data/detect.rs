//! `--data DIR`: which of the supported formats a folder holds.

use std::path::Path;

use crate::data::{
    cifar10, folder, idx, shipped_sample_dir, Dataset, Split, DEBIAN_FASHION_MNIST_DIR,
};
use crate::error::{Error, Result};

/// The `split` of the data set in `dir` (the shipped Fashion-MNIST sample when `None`):
/// Fashion-MNIST/MNIST IDX files, the CIFAR-10 binary batches (in DIR or in its
/// cifar-10-batches-bin folder), or PNG folders `DIR/train/<class>/` and `DIR/test/<class>/`.
pub fn load_dir(dir: Option<&Path>, split: Split) -> Result<Dataset> {
    let shipped = shipped_sample_dir();
    let dir = dir.unwrap_or(&shipped);
    if !dir.is_dir() {
        let detail = match dir == Path::new(DEBIAN_FASHION_MNIST_DIR) {
            true => {
                "is not here: the full Fashion-MNIST comes from Debian's package \
                     dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or pass \
                     --data DIR with its four IDX files"
            }
            false => "is not a folder; --data takes a folder holding a data set",
        };
        return Err(Error::File {
            path: dir.to_path_buf(),
            detail: detail.into(),
        });
    }
    // A folder with some of a format's files is that format, and its error says what is missing.
    if idx::idx_paths(dir, split).is_ok() || holds_any(dir, IDX_NAMES) {
        return idx::load_fashion_mnist(dir, split);
    }
    if cifar10::cifar10_files(dir, split).is_ok()
        || holds_any(dir, CIFAR10_NAMES)
        || holds_any(&dir.join("cifar-10-batches-bin"), CIFAR10_NAMES)
    {
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

const IDX_NAMES: &[&str] = &[
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];
const CIFAR10_NAMES: &[&str] = &["data_batch_1.bin", "test_batch.bin"];

/// Whether `dir` holds one of `names` (IDX names also gzip-compressed).
fn holds_any(dir: &Path, names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| dir.join(n).is_file() || dir.join(format!("{n}.gz")).is_file())
}

/// Both splits of the data set in `dir` (the shipped sample when `None`), checked to agree: the
/// same classes by name and in the same order (a label means the same class in both), the same
/// image size and channels, and at least one image each. The training split is limited to its
/// first `train_limit` images.
pub fn load_splits(dir: Option<&Path>, train_limit: Option<usize>) -> Result<(Dataset, Dataset)> {
    if train_limit == Some(0) {
        return Err(Error::InvalidArgument(
            "--train-limit 0 leaves no training images; give a positive number".into(),
        ));
    }
    let train = load_dir(dir, Split::Train)?;
    let test = load_dir(dir, Split::Test)?;
    let shipped = shipped_sample_dir();
    let folder = dir.unwrap_or(&shipped);
    let bad = |detail: String| {
        Err(Error::File {
            path: folder.to_path_buf(),
            detail,
        })
    };
    if train.class_names() != test.class_names() {
        let missing: Vec<&String> = (train.class_names().iter())
            .filter(|c| !test.class_names().contains(c))
            .collect();
        let extra: Vec<&String> = (test.class_names().iter())
            .filter(|c| !train.class_names().contains(c))
            .collect();
        return bad(format!(
            "the test split's classes {:?} are not the training split's {:?} (missing from the \
             test split: {missing:?}; only in the test split: {extra:?}); both splits need the \
             same class folders, so that a label means the same class in both",
            test.class_names(),
            train.class_names()
        ));
    }
    if train.shape() != test.shape() {
        return bad(format!(
            "the training images are {:?} (channels, height, width) but the test images are {:?}; \
             both splits need one image size",
            train.shape(),
            test.shape()
        ));
    }
    for (split, ds) in [("training", &train), ("test", &test)] {
        if ds.is_empty() {
            return bad(format!("the {split} split holds no images"));
        }
    }
    Ok((train.first(train_limit), test))
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

    fn write_png(path: &Path, side: u32) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(file, side, side);
        enc.set_color(png::ColorType::Grayscale);
        let data = vec![7; (side * side) as usize];
        enc.write_header().unwrap().write_image_data(&data).unwrap();
    }

    /// PNG folders `dir/train/<class>/` and `dir/test/<class>/`, one image each.
    fn png_splits(name: &str, train: &[&str], test: &[&str], test_side: u32) -> std::path::PathBuf {
        let dir = test_dir::fresh(name);
        for (split, classes, side) in [("train", train, 4), ("test", test, test_side)] {
            for class in classes {
                let class_dir = dir.join(split).join(class);
                std::fs::create_dir_all(&class_dir).unwrap();
                write_png(&class_dir.join("a.png"), side);
            }
        }
        dir
    }

    #[test]
    fn splits_must_agree_on_classes_and_image_size() {
        let good = png_splits("splits-good", &["cat", "dog"], &["cat", "dog"], 4);
        let (train, test) = load_splits(Some(&good), None).unwrap();
        assert_eq!((train.len(), test.len()), (2, 2));

        // Numbered by its own sorted folders, this test split's "dog" would be label 0.
        let other = png_splits("splits-classes", &["cat", "dog"], &["dog"], 4);
        let msg = load_splits(Some(&other), None).unwrap_err().to_string();
        assert!(
            msg.contains("splits-classes")
                && msg.contains("missing from the test split: [\"cat\"]"),
            "{msg}"
        );
        let extra = png_splits("splits-extra", &["cat"], &["cat", "emu"], 4);
        let msg = load_splits(Some(&extra), None).unwrap_err().to_string();
        assert!(msg.contains("only in the test split: [\"emu\"]"), "{msg}");

        let size = png_splits("splits-size", &["cat"], &["cat"], 5);
        let msg = load_splits(Some(&size), None).unwrap_err().to_string();
        assert!(
            msg.contains("[1, 4, 4]") && msg.contains("[1, 5, 5]"),
            "{msg}"
        );

        let msg = load_splits(Some(&good), Some(0)).unwrap_err().to_string();
        assert!(msg.contains("--train-limit 0"), "{msg}");
    }
}
