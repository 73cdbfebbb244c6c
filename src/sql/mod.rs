//! SQL front end: parse with sqlparser, classify, and turn what fireball can run into a plan.
//!
//! fireball runs two kinds of statement:
//! - the **synthetic workload**, `SELECT … FROM synthetic(run_time => '2s', memory => '64MB',
//!   tasks => 4, rows => 100)`, which workers execute for real (see [`synthetic`]);
//! - **constant selects** such as `SELECT 1` or `SELECT 'x' AS name`, which clients use as
//!   connection checks, answered by the coordinator.
//!
//! Anything else that parses is refused with `NOT_SUPPORTED`; anything that does not parse gets
//! `SYNTAX_ERROR` with the line and column. Before and during the parse, [`guard`] bounds what a
//! statement may cost (nesting depth, parser recursion, expression parses), so a short malicious
//! statement is refused in milliseconds instead of pinning the coordinator's runtime thread.

pub mod guard;
mod prepared;
pub mod synthetic;

use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement as Ast, Value};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::protocol::errors::{NOT_SUPPORTED, SYNTAX_ERROR};
use crate::protocol::{Column, QueryFailure, SqlType};
pub use synthetic::SyntheticSpec;

/// Statement classes used by resource-group selectors (`queryType`), as Presto names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryType {
    Select,
    Explain,
    Describe,
    Insert,
    Update,
    Delete,
    Analyze,
    DataDefinition,
}

/// What a coordinator runs for one statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Synthetic(SyntheticSpec),
    Constant { columns: Vec<Column>, row: Vec<serde_json::Value> },
    /// A statement for the SQL engine (production builds only): planned when the query starts.
    Sql(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParsedStatement {
    pub query_type: Option<QueryType>,
    pub plan: Plan,
    /// The names of the tables the statement reads, as written (for the catalog access rules).
    pub tables: Vec<Vec<String>>,
}

/// Longest SQL text accepted (Presto's `query.max-length` default is 1,000,000 characters).
pub const SQL_CHARS_MAX: usize = 1_000_000;

pub fn parse(sql: &str) -> Result<ParsedStatement, QueryFailure> {
    let too_large = |sql: &str| sql.chars().count() > SQL_CHARS_MAX;
    let refused = || {
        QueryFailure::new(
            crate::protocol::errors::QUERY_TEXT_TOO_LARGE,
            format!("Query text length exceeds the maximum length ({SQL_CHARS_MAX})"),
        )
    };
    if too_large(sql) {
        return Err(refused());
    }
    let expanded = prepared::expand(sql)?;
    let sql = expanded.as_deref().unwrap_or(sql);
    if too_large(sql) {
        return Err(refused());
    }
    let mut statements = parse_ast(sql)?;
    if statements.len() != 1 {
        let message = if statements.is_empty() { "SQL statement is empty" } else { "only one statement per request is allowed" };
        return Err(QueryFailure::new(SYNTAX_ERROR, message).at(1, 1));
    }
    let statement = statements.remove(0);
    let query_type = classify(&statement);
    let mut tables = Vec::new();
    let _ = sqlparser::ast::visit_relations(&statement, |name| {
        tables.push(name.0.iter().map(|part| part.to_string().trim_matches('"').to_lowercase()).collect());
        std::ops::ControlFlow::<()>::Continue(())
    });
    let plan = plan(&statement, sql)?;
    Ok(ParsedStatement { query_type, plan, tables })
}

/// Tokenizes (linear), checks the nesting budget, then parses with the expression-parse budget;
/// see [`guard`] for why each step is there.
fn parse_ast(sql: &str) -> Result<Vec<Ast>, QueryFailure> {
    // The tokenizer consults the dialect only for character classes, so the budget is not spent here.
    let tokens = Tokenizer::new(&guard::BudgetedDialect::with_budget(0), sql)
        .tokenize_with_location()
        .map_err(|error| syntax_error(sql, &ParserError::from(error)))?;
    guard::check_nesting(&tokens)?;
    let token_count = tokens.iter().filter(|token| !matches!(token.token, Token::Whitespace(_))).count();
    let dialect = guard::BudgetedDialect::for_tokens(token_count);
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(guard::PARSER_RECURSION_LIMIT)
        .with_tokens_with_locations(tokens)
        .parse_statements();
    // Refused once the budget ran out even if a parse came back: an alternative that failed only
    // for want of budget may have let sqlparser settle on another reading than GenericDialect's.
    match (dialect.exhausted_at(), parsed) {
        (Some(location), _) => Err(guard::too_complex(location, end_of_input(sql))),
        (None, Ok(statements)) => Ok(statements),
        (None, Err(error)) => Err(syntax_error(sql, &error)),
    }
}

fn classify(statement: &Ast) -> Option<QueryType> {
    Some(match statement {
        Ast::Query(_) => QueryType::Select,
        Ast::Explain { .. } => QueryType::Explain,
        Ast::ExplainTable { .. } | Ast::ShowColumns { .. } => QueryType::Describe,
        Ast::Insert(_) => QueryType::Insert,
        Ast::Update { .. } => QueryType::Update,
        Ast::Delete(_) => QueryType::Delete,
        Ast::Analyze { .. } => QueryType::Analyze,
        Ast::CreateTable(_)
        | Ast::CreateView { .. }
        | Ast::CreateSchema { .. }
        | Ast::AlterTable { .. }
        | Ast::Drop { .. }
        | Ast::Truncate { .. } => QueryType::DataDefinition,
        _ => return None,
    })
}

fn plan(statement: &Ast, sql: &str) -> Result<Plan, QueryFailure> {
    if let Some(plan) = coordinator_plan(statement)? {
        return Ok(plan);
    }
    let engine_statement = matches!(
        statement,
        Ast::Query(_)
            | Ast::Explain { .. }
            | Ast::ExplainTable { .. }
            | Ast::ShowTables { .. }
            | Ast::ShowColumns { .. }
            | Ast::ShowSchemas { .. }
            | Ast::ShowVariable { .. }
    );
    if cfg!(madsim) || !engine_statement {
        let scope = if cfg!(madsim) { "the simulation runs only" } else { "fireball runs queries, EXPLAIN and SHOW statements, and" };
        return Err(QueryFailure::new(
            NOT_SUPPORTED,
            format!(
                "{scope} the synthetic workload (SELECT * FROM synthetic(run_time => '1s', memory => '10MB', tasks => 2, \
                 rows => 10)) and constant SELECTs"
            ),
        ));
    }
    Ok(Plan::Sql(sql.to_string()))
}

/// What the coordinator answers itself: constant selects and the synthetic workload; `None` for
/// everything else.
fn coordinator_plan(statement: &Ast) -> Result<Option<Plan>, QueryFailure> {
    let Ast::Query(query) = statement else { return Ok(None) };
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return Ok(None);
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return Ok(None) };
    if select.selection.is_some() || select.distinct.is_some() || select.having.is_some() || !no_group_by(&select.group_by) {
        return Ok(None);
    }
    match select.from.as_slice() {
        [] => Ok(constant_select(&select.projection)),
        [table] if table.joins.is_empty() => Ok(synthetic::plan(&table.relation, &select.projection)?.map(Plan::Synthetic)),
        _ => Ok(None),
    }
}

