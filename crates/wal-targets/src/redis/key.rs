//! The key and the hash fields of a cache delivery.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::payload;

/// `prefix` + the payload's `key_field` (a string as is, a number as
/// written), or `prefix` + `message_id` when the payload has no such field
/// (or is not an object). Another type of key value is an error.
pub(crate) fn cache_key(
    prefix: &str,
    fields: Option<&BTreeMap<String, &RawValue>>,
    key_field: &str,
    message_id: &str,
) -> Result<String, String> {
    let Some(raw) = fields.and_then(|f| f.get(key_field)) else {
        return Ok(format!("{prefix}{message_id}"));
    };
    if let Some(s) = payload::as_str(raw) {
        return Ok(format!("{prefix}{s}"));
    }
    let text = raw.get();
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(format!("{prefix}{text}"));
    }
    Err(format!(
        "payload field `{key_field}` must be a string or a number to be a key"
    ))
}

/// The `HSET` field/value pairs of a payload object: strings as they are,
/// other values as their JSON text.
pub(crate) fn hash_fields(fields: &BTreeMap<String, &RawValue>) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| {
            let value = payload::as_str(v).unwrap_or_else(|| v.get().to_string());
            (k.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> (Box<RawValue>, String) {
        (RawValue::from_string(json.into()).unwrap(), json.into())
    }

    #[test]
    fn builds_keys() {
        let (p, _) = fields(r#"{"key": "u1", "id": 42, "big": 1.50, "bad": true, "obj": {}}"#);
        let f = payload::fields(&p).unwrap();
        let f = Some(&f);
        assert_eq!(cache_key("user:", f, "key", "M").unwrap(), "user:u1");
        assert_eq!(cache_key("user:", f, "id", "M").unwrap(), "user:42");
        assert_eq!(cache_key("", f, "big", "M").unwrap(), "1.50");
        assert_eq!(cache_key("p:", f, "missing", "M").unwrap(), "p:M");
        assert_eq!(cache_key("p:", None, "key", "M").unwrap(), "p:M");
        assert!(cache_key("p:", f, "bad", "M").is_err());
        assert!(cache_key("p:", f, "obj", "M").is_err());
    }

    #[test]
    fn hash_fields_keep_strings_and_encode_the_rest() {
        let (p, _) = fields(r#"{"name": "Ann \"A\"", "age": 41, "tags": ["a"], "x": null}"#);
        let f = payload::fields(&p).unwrap();
        assert_eq!(
            hash_fields(&f),
            vec![
                ("age".to_string(), "41".to_string()),
                ("name".to_string(), "Ann \"A\"".to_string()),
                ("tags".to_string(), r#"["a"]"#.to_string()),
                ("x".to_string(), "null".to_string()),
            ]
        );
    }
}
