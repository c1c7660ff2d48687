//! Reading Redis replies.

use std::collections::BTreeMap;

use fred::types::Value;

/// Reads `[k, v, k, v, …]` (or a map) into name → value.
pub(crate) fn pairs(v: Value) -> BTreeMap<String, Value> {
    let flat = v.into_array();
    let mut out = BTreeMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let Some(k) = k.as_string() {
            out.insert(k, v);
        }
    }
    out
}
