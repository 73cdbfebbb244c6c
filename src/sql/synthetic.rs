//! The synthetic workload statement.
//!
//! ```sql
//! SELECT * FROM synthetic(run_time => '2s', memory => '64MB', tasks => 4, rows => 100)
//! SELECT task, worker FROM synthetic(run_time => '500ms')
//! ```
//!
//! | argument   | meaning                                                 | default | bound      |
//! |------------|---------------------------------------------------------|---------|------------|
//! | `run_time` | how long each task runs (a Presto duration)             | `0s`    | ≤ 24h      |
//! | `memory`   | memory each task reserves in its worker's pool          | `0B`    | ≤ 1PB      |
//! | `peak_memory` | what each task's reservation grows to, evenly over its run time (a task that cannot get the next step waits, blocked, without advancing) | `memory` | `memory`..=1PB |
//! | `tasks`    | number of tasks, spread over the active workers         | `1`     | 1..=1024   |
//! | `rows`     | rows the query returns in total, split across the tasks | `1`     | ≤ 1000000  |
//!
//! The result has columns `task` (bigint: which task produced the row), `row` (bigint: the row's
//! number, 0-based across the whole result) and `worker` (varchar: the node id that ran the task).
//! Select `*` or any of them by name.

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, SelectItem, TableFactor, Value};

use crate::config::{parse_data_size_bytes, parse_duration_ms};
use crate::protocol::errors::INVALID_FUNCTION_ARGUMENT;
use crate::protocol::{Column, QueryFailure, SqlType};

pub const TASKS_MAX: u32 = 1024;
pub const ROWS_MAX: u64 = 1_000_000;
pub const RUN_TIME_MS_MAX: u64 = 24 * 3_600_000;
pub const TASK_MEMORY_BYTES_MAX: u64 = 1 << 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SyntheticColumn {
    Task,
    Row,
    Worker,
}

impl SyntheticColumn {
    const ALL: [SyntheticColumn; 3] = [SyntheticColumn::Task, SyntheticColumn::Row, SyntheticColumn::Worker];

