//! `EXECUTE IMMEDIATE 'statement' [USING value, …]`: how the trino client (and the Presto JDBC
//! driver's newer versions) send a query with parameters. Each `?` in the statement is replaced
//! by the text of the matching value, in order, and the result is parsed as if sent directly, so
//! it gets the same guard, checks and plan as any statement.
//!
//! The values are the client's own SQL literals (`3`, `'tiny'`, `DATE '1998-01-01'`); splicing
//! their text keeps them exactly as written, quotes and all.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::protocol::errors::SYNTAX_ERROR;
use crate::protocol::QueryFailure;

/// The statement an `EXECUTE IMMEDIATE` stands for; `None` for any other statement.
pub fn expand(sql: &str) -> Result<Option<String>, QueryFailure> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else { return Ok(None) };
    let tokens: Vec<&TokenWithSpan> = tokens.iter().filter(|token| !is_blank(&token.token)).collect();
    let is_word = |index: usize, keyword: &str| {
        matches!(tokens.get(index).map(|token| &token.token), Some(Token::Word(word)) if word.value.eq_ignore_ascii_case(keyword))
    };
    if !(is_word(0, "EXECUTE") && is_word(1, "IMMEDIATE")) {
        return Ok(None);
    }
    let invalid = |message: &str| QueryFailure::new(SYNTAX_ERROR, format!("EXECUTE IMMEDIATE: {message}"));
    let Some(Token::SingleQuotedString(statement)) = tokens.get(2).map(|token| &token.token) else {
        return Err(invalid("expected the statement as a quoted string"));
    };
    let values = match tokens.get(3) {
        None => Vec::new(),
        Some(_) if is_word(3, "USING") => split_values(sql, &tokens[4..]).ok_or_else(|| invalid("expected values after USING"))?,
        Some(_) if matches!(tokens.get(3).map(|token| &token.token), Some(Token::SemiColon)) => Vec::new(),
        Some(_) => return Err(invalid("expected USING or the end of the statement after the statement text")),
    };
    substitute(statement, &values).map(Some)
}

fn is_blank(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// The comma-separated values (at parenthesis depth 0) as the original text.
fn split_values(sql: &str, tokens: &[&TokenWithSpan]) -> Option<Vec<String>> {
    let tokens: Vec<&TokenWithSpan> = tokens.iter().copied().filter(|token| token.token != Token::SemiColon).collect();
    let mut values = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (index, token) in tokens.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                values.push(text_of(sql, &tokens[start..index])?);
                start = index + 1;
            }
            _ => {}
        }
    }
    values.push(text_of(sql, &tokens[start..])?);
    Some(values)
}

/// The original text from the first token's start to the last one's end.
fn text_of(sql: &str, tokens: &[&TokenWithSpan]) -> Option<String> {
    let (first, last) = (tokens.first()?, tokens.last()?);
    let start = offset(sql, first.span.start.line, first.span.start.column)?;
    let end = offset(sql, last.span.end.line, last.span.end.column)?;
    sql.get(start..end).map(|text| text.trim().to_string())
}

/// The byte offset of 1-based `line` and `column` (in characters).
fn offset(sql: &str, line: u64, column: u64) -> Option<usize> {
    let line_start: usize = sql.split_inclusive('\n').take(usize::try_from(line).ok()?.checked_sub(1)?).map(str::len).sum();
    let rest = sql.get(line_start..)?;
    let skip = usize::try_from(column).ok()?.checked_sub(1)?;
    Some(line_start + rest.char_indices().nth(skip).map_or(rest.len(), |(index, _)| index))
}

/// `statement` with its `?` placeholders (outside strings) replaced by `values`, in order.
fn substitute(statement: &str, values: &[String]) -> Result<String, QueryFailure> {
    let tokens = Tokenizer::new(&GenericDialect {}, statement)
        .tokenize_with_location()
        .map_err(|error| QueryFailure::new(SYNTAX_ERROR, format!("EXECUTE IMMEDIATE: {error}")))?;
    let placeholders: Vec<&TokenWithSpan> = tokens.iter().filter(|token| token.token == Token::Placeholder("?".into())).collect();
    if placeholders.len() != values.len() {
        return Err(QueryFailure::new(
            SYNTAX_ERROR,
            format!("Incorrect number of parameters: expected {} but found {}", placeholders.len(), values.len()),
        ));
    }
    let mut out = String::with_capacity(statement.len());
    let mut copied = 0;
    for (placeholder, value) in placeholders.iter().zip(values) {
        let at = offset(statement, placeholder.span.start.line, placeholder.span.start.column).unwrap_or(copied);
        out.push_str(&statement[copied..at]);
        out.push_str(value);
        copied = at + 1;
    }
    out.push_str(&statement[copied.min(statement.len())..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_spliced_in_order_as_written() {
        let sql = "EXECUTE IMMEDIATE 'SELECT name FROM nation WHERE nationkey = ? AND name <> ''?''' USING 3";
        assert_eq!(expand(sql).unwrap().unwrap(), "SELECT name FROM nation WHERE nationkey = 3 AND name <> '?'");
        let two = "execute immediate 'SELECT ?, ?' using 'it''s', DATE '1998-01-01'";
        assert_eq!(expand(two).unwrap().unwrap(), "SELECT 'it''s', DATE '1998-01-01'");
        assert_eq!(expand("EXECUTE IMMEDIATE 'SELECT 1'").unwrap().unwrap(), "SELECT 1");
        assert_eq!(expand("SELECT 1").unwrap(), None);
    }

    #[test]
    fn a_wrong_parameter_count_is_refused() {
        let error = expand("EXECUTE IMMEDIATE 'SELECT ?' USING 1, 2").unwrap_err();
        assert_eq!(error.message, "Incorrect number of parameters: expected 1 but found 2");
        assert_eq!(expand("EXECUTE IMMEDIATE SELECT 1").unwrap_err().code.name, "SYNTAX_ERROR");
    }
}
