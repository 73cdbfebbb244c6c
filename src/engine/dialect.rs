//! Where Presto's SQL means something other than DataFusion's for the same text, the statement
//! is rewritten before DataFusion plans it:
//! - `extract(field FROM x)` is a `bigint` in Presto (DataFusion: a 32-bit integer);
//!
//! (Decimal literals are the session setting `parse_float_as_decimal`, in `engine/mod.rs`.)

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{visit_expressions_mut, CastKind, DataType, Expr, Statement};

pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if matches!(expr, Expr::Extract { .. }) {
            let extract = std::mem::replace(expr, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
            *expr = Expr::Cast { kind: CastKind::Cast, expr: Box::new(extract), data_type: DataType::BigInt(None), array: false, format: None };
        }
        ControlFlow::<()>::Continue(())
    });
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
}