    fn name(self) -> &'static str {
        match self {
            SyntheticColumn::Task => "task",
            SyntheticColumn::Row => "row",
            SyntheticColumn::Worker => "worker",
        }
    }

    pub fn column(self) -> Column {
        match self {
            SyntheticColumn::Task | SyntheticColumn::Row => Column::new(self.name(), SqlType::Bigint),
            SyntheticColumn::Worker => Column::new(self.name(), SqlType::Varchar { length: None }),
        }
    }

    /// Where this column sits in the full rows workers produce: `[task, row, worker]`.
    pub fn position(self) -> usize {
        match self {
            SyntheticColumn::Task => 0,
            SyntheticColumn::Row => 1,
            SyntheticColumn::Worker => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyntheticSpec {
    pub run_time_ms: u64,
    pub task_memory_bytes: u64,
    /// What each task's reservation grows to over its run time (equal to `task_memory_bytes`
    /// when it does not grow).
    pub task_peak_memory_bytes: u64,
    pub tasks: u32,
    pub rows: u64,
    pub columns: Vec<SyntheticColumn>,
}

impl SyntheticSpec {
    /// Rows task `task_index` produces, and the number of its first row.
    pub fn task_rows(&self, task_index: u32) -> (u64, u64) {
        assert!(task_index < self.tasks);
        let tasks = u64::from(self.tasks);
        let index = u64::from(task_index);
        let base = self.rows / tasks;
        let extra = self.rows % tasks;
        let count = base + u64::from(index < extra);
        let first = index * base + index.min(extra);
        (first, count)
    }
}

/// The full rows (`[task, row, worker]`) one task produces.
pub fn generate_rows(task_index: u32, first_row: u64, count: u64, worker: &str) -> Vec<Vec<serde_json::Value>> {
    (first_row..first_row + count)
        .map(|row| vec![serde_json::Value::from(task_index), serde_json::Value::from(row), serde_json::Value::from(worker)])
        .collect()
}

/// Plans `FROM synthetic(...)`; `Ok(None)` when the relation is not the synthetic function.
pub fn plan(relation: &TableFactor, projection: &[SelectItem]) -> Result<Option<SyntheticSpec>, QueryFailure> {
    let TableFactor::Table { name, args: Some(args), .. } = relation else { return Ok(None) };
    if !name.to_string().eq_ignore_ascii_case("synthetic") {
        return Ok(None);
    }
    let mut spec = SyntheticSpec { run_time_ms: 0, task_memory_bytes: 0, task_peak_memory_bytes: 0, tasks: 1, rows: 1, columns: Vec::new() };
    let mut peak_memory_bytes = None;
    let invalid = |message: String| QueryFailure::new(INVALID_FUNCTION_ARGUMENT, message);
    let mut seen = Vec::new();
    for arg in &args.args {
        let FunctionArg::Named { name, arg: FunctionArgExpr::Expr(expr), .. } = arg else {
            return Err(invalid("synthetic() takes named arguments only, e.g. synthetic(run_time => '1s')".into()));
        };
        let key = name.value.to_ascii_lowercase();
        if seen.contains(&key) {
            return Err(invalid(format!("synthetic(): argument {key} is given twice")));
        }
        seen.push(key.clone());
        match key.as_str() {
            "run_time" => {
                spec.run_time_ms = parse_duration_ms(&string_arg(&key, expr)?).map_err(|e| invalid(format!("synthetic(): run_time: {e}")))?;
                if spec.run_time_ms > RUN_TIME_MS_MAX {
                    return Err(invalid("synthetic(): run_time must be at most 24h".into()));
                }
            }
            "memory" => {
                spec.task_memory_bytes =
                    parse_data_size_bytes(&string_arg(&key, expr)?).map_err(|e| invalid(format!("synthetic(): memory: {e}")))?;
                if spec.task_memory_bytes > TASK_MEMORY_BYTES_MAX {
                    return Err(invalid("synthetic(): memory must be at most 1PB".into()));
                }
            }
            "peak_memory" => {
                let bytes = parse_data_size_bytes(&string_arg(&key, expr)?).map_err(|e| invalid(format!("synthetic(): peak_memory: {e}")))?;
                if bytes > TASK_MEMORY_BYTES_MAX {
                    return Err(invalid("synthetic(): peak_memory must be at most 1PB".into()));
                }
                peak_memory_bytes = Some(bytes);
            }
            "tasks" => {
                let tasks = integer_arg(&key, expr)?;
                if !(1..=u64::from(TASKS_MAX)).contains(&tasks) {
                    return Err(invalid(format!("synthetic(): tasks must be between 1 and {TASKS_MAX}")));
                }
                spec.tasks = tasks as u32;
            }
            "rows" => {
                spec.rows = integer_arg(&key, expr)?;
                if spec.rows > ROWS_MAX {
                    return Err(invalid(format!("synthetic(): rows must be at most {ROWS_MAX}")));
                }
            }
            other => {
                return Err(invalid(format!(
                    "synthetic(): unknown argument {other} (expected run_time, memory, peak_memory, tasks, rows)"
                )))
            }
        }
    }
    spec.task_peak_memory_bytes = peak_memory_bytes.unwrap_or(spec.task_memory_bytes);
    if spec.task_peak_memory_bytes < spec.task_memory_bytes {
        return Err(invalid("synthetic(): peak_memory must be at least memory".into()));
    }
    spec.columns = projected_columns(projection)?;
    Ok(Some(spec))
}

fn projected_columns(projection: &[SelectItem]) -> Result<Vec<SyntheticColumn>, QueryFailure> {
    let mut columns = Vec::new();
    for item in projection {
        match item {
            SelectItem::Wildcard(_) => columns.extend(SyntheticColumn::ALL),
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                let name = ident.value.to_ascii_lowercase();
                let column = SyntheticColumn::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
                    QueryFailure::new(
                        crate::protocol::errors::COLUMN_NOT_FOUND,
                        format!("Column '{name}' cannot be resolved (synthetic() has task, row, worker)"),
                    )
                })?;
                columns.push(column);
            }
            _ => {
                return Err(QueryFailure::new(
                    crate::protocol::errors::NOT_SUPPORTED,
                    "from synthetic(), select * or the columns task, row, worker",
                ))
            }
        }
    }
    Ok(columns)
}

