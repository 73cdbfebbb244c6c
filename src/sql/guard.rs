//! The front end's budget: no statement may cost a coordinator more than a few milliseconds to
//! refuse.
//!
//! # Why sqlparser needs one
//! sqlparser 0.59 parses an expression that starts with a keyword (`CASE`, `CAST`, `ARRAY`, …) in
//! `parse_prefix` by first trying the keyword's own syntax and, when that fails, trying the same
//! word again as a plain identifier or function name (so `SELECT max(interval) …` still parses).
//! On valid SQL the first try succeeds and parsing is linear. When the *innermost* of `d` nested
//! such expressions is malformed, every level fails, and every level then re-parses everything
//! inside it a second time as the other reading: about `2^d` work. Measured (release build,
//! `SELECT CASE WHEN a THEN … a a … END`): depth 10 → 1.8 ms, 14 → 47 ms, 18 → 0.45 s,
//! 22 → 8.6 s; `CAST(` and `ARRAY[` behave the same. The parser's recursion limit does not help:
//! hitting it is itself a failure that each level retries, so valid `CAST(CAST(…))` nested past
//! the limit never finishes. The whole cost is sqlparser's; our own walks in [`super`] and
//! [`super::synthetic`] only look at the top of the tree.
//!
//! # What the budget is
//! 1. A linear pre-scan of the token stream ([`check_nesting`]) refuses statements nested deeper
//!    than [`NESTING_DEPTH_MAX`] before the parser runs, with the position of the first token
//!    past the limit. This also keeps the parser's recursion (and so its stack) bounded.
//! 2. The parser runs with [`PARSER_RECURSION_LIMIT`], sized so every statement that passes the
//!    pre-scan fits and no statement overflows a 2 MiB stack.
//! 3. [`BudgetedDialect`] counts expression parses (the dialect's `parse_prefix` hook runs once
//!    at the start of every one, including every retried alternative) and, past a budget linear
//!    in the statement's length, fails each further one at once. It fails them with
//!    `RecursionLimitExceeded` because that is the one error sqlparser's backtracking passes up
//!    instead of trying another alternative, so an exhausted parse ends in linear time.

use std::any::TypeId;
use std::cell::Cell;

use sqlparser::ast::Expr;
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan};

use crate::protocol::errors::SYNTAX_ERROR;
use crate::protocol::QueryFailure;

/// Deepest nesting of parentheses, brackets and `CASE … END` accepted. The number is set by the
/// stack, not by taste: in a debug build sqlparser spends 70–90 KB of stack per level of
/// `CASE`/`CAST(`/`f(` nesting, and a 2 MiB stack (a test thread's, and tokio's worker default)
/// overflowed at depth 24 (`CASE`, `CAST(`) and 30 (`f(`), which aborts the whole process; 16
/// leaves about a third of the stack to the caller. Hand-written analytics SQL stays well below
/// it (TPC-H's deepest query nests about 5 levels).
pub const NESTING_DEPTH_MAX: usize = 16;

/// sqlparser's recursion limit, below its default of 50 because of the stack: a debug build
/// overflowed a 2 MiB stack at about 30 levels of `NOT NOT …` under the default. A level counted
/// by [`check_nesting`] costs the parser one recursion step (a query in brackets two, which the
/// pre-scan counts as two levels), and a statement adds a few around its expressions, so every
/// statement that passes the pre-scan fits; only runs of prefix operators, which the pre-scan
/// does not see, reach this limit.
pub const PARSER_RECURSION_LIMIT: usize = NESTING_DEPTH_MAX + 4;

/// Expression parses allowed per token, on top of [`PREFIX_PARSES_BASE_MAX`]. A valid statement
/// needs at most one per token plus the few alternatives sqlparser tries and drops (measured on
/// the statements in the tests: under 1.5 per non-whitespace token); the factor is generous so
/// no valid statement is refused, and small enough that refusing costs milliseconds.
pub const PREFIX_PARSES_PER_TOKEN_MAX: u64 = 8;

/// Expression parses every statement may make regardless of its length.
pub const PREFIX_PARSES_BASE_MAX: u64 = 1_000;

