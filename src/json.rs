//! Settings compared as JSON: what a refused folder (a sweep, a cached oracle) differs in.

use serde::Serialize;

/// The top-level fields in which `here` differs from `there`, as `field: A there, B here`,
/// joined by "; ".
pub fn differences<T: Serialize>(there: &T, here: &T) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(there), serde_json::to_value(here))
    else {
        return "unreadable".into();
    };
    let null = serde_json::Value::Null;
    b.iter()
        .filter(|(k, v)| a.get(*k).unwrap_or(&null) != *v)
        .map(|(k, v)| format!("{k}: {} there, {v} here", a.get(k).unwrap_or(&null)))
        .collect::<Vec<_>>()
        .join("; ")
}
