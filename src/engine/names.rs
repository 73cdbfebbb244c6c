//! Result column names as Presto gives them: an alias, else a column reference's own name
//! (`s.name` is `name`), else `_colN` for the N-th item. DataFusion names expressions by their
//! text (`sum(lineitem.quantity)`), which clients and BI tools would show as headers.

use datafusion::sql::sqlparser::ast::{Expr, Query, SelectItem, SetExpr, Statement};

/// The names of a query's result columns; `None` when the statement is not a plain query, or
/// its select list has a wildcard (whose columns keep their own names).
pub fn output_names(statement: &Statement) -> Option<Vec<String>> {
    let Statement::Query(query) = statement else { return None };
    select_names(query)
}

fn select_names(query: &Query) -> Option<Vec<String>> {
    let mut body = query.body.as_ref();
    // A set operation is named by its first branch, as in Presto.
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(inner) => return select_names(inner),
            SetExpr::Select(select) => {
                return select
                    .projection
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(normalize(&alias.value, alias.quote_style.is_some())),
                        SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Some(normalize(&ident.value, ident.quote_style.is_some())),
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                            parts.last().map(|ident| normalize(&ident.value, ident.quote_style.is_some()))
                        }
                        SelectItem::UnnamedExpr(_) => Some(format!("_col{index}")),
                        _ => None,
                    })
                    .collect();
            }
            _ => return None,
        }
    }
}

/// Unquoted identifiers are case-insensitive: Presto shows them in lower case.
fn normalize(name: &str, quoted: bool) -> String {
    if quoted {
        name.to_string()
    } else {
        name.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> Option<Vec<String>> {
        output_names(&Parser::parse_sql(&GenericDialect {}, sql).unwrap()[0])
    }

    #[test]
    fn expressions_get_positional_names_and_references_their_own() {
        assert_eq!(names("SELECT s.Name, count(*), sum(x) AS Total, \"Mixed\" FROM t").unwrap(), ["name", "_col1", "total", "Mixed"]);
        assert_eq!(names("SELECT a FROM t UNION ALL SELECT b FROM u").unwrap(), ["a"]);
        assert_eq!(names("SELECT * FROM t"), None);
        assert_eq!(names("SHOW TABLES"), None);
    }
}
