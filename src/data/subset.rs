//! Class-balanced subsets, drawn reproducibly from a seed (how the shipped sample was made).

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::Dataset;
use crate::error::{Error, Result};

/// `per_class` images of every class, chosen at random with `seed`, kept in their original order.
pub fn balanced_subset(ds: &Dataset, per_class: usize, seed: u64) -> Result<Dataset> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut chosen = Vec::with_capacity(per_class * ds.classes());
    for class in 0..ds.classes() {
        let mut members: Vec<usize> = (0..ds.len())
            .filter(|&i| ds.labels()[i] as usize == class)
            .collect();
        if members.len() < per_class {
            return Err(Error::InvalidArgument(format!(
                "class {class} ({}) has {} images, fewer than the {per_class} asked for",
                ds.class_names()[class],
                members.len()
            )));
        }
        members.shuffle(&mut rng);
        chosen.extend_from_slice(&members[..per_class]);
    }
    chosen.sort_unstable();
    Ok(ds.select(&chosen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn subset_is_balanced_ordered_and_reproducible() {
        let labels: Vec<u32> = (0..60).map(|i| (i * 7 % 3) as u32).collect();
        let pixels: Vec<u8> = (0..60).map(|i| i as u8).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        let ds = Dataset::new(pixels, labels, [1, 1, 1], names, Path::new("synthetic")).unwrap();
        let s = balanced_subset(&ds, 5, 1).unwrap();
        assert_eq!(s.class_counts(), [5, 5, 5]);
        assert!(
            s.pixels().windows(2).all(|w| w[0] < w[1]),
            "original order is kept"
        );
        assert_eq!(s, balanced_subset(&ds, 5, 1).unwrap());
        assert_ne!(s, balanced_subset(&ds, 5, 2).unwrap());
        assert!(balanced_subset(&ds, 21, 1)
            .unwrap_err()
            .to_string()
            .contains("fewer than the 21"));
    }
}