/// Refuses a statement nested deeper than [`NESTING_DEPTH_MAX`], pointing at the first token past
/// the limit. A bracket or `CASE` is one level; a bracket that holds a query (`(SELECT …)`,
/// `EXISTS (SELECT …)`, `FROM (SELECT …)`) is two, because the parser spends about twice the
/// stack on it (a query, its select list, then the expression). Linear in the tokens; unbalanced
/// brackets are left for the parser to report.
pub fn check_nesting(tokens: &[TokenWithSpan]) -> Result<(), QueryFailure> {
    let mut open: Vec<Open> = Vec::new();
    let mut depth = 0usize;
    for token in tokens {
        match &token.token {
            Token::LParen | Token::LBracket => open.push(Open::Bracket { levels: 1 }),
            Token::RParen | Token::RBracket => {
                if open.last() == Some(&Open::Case) {
                    // A `CASE` left open inside brackets is a syntax error the parser will name.
                    open.pop();
                }
                open.pop();
            }
            Token::Word(word) if word.keyword == Keyword::CASE => open.push(Open::Case),
            Token::Word(word) if word.keyword == Keyword::END && open.last() == Some(&Open::Case) => {
                open.pop();
            }
            Token::Word(word) if word.keyword == Keyword::SELECT => {
                if let Some(Open::Bracket { levels }) = open.last_mut() {
                    *levels = 2;
                }
            }
            _ => {}
        }
        depth = open.iter().map(|entry| entry.levels()).sum();
        if depth > NESTING_DEPTH_MAX {
            return Err(too_deep(token.span.start));
        }
    }
    debug_assert!(depth <= NESTING_DEPTH_MAX);
    Ok(())
}

/// What [`check_nesting`] has open, and how many levels it counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Case,
    Bracket { levels: usize },
}

impl Open {
    fn levels(self) -> usize {
        match self {
            Open::Case => 1,
            Open::Bracket { levels } => levels,
        }
    }
}

fn too_deep(location: Location) -> QueryFailure {
    let (line, column) = line_column(location);
    QueryFailure::new(SYNTAX_ERROR, format!("line {line}:{column}: Expression is nested too deeply (limit {NESTING_DEPTH_MAX})"))
        .at(line, column)
}

/// The failure for a statement whose parse ran out of [`BudgetedDialect`]'s budget, at
/// `location` (or at `end_of_input` when the parser was past the last token).
pub fn too_complex(location: Location, end_of_input: (u32, u32)) -> QueryFailure {
    let (line, column) = if location.line == 0 { end_of_input } else { line_column(location) };
    QueryFailure::new(SYNTAX_ERROR, format!("line {line}:{column}: Statement is too complex to parse")).at(line, column)
}

fn line_column(location: Location) -> (u32, u32) {
    let clamp = |value: u64| u32::try_from(value.max(1)).unwrap_or(u32::MAX);
    (clamp(location.line), clamp(location.column))
}

/// [`GenericDialect`], plus a budget of expression parses (see the module docs).
///
/// It answers every question exactly as `GenericDialect` does: the methods `GenericDialect`
/// overrides are forwarded, the rest keep the trait's defaults as `GenericDialect` does, and
/// [`Dialect::dialect`] reports `GenericDialect`'s type so sqlparser's `dialect_of!` checks see
/// the same dialect. A test parses a corpus with both and compares the trees, so a sqlparser
/// upgrade that adds an override shows up there.
#[derive(Debug)]
pub struct BudgetedDialect {
    inner: GenericDialect,
    prefix_parses_max: u64,
    prefix_parses: Cell<u64>,
    /// Where the first refused expression started, once the budget is spent.
    exhausted_at: Cell<Option<Location>>,
}

impl BudgetedDialect {
    /// A budget for a statement of `token_count` tokens.
    pub fn for_tokens(token_count: usize) -> BudgetedDialect {
        let tokens = u64::try_from(token_count).unwrap_or(u64::MAX);
        BudgetedDialect::with_budget(PREFIX_PARSES_BASE_MAX.saturating_add(tokens.saturating_mul(PREFIX_PARSES_PER_TOKEN_MAX)))
    }

    pub fn with_budget(prefix_parses_max: u64) -> BudgetedDialect {
        BudgetedDialect { inner: GenericDialect {}, prefix_parses_max, prefix_parses: Cell::new(0), exhausted_at: Cell::new(None) }
    }

    /// Expression parses so far, alternatives tried and dropped included.
    pub fn prefix_parses(&self) -> u64 {
        self.prefix_parses.get()
    }

    /// `Some(location)` once the budget has run out.
    pub fn exhausted_at(&self) -> Option<Location> {
        self.exhausted_at.get()
    }
}