fn string_arg(key: &str, expr: &Expr) -> Result<String, QueryFailure> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Ok(text.clone()),
            _ => Err(QueryFailure::new(INVALID_FUNCTION_ARGUMENT, format!("synthetic(): {key} must be a string such as '1s'"))),
        },
        _ => Err(QueryFailure::new(INVALID_FUNCTION_ARGUMENT, format!("synthetic(): {key} must be a string literal"))),
    }
}

fn integer_arg(key: &str, expr: &Expr) -> Result<u64, QueryFailure> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(text, _) => text
                .parse()
                .map_err(|_| QueryFailure::new(INVALID_FUNCTION_ARGUMENT, format!("synthetic(): {key} must be a whole number"))),
            _ => Err(QueryFailure::new(INVALID_FUNCTION_ARGUMENT, format!("synthetic(): {key} must be a number"))),
        },
        _ => Err(QueryFailure::new(INVALID_FUNCTION_ARGUMENT, format!("synthetic(): {key} must be a number literal"))),
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::{parse, Plan};

    use super::*;

    fn spec(sql: &str) -> SyntheticSpec {
        match parse(sql).unwrap().plan {
            Plan::Synthetic(spec) => spec,
            other => panic!("not synthetic: {other:?}"),
        }
    }

    #[test]
    fn parses_every_argument() {
        let spec = spec("SELECT * FROM synthetic(run_time => '2s', memory => '64MB', tasks => 4, rows => 10)");
        assert_eq!(spec.run_time_ms, 2_000);
        assert_eq!(spec.task_memory_bytes, 64 << 20);
        assert_eq!(spec.task_peak_memory_bytes, 64 << 20, "no growth unless asked");
        let growing = super::tests::spec("SELECT * FROM synthetic(memory => '1MB', peak_memory => '1GB')");
        assert_eq!((growing.task_memory_bytes, growing.task_peak_memory_bytes), (1 << 20, 1 << 30));
        assert_eq!(spec.tasks, 4);
        assert_eq!(spec.rows, 10);
        assert_eq!(spec.columns, vec![SyntheticColumn::Task, SyntheticColumn::Row, SyntheticColumn::Worker]);
        let spec = super::tests::spec("select worker, task from SYNTHETIC(run_time => '1s')");
        assert_eq!(spec.columns, vec![SyntheticColumn::Worker, SyntheticColumn::Task]);
        assert_eq!((spec.tasks, spec.rows), (1, 1));
    }

    #[test]
    fn rows_split_across_tasks_without_gaps() {
        let spec = spec("SELECT * FROM synthetic(tasks => 3, rows => 10)");
        let parts: Vec<_> = (0..3).map(|task| spec.task_rows(task)).collect();
        assert_eq!(parts, vec![(0, 4), (4, 3), (7, 3)]);
        let rows = generate_rows(1, 4, 3, "worker-1");
        assert_eq!(rows[0], vec![serde_json::json!(1), serde_json::json!(4), serde_json::json!("worker-1")]);
    }

    #[test]
    fn refuses_bad_arguments_by_name() {
        for (sql, expected) in [
            ("SELECT * FROM synthetic(run_time => 'soon')", "run_time"),
            ("SELECT * FROM synthetic(tasks => 0)", "tasks must be between"),
            ("SELECT * FROM synthetic(rows => 2000000)", "rows must be at most"),
            ("SELECT * FROM synthetic(speed => 1)", "unknown argument speed"),
            ("SELECT * FROM synthetic(memory => '2GB', peak_memory => '1GB')", "peak_memory must be at least memory"),
            ("SELECT * FROM synthetic('1s')", "named arguments"),
            ("SELECT * FROM synthetic(tasks => 1, tasks => 2)", "twice"),
            ("SELECT nope FROM synthetic(tasks => 1)", "nope"),
        ] {
            let error = parse(sql).unwrap_err();
            assert!(error.message.contains(expected), "{sql}: {}", error.message);
        }
    }
}