fn no_group_by(group_by: &sqlparser::ast::GroupByExpr) -> bool {
    matches!(group_by, sqlparser::ast::GroupByExpr::Expressions(expressions, _) if expressions.is_empty())
}

/// `SELECT <literal> [AS name], …` without FROM.
fn constant_select(projection: &[SelectItem]) -> Option<Plan> {
    let mut columns = Vec::new();
    let mut row = Vec::new();
    for (index, item) in projection.iter().enumerate() {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, format!("_col{index}")),
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
            _ => return None,
        };
        let (sql_type, value) = literal(expr)?;
        columns.push(Column::new(name, sql_type));
        row.push(value);
    }
    Some(Plan::Constant { columns, row })
}

fn literal(expr: &Expr) -> Option<(SqlType, serde_json::Value)> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(text, _) => {
                if let Ok(integer) = text.parse::<i64>() {
                    let sql_type = if i32::try_from(integer).is_ok() { SqlType::Integer } else { SqlType::Bigint };
                    Some((sql_type, serde_json::Value::from(integer)))
                } else {
                    let double: f64 = text.parse().ok()?;
                    Some((SqlType::Double, serde_json::Value::from(double)))
                }
            }
            Value::SingleQuotedString(text) => {
                let length = u32::try_from(text.chars().count()).ok()?;
                Some((SqlType::Varchar { length: Some(length) }, serde_json::Value::from(text.clone())))
            }
            Value::Boolean(flag) => Some((SqlType::Boolean, serde_json::Value::from(*flag))),
            Value::Null => Some((SqlType::Unknown, serde_json::Value::Null)),
            _ => None,
        },
        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Minus, expr } => match literal(expr)? {
            (SqlType::Integer | SqlType::Bigint, value) => {
                let negated = value.as_i64()?.checked_neg()?;
                let sql_type = if i32::try_from(negated).is_ok() { SqlType::Integer } else { SqlType::Bigint };
                Some((sql_type, serde_json::Value::from(negated)))
            }
            (SqlType::Double, value) => Some((SqlType::Double, serde_json::Value::from(-value.as_f64()?))),
            _ => None,
        },
        Expr::Nested(inner) => literal(inner),
        _ => None,
    }
}

