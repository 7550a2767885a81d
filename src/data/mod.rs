//! Layer 6: data sets, held in memory as u8 images (N x C x H x W) with class labels, each
//! loader validating what it reads: a bad file gives one error naming the file and the record.

pub mod cifar10;
pub mod detect;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod subset;
pub mod translate;

pub use detect::{load_dir, load_splits};

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::affine_sample::PackedImages;

/// Which half of a data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Images as u8 in NCHW order, one label per image.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u32>,
    /// (channels, height, width) of every image.
    shape: [usize; 3],
    class_names: Vec<String>,
}

impl Dataset {
    /// Checks that `images` holds whole images of `shape` and one label below the number of
    /// classes per image; `source` names where the data came from, for the error.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        shape: [usize; 3],
        class_names: Vec<String>,
        source: &Path,
    ) -> Result<Dataset> {
        let size: usize = shape.iter().product();
        let bad = |detail: String| {
            Err(Error::File {
                path: source.to_path_buf(),
                detail,
            })
        };
        if size == 0 {
            return bad(format!("images of shape {shape:?} are empty"));
        }
        if images.len() != labels.len() * size {
            return bad(format!(
                "{} labels but {} bytes of {shape:?} images ({} images)",
                labels.len(),
                images.len(),
                images.len() / size
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= class_names.len()) {
            return bad(format!(
                "record {i}: label {} is out of range (0..{})",
                labels[i],
                class_names.len()
            ));
        }
        Ok(Dataset {
            images,
            labels,
            shape,
            class_names,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// (channels, height, width).
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
    /// All pixels, NCHW.
    pub fn pixels(&self) -> &[u8] {
        &self.images
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let size: usize = self.shape.iter().product();
        &self.images[i * size..(i + 1) * size]
    }

    /// The first `limit` images (all when None or when there are fewer).
    pub fn first(self, limit: Option<usize>) -> Dataset {
        match limit {
            Some(n) if n < self.len() => self.select(&(0..n).collect::<Vec<_>>()),
            _ => self,
        }
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let images = indices
            .iter()
            .flat_map(|&i| self.image(i).iter().copied())
            .collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Dataset {
            images,
            labels,
            shape: self.shape,
            class_names: self.class_names.clone(),
        }
    }

    /// Uploads the images to the GPU as packed u8, where they stay for the whole run.
    pub fn upload(&self, gpu: &Gpu) -> Result<PackedImages> {
        let [c, h, w] = self.shape;
        PackedImages::upload(gpu, &self.images, [self.len(), c, h, w])
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Where Debian's package `dataset-fashion-mnist` puts the full Fashion-MNIST.
pub const DEBIAN_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The Fashion-MNIST sample that ships in `data/fashion-mnist` (see data/README.md).
pub fn shipped_sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("fashion-mnist")
}

#[cfg(test)]
pub(crate) mod test_dir {
    use std::path::PathBuf;

    /// A fresh empty directory under the system's temporary directory.
    pub fn fresh(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("taming-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_fashion_mnist_sample_loads_class_balanced() {
        let dir = shipped_sample_dir();
        let train = idx::load_fashion_mnist(&dir, Split::Train).unwrap();
        let test = idx::load_fashion_mnist(&dir, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (10_000, 2_000));
        assert_eq!(train.shape(), [1, 28, 28]);
        assert_eq!(train.class_counts(), [1000; 10]);
        assert_eq!(test.class_counts(), [200; 10]);
        assert!(
            dir.join("LICENSE").is_file(),
            "the data set's licence ships beside it"
        );
    }

    #[test]
    fn dataset_rejects_partial_images_and_labels_out_of_range() {
        let names = vec!["a".to_string(), "b".to_string()];
        let msg = Dataset::new(
            vec![0; 7],
            vec![0, 1],
            [1, 2, 2],
            names.clone(),
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("2 labels") && msg.contains("7 bytes"), "{msg}");
        let msg = Dataset::new(vec![0; 8], vec![0, 2], [1, 2, 2], names, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("record 1") && msg.contains("label 2"), "{msg}");
    }
}
