//! Files in and out, shared by every layer that reads or writes one: whole-file reads whose
//! error names the file, and atomic writes (a unique temporary file in the target's folder,
//! flushed to disk, then renamed over the target), so that a reader or a killed process never
//! sees half a file under its final name.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads a whole file, with an error that names it.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::File {
        path: path.to_path_buf(),
        detail: format!("cannot read: {e}"),
    })
}

/// `rows` as CSV text under a header of the row type's field names (from a default row, so
/// that a file with no rows still has its header), values quoted and escaped where they need it.
pub fn csv_text<R: serde::Serialize + Default>(rows: &[R]) -> Result<String> {
    let fail = |e: csv::Error| Error::InvalidArgument(format!("cannot write CSV: {e}"));
    let text = |w: csv::Writer<Vec<u8>>| -> Result<String> {
        let bytes = w.into_inner().map_err(|e| fail(e.into_error().into()))?;
        String::from_utf8(bytes)
            .map_err(|e| Error::InvalidArgument(format!("CSV is not UTF-8: {e}")))
    };
    if rows.is_empty() {
        let mut header = csv::Writer::from_writer(Vec::new());
        header.serialize(R::default()).map_err(fail)?;
        let header = text(header)?;
        return Ok(header.lines().next().unwrap_or_default().to_string() + "\n");
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(fail)?;
    }
    text(w)
}

/// Refuses, before any work is done, an output folder that cannot become one: a path that is
/// a file, or that lies under a file.
pub fn check_output_folder(dir: &Path) -> Result<()> {
    let file_in_the_way = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| a.exists())
        .filter(|a| !a.is_dir());
    match file_in_the_way {
        Some(file) => Err(Error::File {
            path: file.to_path_buf(),
            detail: format!(
                "is a file, so {} cannot be an output folder; name a folder (it is created if \
                 missing)",
                dir.display()
            ),
        }),
        None => Ok(()),
    }
}

/// Creates the output folder `dir` and its parents, after [`check_output_folder`].
pub fn create_output_folder(dir: &Path) -> Result<()> {
    check_output_folder(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::File {
        path: dir.to_path_buf(),
        detail: format!("cannot create the output folder: {e}"),
    })
}

/// Refuses, before any work is done, an output file that could not be written at the end: its
/// folder missing, or a folder in its place.
pub fn check_output_file(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail = |detail: String| {
        Err(Error::File {
            path: path.to_path_buf(),
            detail,
        })
    };
    if path.is_dir() {
        return fail("is a folder; name a file".into());
    }
    if !dir.is_dir() {
        return fail(format!(
            "cannot be written: its folder {} does not exist; create it first",
            dir.display()
        ));
    }
    Ok(())
}

/// The suffix of a temporary file: `NAME.tmp` and six random characters.
const TEMPORARY: &str = ".tmp";
const RANDOM_CHARS: usize = 6;

/// Writes `bytes` to `path` through a temporary file `NAME.tmpXXXXXX` in the same folder (its
/// name unique among writers of any file, in any process), flushed to disk before it is
/// renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| Error::File {
        path: path.to_path_buf(),
        detail: format!("cannot write: {e}"),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut prefix = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(TEMPORARY);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(RANDOM_CHARS)
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    pause_before_rename();
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// `TAMING_WRITE_DELAY_MS=N` holds every atomic write for N ms between its complete temporary
/// file and the rename: the kill test (kernels-tests/kill_resume.rs) uses it so that its
/// random kills land inside writes too. Unset, it costs nothing.
fn pause_before_rename() {
    static DELAY: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| std::env::var("TAMING_WRITE_DELAY_MS").ok()?.parse().ok());
    if let Some(ms) = delay {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}

/// Removes the temporary files that writes of `names` in `dir` left when their process was
/// killed. Only for folders that one process owns at a time (a run's folder), never for one
/// that shards share.
pub fn remove_stale_temporaries(dir: &Path, names: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let stale = names.iter().any(|n| {
            file.strip_prefix(n)
                .and_then(|rest| rest.strip_prefix(TEMPORARY))
                .is_some_and(|tail| tail.chars().count() == RANDOM_CHARS)
        });
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_dir;

    /// A file's content for write `k` of writer `w`: its length and a checksum in the first
    /// line, so that a reader can tell a whole file from a part of one.
    fn content(w: usize, k: usize) -> Vec<u8> {
        let body: Vec<u8> = (0..20_000 + 37 * k)
            .map(|i| (i * (w + 3) + k) as u8)
            .collect();
        let sum: u64 = body.iter().map(|&b| b as u64).sum();
        let mut out = format!("{} {sum}\n", body.len()).into_bytes();
        out.extend(body);
        out
    }

    fn whole(bytes: &[u8]) -> bool {
        let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
            return false;
        };
        let head = String::from_utf8_lossy(&bytes[..nl]).into_owned();
        let body = &bytes[nl + 1..];
        let sum: u64 = body.iter().map(|&b| b as u64).sum();
        head == format!("{} {sum}", body.len())
    }

    #[test]
    fn two_writers_of_different_files_in_one_folder_never_show_a_partial_file() {
        let dir = test_dir::fresh("io-concurrent");
        let names = ["results.json", "results.csv"];
        let writers: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(w, name)| {
                let path = dir.join(name);
                std::thread::spawn(move || {
                    for k in 0..150 {
                        write_atomically(&path, &content(w, k)).unwrap();
                    }
                })
            })
            .collect();
        let mut reads = 0;
        while writers.iter().any(|t| !t.is_finished()) {
            for name in names {
                if let Ok(bytes) = std::fs::read(dir.join(name)) {
                    assert!(whole(&bytes), "{name}: a partial file under its final name");
                    reads += 1;
                }
            }
        }
        for t in writers {
            t.join().unwrap();
        }
        for (w, name) in names.iter().enumerate() {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), content(w, 149));
        }
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !names.contains(&n.as_str()))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        assert!(reads > 0);
    }

    #[test]
    fn csv_has_the_row_fields_as_header_even_with_no_rows_and_escapes_values() {
        #[derive(serde::Serialize, Default)]
        struct Row {
            id: &'static str,
            note: String,
        }
        assert_eq!(csv_text::<Row>(&[]).unwrap(), "id,note\n");
        let rows = [Row {
            id: "a",
            note: "x, \"y\"".into(),
        }];
        assert_eq!(csv_text(&rows).unwrap(), "id,note\na,\"x, \"\"y\"\"\"\n");
    }

    #[test]
    fn stale_temporaries_of_the_named_files_are_removed_and_nothing_else() {
        let dir = test_dir::fresh("io-stale");
        for name in [
            "checkpoint.json",
            "checkpoint.json.tmpAb12Cd",
            "checkpoint.json.tmpx",
            "notes.txt.tmpAb12Cd",
        ] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        remove_stale_temporaries(&dir, &["checkpoint.json"]);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "checkpoint.json",
                "checkpoint.json.tmpx",
                "notes.txt.tmpAb12Cd"
            ]
        );
    }
}