/// Turns sqlparser's error into Presto's `SYNTAX_ERROR` with `line L:C: …`.
fn syntax_error(sql: &str, error: &ParserError) -> QueryFailure {
    let text = match error {
        ParserError::TokenizerError(text) | ParserError::ParserError(text) => text.clone(),
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_string(),
    };
    let (message, location) = match text.rfind(" at Line: ") {
        Some(index) => (text[..index].to_string(), parse_location(&text[index + " at Line: ".len()..])),
        None => (text.clone(), None),
    };
    // sqlparser gives no location for errors at the end of input; that is where they are.
    let (line, column) = location.unwrap_or_else(|| end_of_input(sql));
    QueryFailure::new(SYNTAX_ERROR, format!("line {line}:{column}: {message}")).at(line, column)
}

fn parse_location(text: &str) -> Option<(u32, u32)> {
    let (line, rest) = text.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

fn end_of_input(sql: &str) -> (u32, u32) {
    let line = sql.lines().count().max(1);
    let column = sql.lines().last().map(|last| last.chars().count() + 1).unwrap_or(1);
    (u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_a_statement_reads_are_named_for_the_catalog_rules() {
        let parsed = parse(
            "WITH t AS (SELECT * FROM system.runtime.nodes) SELECT * FROM \"TPCH\".tiny.nation n \
             JOIN region r ON n.regionkey = r.regionkey WHERE EXISTS (SELECT 1 FROM t)",
        )
        .unwrap();
        let names: Vec<String> = parsed.tables.iter().map(|parts| parts.join(".")).collect();
        for expected in ["system.runtime.nodes", "tpch.tiny.nation", "region", "t"] {
            assert!(names.contains(&expected.to_string()), "{expected} not in {names:?}");
        }
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let error = parse("SELECT * FORM x").unwrap_err();
        assert_eq!(error.code.name, "SYNTAX_ERROR");
        assert_eq!(error.location, Some((1, 10)));
        assert!(error.message.starts_with("line 1:10: "), "{}", error.message);
        let error = parse("select\n  1 +").unwrap_err();
        assert_eq!(error.location, Some((2, 6)));
        assert_eq!(parse("").unwrap_err().message, "SQL statement is empty");
        assert!(parse("SELECT 1; SELECT 2").is_err());
    }

    #[test]
    fn statements_the_engine_does_not_run_are_not_supported() {
        for sql in ["CREATE TABLE t (a int)", "INSERT INTO t VALUES (1)", "DROP TABLE t"] {
            let error = parse(sql).unwrap_err();
            assert_eq!(error.code.name, "NOT_SUPPORTED", "{sql}");
        }
        for sql in ["SELECT * FROM orders", "SELECT 1 + 1", "SHOW CATALOGS", "SHOW SCHEMAS FROM tpch", "DESCRIBE nation", "EXPLAIN SELECT 1"] {
            match parse(sql) {
                Ok(parsed) => assert!(!cfg!(madsim) && parsed.plan == Plan::Sql(sql.to_string()), "{sql}"),
                Err(error) => assert!(cfg!(madsim) && error.code.name == "NOT_SUPPORTED", "{sql}"),
            }
        }
    }

    #[test]
    fn constant_selects() {
        let parsed = parse("SELECT 1, 'abc' AS s, -2.5, true, NULL, 9999999999").unwrap();
        assert_eq!(parsed.query_type, Some(QueryType::Select));
        let Plan::Constant { columns, row } = parsed.plan else { panic!("not constant") };
        let types: Vec<_> = columns.iter().map(|c| c.type_name.as_str()).collect();
        assert_eq!(types, ["integer", "varchar(3)", "double", "boolean", "unknown", "bigint"]);
        assert_eq!(columns[1].name, "s");
        assert_eq!(row[0], serde_json::json!(1));
        assert_eq!(row[2], serde_json::json!(-2.5));
    }
}
