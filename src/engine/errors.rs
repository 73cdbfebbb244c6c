//! DataFusion's errors in Presto's words. Presto reports what analysis finds (an unknown table,
//! column or function, a type mismatch) as `SYNTAX_ERROR` with `line L:C:`; DataFusion gives a
//! source span for some of them (its `Diagnostic`), which becomes the location.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::protocol::errors::{
    DIVISION_BY_ZERO, EXCEEDED_LOCAL_MEMORY_LIMIT, GENERIC_INTERNAL_ERROR, INVALID_CAST_ARGUMENT, NOT_SUPPORTED, NUMERIC_VALUE_OUT_OF_RANGE, SYNTAX_ERROR,
};
use crate::protocol::QueryFailure;

/// A failure that crossed DataFusion (a remote task's, say): carried through as it is.
#[derive(Debug)]
pub struct Relayed(pub QueryFailure);

impl std::fmt::Display for Relayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Relayed {}

pub fn relay(failure: QueryFailure) -> DataFusionError {
    DataFusionError::External(Box::new(Relayed(failure)))
}

pub fn failure(error: &DataFusionError) -> QueryFailure {
    let location = error.diagnostic().and_then(|diagnostic| diagnostic.span).map(|span| {
        (u32::try_from(span.start.line).unwrap_or(u32::MAX).max(1), u32::try_from(span.start.column).unwrap_or(u32::MAX).max(1))
    });
    let failure = classify(error.find_root());
    match (location, failure.location) {
        // Presto's messages start with where the problem is.
        (Some((line, column)), None) => {
            let message = format!("line {line}:{column}: {}", failure.message);
            QueryFailure { message, ..failure }.at(line, column)
        }
        _ => failure,
    }
}

/// Presto says where an unknown column is; DataFusion's error does not always carry a span, so
/// the first reference to the name in the statement stands for it.
pub fn locate_column(sql: &str, failure: QueryFailure) -> QueryFailure {
    let name = failure.message.strip_prefix("Column '").and_then(|rest| rest.strip_suffix("' cannot be resolved"));
    let (Some(name), None) = (name, failure.location) else { return failure };
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else { return failure };
    let found = tokens.iter().find(|token| matches!(&token.token, Token::Word(word) if word.value.eq_ignore_ascii_case(name)));
    match found {
        Some(token) => {
            let (line, column) = (u32::try_from(token.span.start.line).unwrap_or(1), u32::try_from(token.span.start.column).unwrap_or(1));
            let message = format!("line {line}:{column}: {}", failure.message);
            QueryFailure { message, ..failure }.at(line, column)
        }
        None => failure,
    }
}

fn classify(error: &DataFusionError) -> QueryFailure {
    match error {
        DataFusionError::External(inner) => match inner.downcast_ref::<Relayed>() {
            Some(Relayed(failure)) => failure.clone(),
            None => QueryFailure::new(GENERIC_INTERNAL_ERROR, inner.to_string()),
        },
        DataFusionError::SQL(parse, _) => QueryFailure::new(SYNTAX_ERROR, parse.to_string()),
        DataFusionError::Plan(message) => QueryFailure::new(SYNTAX_ERROR, presto_message(message)),
        DataFusionError::SchemaError(..) => QueryFailure::new(SYNTAX_ERROR, presto_message(&error.message())),
        DataFusionError::NotImplemented(message) => QueryFailure::new(NOT_SUPPORTED, message.clone()),
        DataFusionError::ResourcesExhausted(message) => {
            QueryFailure::new(EXCEEDED_LOCAL_MEMORY_LIMIT, format!("Query exceeded per-node user memory limit: {message}"))
        }
        DataFusionError::ArrowError(arrow, _) => arrow_failure(arrow),
        DataFusionError::Execution(message) if message.contains("Divide by zero") => division_by_zero(),
        DataFusionError::Execution(message) => QueryFailure::new(GENERIC_INTERNAL_ERROR, message.clone()),
        other => QueryFailure::new(GENERIC_INTERNAL_ERROR, other.message().to_string()),
    }
}

fn arrow_failure(error: &ArrowError) -> QueryFailure {
    match error {
        ArrowError::DivideByZero => division_by_zero(),
        ArrowError::CastError(message) => QueryFailure::new(INVALID_CAST_ARGUMENT, message.clone()),
        ArrowError::ArithmeticOverflow(message) => QueryFailure::new(NUMERIC_VALUE_OUT_OF_RANGE, message.clone()),
        ArrowError::ExternalError(inner) => match inner.downcast_ref::<Relayed>() {
            Some(Relayed(failure)) => failure.clone(),
            None => QueryFailure::new(GENERIC_INTERNAL_ERROR, inner.to_string()),
        },
        other => QueryFailure::new(GENERIC_INTERNAL_ERROR, other.to_string()),
    }
}

fn division_by_zero() -> QueryFailure {
    QueryFailure::new(DIVISION_BY_ZERO, "Division by zero")
}

/// Rewrites DataFusion's wording of the common analysis errors into Presto's.
fn presto_message(message: &str) -> String {
    let quoted = |text: &str| text.split('\'').nth(1).map(str::to_string);
    if message.starts_with("table '") && message.ends_with("' not found") {
        if let Some(name) = quoted(message) {
            return format!("Table '{name}' does not exist");
        }
    }
    if message.starts_with("No field named ") {
        let name = message.trim_start_matches("No field named ").split(['.', ' ']).next().unwrap_or("").trim_matches('"');
        let name = if name.is_empty() { message } else { name };
        return format!("Column '{name}' cannot be resolved");
    }
    if message.starts_with("Invalid function '") {
        if let Some(name) = quoted(message) {
            return format!("Function '{name}' not registered");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_errors_read_like_presto() {
        assert_eq!(presto_message("table 'tpch.tiny.lineitems' not found"), "Table 'tpch.tiny.lineitems' does not exist");
        assert_eq!(presto_message("Invalid function 'frobnicate'.\nDid you mean 'floor'?"), "Function 'frobnicate' not registered");
        let failure = failure(&DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None));
        assert_eq!(failure.code.name, "DIVISION_BY_ZERO");
    }

    #[test]
    fn an_unknown_column_is_located_at_its_first_reference() {
        let failure = QueryFailure::new(SYNTAX_ERROR, "Column 'x' cannot be resolved");
        let located = locate_column("SELECT a,\n  X FROM t", failure);
        assert_eq!(located.location, Some((2, 3)));
        assert_eq!(located.message, "line 2:3: Column 'x' cannot be resolved");
    }
}