impl Dialect for BudgetedDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let parses = self.prefix_parses.get().saturating_add(1);
        self.prefix_parses.set(parses);
        if parses <= self.prefix_parses_max {
            // Not ours to parse: sqlparser's own prefix parsing runs, as for GenericDialect.
            return None;
        }
        if self.exhausted_at.get().is_none() {
            self.exhausted_at.set(Some(parser.peek_token_ref().span.start));
        }
        Some(Err(ParserError::RecursionLimitExceeded))
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }
    fn supports_unicode_string_literal(&self) -> bool {
        self.inner.supports_unicode_string_literal()
    }
    fn supports_group_by_expr(&self) -> bool {
        self.inner.supports_group_by_expr()
    }
    fn supports_group_by_with_modifier(&self) -> bool {
        self.inner.supports_group_by_with_modifier()
    }
    fn supports_left_associative_joins_without_parens(&self) -> bool {
        self.inner.supports_left_associative_joins_without_parens()
    }
    fn supports_connect_by(&self) -> bool {
        self.inner.supports_connect_by()
    }
    fn supports_match_recognize(&self) -> bool {
        self.inner.supports_match_recognize()
    }
    fn supports_pipe_operator(&self) -> bool {
        self.inner.supports_pipe_operator()
    }
    fn supports_start_transaction_modifier(&self) -> bool {
        self.inner.supports_start_transaction_modifier()
    }
    fn supports_window_function_null_treatment_arg(&self) -> bool {
        self.inner.supports_window_function_null_treatment_arg()
    }
    fn supports_dictionary_syntax(&self) -> bool {
        self.inner.supports_dictionary_syntax()
    }
    fn supports_window_clause_named_window_reference(&self) -> bool {
        self.inner.supports_window_clause_named_window_reference()
    }
    fn supports_parenthesized_set_variables(&self) -> bool {
        self.inner.supports_parenthesized_set_variables()
    }
    fn supports_select_wildcard_except(&self) -> bool {
        self.inner.supports_select_wildcard_except()
    }
    fn support_map_literal_syntax(&self) -> bool {
        self.inner.support_map_literal_syntax()
    }
    fn allow_extract_custom(&self) -> bool {
        self.inner.allow_extract_custom()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        self.inner.allow_extract_single_quotes()
    }
    fn supports_create_index_with_clause(&self) -> bool {
        self.inner.supports_create_index_with_clause()
    }
    fn supports_explain_with_utility_options(&self) -> bool {
        self.inner.supports_explain_with_utility_options()
    }
    fn supports_limit_comma(&self) -> bool {
        self.inner.supports_limit_comma()
    }
    fn supports_from_first_select(&self) -> bool {
        self.inner.supports_from_first_select()
    }
    fn supports_projection_trailing_commas(&self) -> bool {
        self.inner.supports_projection_trailing_commas()
    }
    fn supports_asc_desc_in_column_definition(&self) -> bool {
        self.inner.supports_asc_desc_in_column_definition()
    }
    fn supports_try_convert(&self) -> bool {
        self.inner.supports_try_convert()
    }
    fn supports_comment_on(&self) -> bool {
        self.inner.supports_comment_on()
    }
    fn supports_load_extension(&self) -> bool {
        self.inner.supports_load_extension()
    }
    fn supports_named_fn_args_with_assignment_operator(&self) -> bool {
        self.inner.supports_named_fn_args_with_assignment_operator()
    }
    fn supports_struct_literal(&self) -> bool {
        self.inner.supports_struct_literal()
    }
    fn supports_empty_projections(&self) -> bool {
        self.inner.supports_empty_projections()
    }
    fn supports_nested_comments(&self) -> bool {
        self.inner.supports_nested_comments()
    }
    fn supports_user_host_grantee(&self) -> bool {
        self.inner.supports_user_host_grantee()
    }
    fn supports_string_escape_constant(&self) -> bool {
        self.inner.supports_string_escape_constant()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.inner.supports_array_typedef_with_brackets()
    }
    fn supports_match_against(&self) -> bool {
        self.inner.supports_match_against()
    }
    fn supports_set_names(&self) -> bool {
        self.inner.supports_set_names()
    }
    fn supports_comma_separated_set_assignments(&self) -> bool {
        self.inner.supports_comma_separated_set_assignments()
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        self.inner.supports_filter_during_aggregation()
    }
    fn supports_select_wildcard_exclude(&self) -> bool {
        self.inner.supports_select_wildcard_exclude()
    }
    fn supports_data_type_signed_suffix(&self) -> bool {
        self.inner.supports_data_type_signed_suffix()
    }
    fn supports_interval_options(&self) -> bool {
        self.inner.supports_interval_options()
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
