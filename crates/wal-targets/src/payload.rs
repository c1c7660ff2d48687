//! Reading a payload's top-level fields without losing their exact text.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// The payload's top-level fields, each with its JSON text as written (a
/// repeated field keeps its last value), or why the payload is not an object.
pub(crate) fn fields(payload: &RawValue) -> Result<BTreeMap<String, &RawValue>, String> {
    if !payload.get().trim_start().starts_with('{') {
        return Err("the payload is not a JSON object".into());
    }
    serde_json::from_str(payload.get()).map_err(|e| format!("unreadable payload: {e}"))
}

/// The value of a JSON string, or `None` when `raw` is not a string.
pub(crate) fn as_str(raw: &RawValue) -> Option<String> {
    if raw.get().starts_with('"') {
        serde_json::from_str(raw.get()).ok()
    } else {
        None
    }
}

/// Whether `raw` is `null`.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn keeps_field_text() {
        let p = raw(r#" {"b": 1.000000000000000001, "a": "x\"y", "c": null, "a": "z"}"#);
        let f = fields(&p).unwrap();
        assert_eq!(f["b"].get(), "1.000000000000000001");
        assert_eq!(as_str(f["a"]).unwrap(), "z");
        assert!(is_null(f["c"]));
        assert!(as_str(f["b"]).is_none());
        assert!(fields(&raw("[1]")).is_err());
        assert!(fields(&raw("1")).is_err());
    }
}
