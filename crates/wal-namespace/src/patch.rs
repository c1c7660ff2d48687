//! JSON Merge Patch (RFC 7396) of a namespace configuration: what
//! `PATCH /api/v1/namespaces/{name}` applies to the stored spec. A member
//! set to a value replaces it (objects merge member by member), a member
//! set to `null` removes it (the field takes its default), a member not
//! named is kept. (`PUT` replaces the whole configuration instead.)

use serde_json::Value;

/// Applies `patch` to `target` as RFC 7396 says.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let fields = target.as_object_mut().expect("made an object above");
    for (name, value) in changes {
        if value.is_null() {
            fields.remove(name);
        } else {
            merge_patch(fields.entry(name.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc_7396_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [{"b": "c"}]});
        merge_patch(&mut doc, &json!({"a": [1]}));
        assert_eq!(doc, json!({"a": [1]}));
        let mut doc = json!({"e": null});
        merge_patch(&mut doc, &json!({"a": 1}));
        assert_eq!(doc, json!({"e": null, "a": 1}));
        let mut doc = json!({"a": "foo"});
        merge_patch(&mut doc, &json!({"a": {"bb": {"ccc": null}}}));
        assert_eq!(doc, json!({"a": {"bb": {}}}));
    }
}
