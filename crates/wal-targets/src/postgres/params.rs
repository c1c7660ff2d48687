//! Named parameters of `statement` targets and how payload values are sent.
//!
//! `:name` (ASCII letters, digits, `_`, not starting with a digit) outside
//! string literals, quoted identifiers, dollar-quoted strings and comments is
//! a parameter; `::type` casts are left alone. Each distinct name becomes
//! `$n`, in order of first appearance, so a name may be used several times.
//!
//! Every value is sent in PostgreSQL's **text format** and parsed by the
//! server as the type it inferred for the parameter: any type with a text
//! form works (integers, floats, numeric without losing digits, text,
//! bool, json/jsonb, uuid, timestamptz, dates, enums, …). A JSON string is
//! sent unquoted, `null` as NULL, a JSON array to an array parameter as an
//! array literal, and anything to a json/jsonb parameter as its JSON text.
//! A value the type cannot parse is a SQL error (22P02, permanent). Where
//! PostgreSQL cannot infer a type, add a cast: `:at::timestamptz`.

use std::error::Error;

use bytes::BytesMut;
use serde_json::value::RawValue;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, Kind, ToSql, Type};

use crate::payload;

/// A statement with `:name` parameters rewritten to `$n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedStatement {
    /// The SQL with `$1`, `$2`, ….
    pub sql: String,
    /// The name of `$n` at index `n - 1`.
    pub names: Vec<String>,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// End (exclusive) of the token that starts at `i` and must be copied
