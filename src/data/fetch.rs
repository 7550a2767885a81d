//! `taming data fetch cifar10 --to DIR`: downloads the official CIFAR-10 binary archive,
//! checks its published MD5 and extracts it. The download goes to a `.part` file and is
//! renamed only once complete and verified, so an interrupted fetch leaves nothing that looks
//! finished.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::data::{cifar10, Split};
use crate::error::{Error, Result};

/// The archive published by the data set's authors, and its MD5 from their page.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

fn file_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// The MD5 of a file, as lower-case hex.
pub fn md5_of(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks `archive` against `md5`, then extracts it (a .tar.gz) into `to`. Nothing is extracted
/// from an archive that fails the check.
pub fn install_archive(archive: &Path, md5: &str, to: &Path) -> Result<()> {
    let got = md5_of(archive)?;
    if got != md5 {
        return Err(file_error(
            archive,
            format!(
                "MD5 {got} does not match the published {md5}: the download is corrupt or \
                 incomplete; delete it and fetch again"
            ),
        ));
    }
    std::fs::create_dir_all(to).map_err(|e| file_error(to, format!("cannot create: {e}")))?;
    let f = File::open(archive).map_err(|e| file_error(archive, format!("cannot open: {e}")))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f)));
    // `unpack` refuses entries that would land outside `to`.
    tar.unpack(to).map_err(|e| {
        file_error(
            archive,
            format!("cannot extract into {}: {e}", to.display()),
        )
    })
}

/// Downloads `url` to `dest` through `dest.part`, printing progress every 10 %.
fn download(url: &str, dest: &Path) -> Result<()> {
    let part = dest.with_extension("part");
    let response = ureq::get(url).call().map_err(|e| {
        Error::Download(format!(
            "{url}: {e}. Without internet access, copy cifar-10-binary.tar.gz into the target \
             folder by hand and run the command again"
        ))
    })?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = response.into_body().into_reader();
    let mut out =
        File::create(&part).map_err(|e| file_error(&part, format!("cannot create: {e}")))?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut done, mut shown) = (0u64, 0u64);
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| file_error(&part, format!("download interrupted: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| file_error(&part, format!("cannot write: {e}")))?;
        done += n as u64;
        if let Some(t) = total {
            let tenth = done * 10 / t.max(1);
            if tenth > shown {
                shown = tenth;
                eprintln!("  {}% of {} MB", tenth * 10, t / 1_000_000);
            }
        }
    }
    out.sync_all()
        .map_err(|e| file_error(&part, format!("cannot write: {e}")))?;
    std::fs::rename(&part, dest).map_err(|e| file_error(dest, format!("cannot rename: {e}")))
}

/// CIFAR-10 in `to/cifar-10-batches-bin`: kept if already there and complete, otherwise the
/// archive is downloaded (or taken from `to` if a copy is already there), verified, extracted.
pub fn fetch_cifar10(to: &Path) -> Result<PathBuf> {
    let ready = |dir: &Path| {
        cifar10::cifar10_files(dir, Split::Train).is_ok()
            && cifar10::cifar10_files(dir, Split::Test).is_ok()
    };
    if ready(to) {
        println!("CIFAR-10 is already in {}", to.display());
        return Ok(to.to_path_buf());
    }
    std::fs::create_dir_all(to).map_err(|e| file_error(to, format!("cannot create: {e}")))?;
    let archive = to.join("cifar-10-binary.tar.gz");
    if !archive.is_file() {
        println!("downloading {CIFAR10_URL}");
        download(CIFAR10_URL, &archive)?;
    }
    install_archive(&archive, CIFAR10_MD5, to)?;
    if !ready(to) {
        return Err(file_error(
            to,
            "the archive was extracted but the CIFAR-10 batch files are not there",
        ));
    }
    println!("CIFAR-10 ready in {} (MD5 checked)", to.display());
    Ok(to.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_dir;

    /// A .tar.gz shaped like the real one: cifar-10-batches-bin/ with one record per batch file.
    fn fake_archive(dir: &Path) -> PathBuf {
        let path = dir.join("fake.tar.gz");
        let gz = flate2::write::GzEncoder::new(File::create(&path).unwrap(), Default::default());
        let mut tar = tar::Builder::new(gz);
        let names = (1..=5)
            .map(|i| format!("data_batch_{i}.bin"))
            .chain(["test_batch.bin".to_string()]);
        for (k, name) in names.enumerate() {
            let mut record = vec![(k % 10) as u8];
            record.extend((0..3072).map(|i| (i % 251) as u8));
            let mut header = tar::Header::new_gnu();
            header.set_size(record.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("cifar-10-batches-bin/{name}"),
                &record[..],
            )
            .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn a_verified_archive_extracts_into_a_loadable_data_set() {
        let dir = test_dir::fresh("fetch-ok");
        let archive = fake_archive(&dir);
        let md5 = md5_of(&archive).unwrap();
        assert_eq!(md5.len(), 32);
        let to = dir.join("cifar");
        install_archive(&archive, &md5, &to).unwrap();
        let train = cifar10::load_cifar10(&to, Split::Train).unwrap();
        let test = cifar10::load_cifar10(&to, Split::Test).unwrap();
        assert_eq!((train.len(), test.len()), (5, 1));
        assert_eq!(train.labels(), [0, 1, 2, 3, 4]);
        assert_eq!(test.image(0)[..3], [0, 1, 2]);
        // Already complete: fetch keeps it without touching the network.
        assert_eq!(fetch_cifar10(&to).unwrap(), to);
    }

    #[test]
    fn a_corrupt_archive_is_refused_before_extraction() {
        let dir = test_dir::fresh("fetch-bad");
        let archive = fake_archive(&dir);
        let to = dir.join("cifar");
        let msg = install_archive(&archive, CIFAR10_MD5, &to)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("does not match the published"), "{msg}");
        assert!(!to.exists(), "nothing extracted from a corrupt archive");
        // The known MD5 of a known input, so the digest itself is right.
        let abc = dir.join("abc");
        std::fs::write(&abc, b"abc").unwrap();
        assert_eq!(md5_of(&abc).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    }
}
