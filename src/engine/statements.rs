//! Presto's metadata statements, as queries over the catalogs' `information_schema`:
//! `SHOW CATALOGS`, `SHOW SCHEMAS [FROM c]`, `SHOW TABLES [FROM [c.]s]`, `SHOW COLUMNS FROM t`
//! and `DESCRIBE t`, each with an optional `LIKE 'pattern'`, and `SHOW SESSION`. The result
//! columns carry Presto's names (`Catalog`, `Schema`, `Table`, `Column`, `Type`, …). Anything
//! else is passed through unchanged.

use crate::protocol::errors::SYNTAX_ERROR;
use crate::protocol::QueryFailure;

pub fn rewrite(sql: &str, catalog: Option<&str>, schema: Option<&str>, catalogs: &[&str]) -> Result<String, QueryFailure> {
    let words: Vec<&str> = sql.trim().trim_end_matches(';').split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|word| word.to_ascii_uppercase()).collect();
    let keywords: Vec<&str> = upper.iter().map(String::as_str).collect();
    let session_catalog = || catalog.ok_or_else(|| missing("Catalog must be specified when session catalog is not set"));
    let session_schema = || schema.ok_or_else(|| missing("Schema must be specified when session schema is not set"));
    Ok(match keywords.as_slice() {
        ["SHOW", "CATALOGS", rest @ ..] => {
            let like = like(rest, &words[2..], "\"Catalog\"")?;
            let rows: Vec<String> = catalogs.iter().map(|name| format!("({})", literal(name))).collect();
            format!("SELECT \"Catalog\" FROM (VALUES {}) AS catalogs(\"Catalog\"){like} ORDER BY 1", rows.join(", "))
        }
        ["SHOW", "SCHEMAS", rest @ ..] => {
            let (target, rest_words) = from_clause(rest, &words[2..]);
            let catalog = match target {
                Some(name) => name,
                None => session_catalog()?.to_string(),
            };
            let like = like(&rest[rest.len() - rest_words.len()..], rest_words, "schema_name")?;
            format!(
                "SELECT schema_name AS \"Schema\" FROM {}.information_schema.schemata WHERE catalog_name = {}{} ORDER BY 1",
                quote(&catalog),
                literal(&catalog),
                like.replace(" WHERE ", " AND ")
            )
        }
        ["SHOW", "TABLES", rest @ ..] => {
            let (target, rest_words) = from_clause(rest, &words[2..]);
            let (catalog, schema) = match target.as_deref().map(|name| name.split('.').collect::<Vec<_>>()).as_deref() {
                Some([catalog, schema]) => (catalog.to_string(), schema.to_string()),
                Some([schema]) => (session_catalog()?.to_string(), schema.to_string()),
                Some(_) => return Err(missing("SHOW TABLES FROM takes a schema name, optionally qualified by its catalog")),
                None => (session_catalog()?.to_string(), session_schema()?.to_string()),
            };
            let like = like(&rest[rest.len() - rest_words.len()..], rest_words, "table_name")?;
            format!(
                "SELECT table_name AS \"Table\" FROM {}.information_schema.tables WHERE table_catalog = {} AND table_schema = {}{} ORDER BY 1",
                quote(&catalog),
                literal(&catalog),
                literal(&schema),
                like.replace(" WHERE ", " AND ")
            )
        }
        ["SHOW", "COLUMNS", "FROM" | "IN", _] | ["DESCRIBE" | "DESC", _] => {
            let name = words.last().copied().unwrap_or_default();
            let parts: Vec<String> = identifier(name).split('.').map(str::to_string).collect();
            let (catalog, schema, table) = match parts.as_slice() {
                [catalog, schema, table] => (catalog.clone(), schema.clone(), table.clone()),
                [schema, table] => (session_catalog()?.to_string(), schema.clone(), table.clone()),
                [table] => (session_catalog()?.to_string(), session_schema()?.to_string(), table.clone()),
                _ => return Err(missing("a table name has at most three parts")),
            };
            format!(
                "SELECT column_name AS \"Column\", data_type AS \"Type\", '' AS \"Extra\", '' AS \"Comment\" \
                 FROM {}.information_schema.columns WHERE table_catalog = {} AND table_schema = {} AND table_name = {} \
                 ORDER BY ordinal_position",
                quote(&catalog),
                literal(&catalog),
                literal(&schema),
                literal(&table)
            )
        }
        ["SHOW", "SESSION", ..] => "SELECT CAST(NULL AS VARCHAR) AS \"Name\", CAST(NULL AS VARCHAR) AS \"Value\", \
                                    CAST(NULL AS VARCHAR) AS \"Default\", CAST(NULL AS VARCHAR) AS \"Type\", \
                                    CAST(NULL AS VARCHAR) AS \"Description\" WHERE false"
            .to_string(),
        _ => sql.to_string(),
    })
}

fn missing(message: &str) -> QueryFailure {
    QueryFailure::new(SYNTAX_ERROR, message)
}

/// `FROM name` / `IN name` at the start of `keywords`: the name and the words after it.
fn from_clause<'a>(keywords: &[&str], words: &'a [&'a str]) -> (Option<String>, &'a [&'a str]) {
    match keywords {
        ["FROM" | "IN", _, ..] => (Some(identifier(words[1])), &words[2..]),
        _ => (None, words),
    }
}

/// A (possibly dotted) name as written: quoted parts kept, unquoted ones lower-cased.
fn identifier(word: &str) -> String {
    word.split('.')
        .map(|part| if part.starts_with('"') { part.trim_matches('"').to_string() } else { part.to_ascii_lowercase() })
        .collect::<Vec<_>>()
        .join(".")
}

/// ` WHERE column LIKE 'p'` for a trailing `LIKE 'p'`, or nothing.
fn like(keywords: &[&str], words: &[&str], column: &str) -> Result<String, QueryFailure> {
    match keywords {
        [] => Ok(String::new()),
        ["LIKE", ..] if words.len() >= 2 => {
            let pattern = words[1..].join(" ");
            if pattern.len() >= 2 && pattern.starts_with('\'') && pattern.ends_with('\'') {
                Ok(format!(" WHERE {column} LIKE {pattern}"))
            } else {
                Err(missing("LIKE takes a quoted pattern"))
            }
        }
        _ => Err(missing(&format!("unexpected '{}'", words.join(" ")))),
    }
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_statements_become_information_schema_queries() {
        let show = rewrite("SHOW CATALOGS LIKE 't%'", None, None, &["system", "tpch"]).unwrap();
        assert!(show.contains("VALUES ('system'), ('tpch')") && show.contains("LIKE 't%'"), "{show}");
        let schemas = rewrite("show schemas from tpch like 'sf%'", None, None, &[]).unwrap();
        assert!(schemas.contains("catalog_name = 'tpch'") && schemas.contains("AND schema_name LIKE 'sf%'"), "{schemas}");
        let tables = rewrite("SHOW TABLES", Some("tpch"), Some("tiny"), &[]).unwrap();
        assert!(tables.contains("table_schema = 'tiny'"), "{tables}");
        assert_eq!(rewrite("SHOW TABLES", None, None, &[]).unwrap_err().code.name, "SYNTAX_ERROR");
        let describe = rewrite("DESCRIBE tpch.tiny.nation", None, None, &[]).unwrap();
        assert!(describe.contains("table_name = 'nation'"), "{describe}");
        assert_eq!(rewrite("SELECT 1", None, None, &[]).unwrap(), "SELECT 1");
    }
}