/// verbatim (literal, quoted identifier, comment), or `None` if none starts there.
fn skip_verbatim(s: &[u8], i: usize) -> Option<usize> {
    let at = |k: usize| s.get(k).copied();
    match s[i] {
        b'\'' => {
            let escapes =
                i > 0 && matches!(s[i - 1], b'e' | b'E') && (i < 2 || !ident_char(s[i - 2]));
            let mut k = i + 1;
            while k < s.len() {
                match s[k] {
                    b'\\' if escapes => k += 2,
                    b'\'' if at(k + 1) == Some(b'\'') => k += 2,
                    b'\'' => return Some(k + 1),
                    _ => k += 1,
                }
            }
            Some(s.len())
        }
        b'"' => Some(
            s[i + 1..]
                .iter()
                .position(|&b| b == b'"')
                .map_or(s.len(), |p| i + 2 + p),
        ),
        b'-' if at(i + 1) == Some(b'-') => Some(
            s[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(s.len(), |p| i + p + 1),
        ),
        b'/' if at(i + 1) == Some(b'*') => {
            let (mut depth, mut k) = (1, i + 2);
            while k < s.len() && depth > 0 {
                if s[k] == b'/' && at(k + 1) == Some(b'*') {
                    depth += 1;
                    k += 2;
                } else if s[k] == b'*' && at(k + 1) == Some(b'/') {
                    depth -= 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
            Some(k)
        }
        b'$' if i == 0 || !ident_char(s[i - 1]) => {
            // `$tag$ … $tag$` (tag empty or an identifier); `$1` is a parameter.
            let tag_end = i + 1 + s[i + 1..].iter().position(|&b| !ident_char(b))?;
            let tag_ok = tag_end == i + 1 || ident_start(s[i + 1]);
            if !tag_ok || s[tag_end] != b'$' {
                return None;
            }
            let delim = &s[i..=tag_end];
            let body = tag_end + 1;
            Some(
                s[body..]
                    .windows(delim.len())
                    .position(|w| w == delim)
                    .map_or(s.len(), |p| body + p + delim.len()),
            )
        }
        _ => None,
    }
}

/// Rewrites `:name` parameters to `$n` (see the module documentation).
pub(crate) fn rewrite_named(sql: &str) -> NamedStatement {
    let s = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut names: Vec<String> = Vec::new();
    let (mut i, mut copied) = (0, 0);
    while i < s.len() {
        if let Some(end) = skip_verbatim(s, i) {
            i = end;
            continue;
        }
        if s[i] == b':' {
            if s.get(i + 1) == Some(&b':') {
                i += 2;
                continue;
            }
            if s.get(i + 1).copied().is_some_and(ident_start) {
                let start = i + 1;
                let end = start + s[start..].iter().take_while(|&&b| ident_char(b)).count();
                let name = &sql[start..end];
                let n = match names.iter().position(|x| x == name) {
                    Some(p) => p + 1,
                    None => {
                        names.push(name.to_string());
                        names.len()
                    }
                };
                out.push_str(&sql[copied..i]);
                out.push_str(&format!("${n}"));
                i = end;
                copied = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    NamedStatement { sql: out, names }
}

/// A parameter sent in text format, parsed by PostgreSQL as whatever type
/// it inferred; `None` is NULL.
#[derive(Debug)]
pub(crate) struct TextParam(pub Option<String>);

impl ToSql for TextParam {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

fn is_json(ty: &Type) -> bool {
    *ty == Type::JSON || *ty == Type::JSONB
}

fn is_integer(ty: &Type) -> bool {
    *ty == Type::INT2 || *ty == Type::INT4 || *ty == Type::INT8
}

/// The text form of a JSON value for a parameter of type `ty`.
pub(crate) fn to_text(raw: &RawValue, ty: &Type) -> Result<TextParam, String> {
    if payload::is_null(raw) {
        return Ok(TextParam(None));
    }
    let text = raw.get();
    if is_json(ty) {
        return Ok(TextParam(Some(text.to_string())));
    }
    if let Some(s) = payload::as_str(raw) {
        return Ok(TextParam(Some(s)));
    }
    if let (Kind::Array(elem), true) = (ty.kind(), text.starts_with('[')) {
        return array_literal(raw, elem).map(|a| TextParam(Some(a)));
    }
    if is_integer(ty) {
        // `3.0` or `1e3` for an integer column: send the integer.
        if let Ok(f) = text.parse::<f64>() {
            if text.contains(['.', 'e', 'E']) && f.fract() == 0.0 && f.abs() < 9.0e15 {
                return Ok(TextParam(Some(format!("{}", f as i64))));
            }
        }
    }
    Ok(TextParam(Some(text.to_string())))
}

/// A PostgreSQL array literal (`{"a","b",NULL}`) of a JSON array.
fn array_literal(raw: &RawValue, elem: &Type) -> Result<String, String> {
    let items: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| format!("unreadable array: {e}"))?;
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = item.get();
        if payload::is_null(item) {
            out.push_str("NULL");
        } else if text.starts_with('[') && !is_json(elem) {
            out.push_str(&array_literal(item, elem)?);
        } else {
            let value = match (is_json(elem), payload::as_str(item)) {
                (false, Some(s)) => s,
                _ => text.to_string(),
            };
            out.push('"');
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(sql: &str) -> (String, Vec<String>) {
        let n = rewrite_named(sql);
        (n.sql, n.names)
    }

    #[test]
    fn rewrites_names_in_order_and_reuses_numbers() {
        let (sql, names) = rw("UPDATE t SET a = :a, b = :b_2 WHERE id = :id AND a <> :a");
        assert_eq!(sql, "UPDATE t SET a = $1, b = $2 WHERE id = $3 AND a <> $1");
        assert_eq!(names, ["a", "b_2", "id"]);
    }

    #[test]
    fn leaves_casts_literals_comments_and_dollar_quotes_alone() {
        let (sql, names) = rw(
            "SELECT :x::int, 'it''s :no', E'\\' :no', \"col:no\", $$ :no $$, $t$ :no $t$, \
             x::text -- :no\n, /* :no /* :no */ */ :y, $1, arr[1:2], f(a := 1)",
        );
        assert_eq!(
            sql,
            "SELECT $1::int, 'it''s :no', E'\\' :no', \"col:no\", $$ :no $$, $t$ :no $t$, \
             x::text -- :no\n, /* :no /* :no */ */ $2, $1, arr[1:2], f(a := 1)"
        );
        assert_eq!(names, ["x", "y"]);
    }

    #[test]
    fn no_names_and_unterminated_tokens() {
        assert_eq!(rw("SELECT 1").1, Vec::<String>::new());
        assert_eq!(rw("SELECT ':a").0, "SELECT ':a");
        assert_eq!(rw("SELECT :").0, "SELECT :");
        assert_eq!(rw("SELECT $$ :a").0, "SELECT $$ :a");
        assert_eq!(rw(":a").0, "$1");
    }

    fn text(json: &str, ty: &Type) -> Option<String> {
        to_text(&RawValue::from_string(json.into()).unwrap(), ty)
            .unwrap()
            .0
    }

    #[test]
    fn converts_json_values_to_text_forms() {
        assert_eq!(text("null", &Type::INT4), None);
        assert_eq!(text("42", &Type::INT8).as_deref(), Some("42"));
        assert_eq!(text("42.0", &Type::INT4).as_deref(), Some("42"));
        assert_eq!(text("1e3", &Type::INT2).as_deref(), Some("1000"));
        assert_eq!(text("42.5", &Type::INT4).as_deref(), Some("42.5"));
        assert_eq!(
            text("1.000000000000000001", &Type::NUMERIC).as_deref(),
            Some("1.000000000000000001")
        );
        assert_eq!(text(r#""a\"b""#, &Type::TEXT).as_deref(), Some("a\"b"));
        assert_eq!(text(r#""a""#, &Type::JSONB).as_deref(), Some(r#""a""#));
        assert_eq!(
            text(r#"{"a":1}"#, &Type::JSON).as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(text("true", &Type::BOOL).as_deref(), Some("true"));
        assert_eq!(
            text(r#"[1, null, [2]]"#, &Type::INT4_ARRAY).as_deref(),
            Some(r#"{"1",NULL,{"2"}}"#)
        );
        assert_eq!(
            text(r#"["a\"b", "c\\d"]"#, &Type::TEXT_ARRAY).as_deref(),
            Some(r#"{"a\"b","c\\d"}"#)
        );
        assert_eq!(
            text(r#"[{"a": 1}]"#, &Type::JSONB_ARRAY).as_deref(),
            Some(r#"{"{\"a\": 1}"}"#)
        );
    }
}
