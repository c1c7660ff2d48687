//! The SQL of `insert`, `upsert` and `delete` targets.
//!
//! The payload is one `jsonb` parameter; `jsonb_populate_record(NULL::table, $1)`
//! turns it into a row of the table, so PostgreSQL converts every field to
//! its column's type. Only columns named by the payload are written (the
//! others keep their defaults). Identifiers are always quoted, so names are
//! case-sensitive.

use std::collections::HashSet;

/// Which mutation a table target makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableOp {
    /// `INSERT` the payload's fields.
    Insert,
    /// `INSERT … ON CONFLICT (key) DO UPDATE` the payload's other fields.
    Upsert,
    /// `DELETE` the row whose key columns equal the payload's.
    Delete,
}

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A possibly schema-qualified table name (`schema.table`), each part quoted.
pub(crate) fn quote_table(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// Why a payload does not fit the table: a field that is not a column, or
/// a missing key column (upsert and delete).
pub(crate) fn check_fields<'a>(
    op: TableOp,
    table: &str,
    fields: impl IntoIterator<Item = &'a str> + Clone,
    columns: &HashSet<String>,
    key: &[String],
) -> Result<(), String> {
    let unknown: Vec<&str> = fields
        .clone()
        .into_iter()
        .filter(|f| !columns.contains(*f))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "payload field(s) {} are not columns of table `{table}`",
            unknown.join(", ")
        ));
    }
    if op != TableOp::Insert {
        let present: HashSet<&str> = fields.into_iter().collect();
        let missing: Vec<&str> = key
            .iter()
            .map(String::as_str)
            .filter(|k| !present.contains(k))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "payload lacks key column(s) {}",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

/// The statement for `op` on `table` (quoted) writing `fields` (checked
/// columns); `$1` is the payload as `jsonb`.
pub(crate) fn table_sql(op: TableOp, table: &str, fields: &[&str], key: &[String]) -> String {
    let row = format!("jsonb_populate_record(NULL::{table}, $1::jsonb)");
    let list = |cols: &[&str]| {
        cols.iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match op {
        TableOp::Insert | TableOp::Upsert if fields.is_empty() => {
            format!("INSERT INTO {table} DEFAULT VALUES")
        }
        TableOp::Insert => {
            let cols = list(fields);
            format!("INSERT INTO {table} ({cols}) SELECT {cols} FROM {row}")
        }
        TableOp::Upsert => {
            let cols = list(fields);
            let keys: Vec<&str> = key.iter().map(String::as_str).collect();
            let updates: Vec<String> = fields
                .iter()
                .filter(|f| !key.iter().any(|k| k == *f))
                .map(|f| format!("{c} = EXCLUDED.{c}", c = quote_ident(f)))
                .collect();
            let action = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM {row} ON CONFLICT ({}) {action}",
                list(&keys)
            )
        }
        TableOp::Delete => {
            let cond: Vec<String> = key
                .iter()
                .map(|k| format!("d.{c} = r.{c}", c = quote_ident(k)))
                .collect();
            format!(
                "DELETE FROM {table} AS d USING {row} AS r WHERE {}",
                cond.join(" AND ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a"), r#""a""#);
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_table("s.Orders"), r#""s"."Orders""#);
    }

    #[test]
    fn builds_statements() {
        let key = vec!["id".to_string()];
        let t = r#""t""#;
        let row = r#"jsonb_populate_record(NULL::"t", $1::jsonb)"#;
        assert_eq!(
            table_sql(TableOp::Insert, t, &["a", "id"], &key),
            format!(r#"INSERT INTO "t" ("a", "id") SELECT "a", "id" FROM {row}"#)
        );
        assert_eq!(
            table_sql(TableOp::Upsert, t, &["a", "id"], &key),
            format!(
                r#"INSERT INTO "t" ("a", "id") SELECT "a", "id" FROM {row} ON CONFLICT ("id") DO UPDATE SET "a" = EXCLUDED."a""#
            )
        );
        assert_eq!(
            table_sql(TableOp::Upsert, t, &["id"], &key),
            format!(
                r#"INSERT INTO "t" ("id") SELECT "id" FROM {row} ON CONFLICT ("id") DO NOTHING"#
            )
        );
        assert_eq!(
            table_sql(TableOp::Delete, t, &["a", "id"], &key),
            format!(r#"DELETE FROM "t" AS d USING {row} AS r WHERE d."id" = r."id""#)
        );
        assert_eq!(
            table_sql(TableOp::Insert, t, &[], &key),
            r#"INSERT INTO "t" DEFAULT VALUES"#
        );
    }

    #[test]
    fn checks_fields_against_columns_and_key() {
        let cols: HashSet<String> = ["id", "a"].iter().map(|s| s.to_string()).collect();
        let key = vec!["id".to_string()];
        assert!(check_fields(TableOp::Insert, "t", ["a"], &cols, &key).is_ok());
        assert!(check_fields(TableOp::Upsert, "t", ["a", "id"], &cols, &key).is_ok());
        let e = check_fields(TableOp::Insert, "t", ["a", "zz"], &cols, &key).unwrap_err();
        assert!(e.contains("zz") && e.contains("not columns"), "{e}");
        let e = check_fields(TableOp::Delete, "t", ["a"], &cols, &key).unwrap_err();
        assert!(e.contains("lacks key column(s) id"), "{e}");
    }
}
