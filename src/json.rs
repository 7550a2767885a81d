//! JSON helpers shared by every file the project writes: serialising with one error, and
//! settings compared field by field (what a refused folder, a sweep, a cached oracle or a
//! checkpoint to resume, differs in).

use serde::Serialize;

use crate::error::{Error, Result};

/// `value` as indented JSON bytes, for a file.
pub fn to_pretty_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise to JSON: {e}")))
}

/// `value` as one line of JSON, for a checkpoint's metadata.
pub fn to_line<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialise to JSON: {e}")))
}

/// The top-level fields in which `here` differs from `there`, as `field: A there, B here`,
/// joined by "; ".
pub fn differences<T: Serialize>(there: &T, here: &T) -> String {
    differences_as(there, here, "there", "here").join("; ")
}

/// The top-level fields in which `here` differs from `there`, one `field: A <there_is>, B
/// <here_is>` each (e.g. "in the checkpoint" and "now").
pub fn differences_as<T: Serialize>(
    there: &T,
    here: &T,
    there_is: &str,
    here_is: &str,
) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(there), serde_json::to_value(here))
    else {
        return vec!["(unreadable)".into()];
    };
    let null = serde_json::Value::Null;
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} {there_is}, {} {here_is}",
                a.get(k).unwrap_or(&null),
                b.get(k).unwrap_or(&null)
            )
        })
        .collect()
}
