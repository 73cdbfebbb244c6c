//! Where Presto's SQL means something other than DataFusion's for the same text, the statement
//! is rewritten before DataFusion plans it:
//! - `extract(field FROM x)` is a `bigint` in Presto (DataFusion: a 32-bit integer);
//! - Presto's functions DataFusion lacks, written in what it has: `if(c, a[, b])` as `CASE`,
//!   `count_if(c)` as a count of `CASE WHEN c THEN 1 END`, `arbitrary(x)` as `min(x)` (any value
//!   of the group will do, and this one is deterministic).
//!
//! (Decimal literals are the session setting `parse_float_as_decimal`, in `engine/mod.rs`.)

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if matches!(expr, Expr::Extract { .. }) {
            let extract = std::mem::replace(expr, Expr::value(Value::Null));
            *expr = Expr::Cast { kind: CastKind::Cast, expr: Box::new(extract), data_type: DataType::BigInt(None), array: false, format: None };
        } else if let Some(replacement) = presto_function(expr) {
            *expr = replacement;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `expr` as DataFusion can run it, when it is a call of one of Presto's functions it lacks.
fn presto_function(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    if function.over.is_some() || function.filter.is_some() {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else { return None };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let args: Vec<Expr> = list
        .args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let template = match (function.name.to_string().to_ascii_lowercase().as_str(), args.len()) {
        ("if", 2) => "CASE WHEN fireball_arg0 THEN fireball_arg1 END",
        ("if", 3) => "CASE WHEN fireball_arg0 THEN fireball_arg1 ELSE fireball_arg2 END",
        ("count_if", 1) => "count(CASE WHEN fireball_arg0 THEN 1 END)",
        ("arbitrary", 1) => "min(fireball_arg0)",
        _ => return None,
    };
    let mut replacement = Parser::new(&GenericDialect {}).try_with_sql(template).ok()?.parse_expr().ok()?;
    let _ = visit_expressions_mut(&mut replacement, |node| {
        let Expr::Identifier(ident) = node else { return ControlFlow::<()>::Continue(()) };
        if let Some(arg) = ident.value.strip_prefix("fireball_arg").and_then(|index| index.parse::<usize>().ok()).and_then(|index| args.get(index)) {
            *node = Expr::Nested(Box::new(arg.clone()));
        }
        ControlFlow::Continue(())
    });
    Some(replacement)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    #[test]
    fn extract_is_a_bigint() {
        let mut statements = Parser::parse_sql(&GenericDialect {}, "SELECT extract(year FROM d) AS y FROM t").unwrap();
        rewrite(&mut statements[0]);
        assert_eq!(statements[0].to_string(), "SELECT CAST(EXTRACT(YEAR FROM d) AS BIGINT) AS y FROM t");
    }

    #[test]
    fn prestos_functions_become_datafusions() {
        let mut statements =
            Parser::parse_sql(&GenericDialect {}, "SELECT if(a > 1, 'x'), IF(b, 1, 2), count_if(c = 3), arbitrary(d) FROM t").unwrap();
        rewrite(&mut statements[0]);
        assert_eq!(
            statements[0].to_string(),
            "SELECT CASE WHEN (a > 1) THEN ('x') END, CASE WHEN (b) THEN (1) ELSE (2) END, \
             count(CASE WHEN (c = 3) THEN 1 END), min((d)) FROM t"
        );
    }
}
