//! One query as its coordinator holds it: lifecycle, buffered result rows, and the pages of the
//! client protocol. Pure: no I/O; the HTTP handlers and the execution driver call into it.
//!
//! Paging follows Presto: the `POST` answer points at `queued/{id}/1`; queued tokens may repeat the
//! last one or step by one; once the query leaves the queue the next URI is `executing/{id}/0`.
//! Executing token `n` returns page `n`; asking for the same token again returns the same page
//! (so client retries are safe), asking for an older one is `410 Gone`.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;

use crate::protocol::results::QueryError;
use crate::protocol::{Column, QueryFailure, QueryResults, SessionContext, StatementStats};
use crate::sql::{Plan, QueryType};
use crate::wire::{QueryState, QuerySummary};

/// Rows per result page (Presto targets ~1 MB pages; synthetic rows are ~40 bytes).
pub const PAGE_ROWS_MAX: usize = 4096;
/// Leaf tasks a query lists (and counts as splits); a plan with more still runs them all.
pub const LEAF_TASKS_LISTED_MAX: usize = 10_000;
/// SQL text kept in summaries sent to RMs.
const SUMMARY_SQL_CHARS_MAX: usize = 1000;

#[derive(Debug, PartialEq, Eq)]
pub enum PageError {
    /// The token is older than the last page served: 410.
    Gone,
    /// Unknown token or wrong slug: 404.
    NotFound,
}

#[derive(Debug)]
pub struct Query {
    pub id: String,
    pub slug: String,
    pub session: SessionContext,
    pub sql: String,
    pub query_type: Option<QueryType>,
    pub plan: Plan,
    pub group: String,
    pub state: QueryState,
    pub failure: Option<QueryFailure>,
    pub created_ms: u64,
    pub created_wall_ms: u64,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub last_client_access_ms: u64,
    pub columns: Vec<Column>,
    buffered: VecDeque<Vec<Value>>,
    pub rows_produced: u64,
    pub tasks_total: u32,
    pub tasks_done: u32,
    /// A SQL query's leaf tasks (at most [`LEAF_TASKS_LISTED_MAX`]): where each ran, and
    /// whether its output was all read.
    pub leaf_tasks: std::collections::BTreeMap<String, (String, bool)>,
    /// Planned: every task at its peak (known before the query runs).
    pub memory_bytes: u64,
    /// What each task holds now, as its worker last reported (by task index).
    task_reserved_bytes: std::collections::BTreeMap<u32, u64>,
    pub peak_reserved_bytes: u64,
    queued_token: u64,
    executing: Option<(u64, QueryResults)>,
    /// The client was handed a page without `nextUri`: it has seen how the query ended.
    pub final_page_served: bool,
    /// Woken on every change a long-polling client may be waiting for.
    pub changed: Arc<tokio::sync::Notify>,
    /// Woken once when the query must stop (cancel, abandonment, kill).
    pub cancel: Arc<tokio::sync::Notify>,
}

pub struct NewQuery {
    pub id: String,
    pub slug: String,
    pub session: SessionContext,
    pub sql: String,
    pub query_type: Option<QueryType>,
    pub plan: Plan,
    pub group: String,
    pub now_ms: u64,
    pub wall_ms: u64,
}

impl Query {
    pub fn new(new: NewQuery) -> Query {
        let columns = match &new.plan {
            Plan::Constant { columns, .. } => columns.clone(),
            Plan::Synthetic(spec) => spec.columns.iter().map(|column| column.column()).collect(),
            // Known once the engine planned the statement (`set_columns`).
            Plan::Sql(_) => Vec::new(),
        };
        let (tasks_total, memory_bytes) = match &new.plan {
            Plan::Constant { .. } | Plan::Sql(_) => (0, 0),
            Plan::Synthetic(spec) => (spec.tasks, spec.task_peak_memory_bytes.saturating_mul(u64::from(spec.tasks))),
        };
        Query {
            id: new.id,
            slug: new.slug,
            session: new.session,
            sql: new.sql,
            query_type: new.query_type,
            plan: new.plan,
            group: new.group,
            state: QueryState::Queued,
            failure: None,
            created_ms: new.now_ms,
            created_wall_ms: new.wall_ms,
            started_ms: None,
            ended_ms: None,
            last_client_access_ms: new.now_ms,
            columns,
            buffered: VecDeque::new(),
            rows_produced: 0,
            tasks_total,
            tasks_done: 0,
            leaf_tasks: Default::default(),
            memory_bytes,
            task_reserved_bytes: Default::default(),
            peak_reserved_bytes: 0,
            queued_token: 0,
            executing: None,
            final_page_served: false,
            changed: Arc::new(tokio::sync::Notify::new()),
            cancel: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn is_done(&self) -> bool {
        self.state.is_done()
    }

    /// Records what one task holds now; returns the query's total across its workers.
    pub fn set_task_reserved_bytes(&mut self, task_index: u32, bytes: u64) -> u64 {
        self.task_reserved_bytes.insert(task_index, bytes);
        let total = self.reserved_bytes();
        self.peak_reserved_bytes = self.peak_reserved_bytes.max(total);
        total
    }

    pub fn reserved_bytes(&self) -> u64 {
        if self.is_done() {
            return 0;
        }
        self.task_reserved_bytes.values().sum()
    }

    pub fn mark_running(&mut self, now_ms: u64) {
        assert_eq!(self.state, QueryState::Queued, "only a queued query starts");
        self.state = QueryState::Running;
        self.started_ms = Some(now_ms);
        self.changed.notify_waiters();
    }

    /// Appends rows produced by a task (already in the full column order of the plan).
    pub fn push_rows(&mut self, rows: Vec<Vec<Value>>) {
        assert!(!self.is_done(), "rows after the query ended");
        self.rows_produced += rows.len() as u64;
        self.buffered.extend(rows);
        self.changed.notify_waiters();
    }

    /// A leaf task was created (`done: false`) or its output was all read (`done: true`).
    pub fn leaf_task(&mut self, task_id: String, node_id: String, done: bool) {
        if done {
            if let Some((_, task_done)) = self.leaf_tasks.get_mut(&task_id).filter(|(_, task_done)| !*task_done) {
                *task_done = true;
                self.task_done();
            }
        } else if self.leaf_tasks.len() < LEAF_TASKS_LISTED_MAX && !self.leaf_tasks.contains_key(&task_id) {
            self.leaf_tasks.insert(task_id, (node_id, false));
            self.tasks_total += 1;
            self.changed.notify_waiters();
        }
    }

    /// The engine planned the statement: its result columns.
    pub fn set_columns(&mut self, columns: Vec<Column>) {
        self.columns = columns;
        self.changed.notify_waiters();
    }

    /// Rows produced but not yet handed to the client.
    pub fn buffered_rows(&self) -> usize {
        self.buffered.len()
    }

    pub fn task_done(&mut self) {
        self.tasks_done += 1;
        assert!(self.tasks_done <= self.tasks_total.max(1));
        self.changed.notify_waiters();
    }

    pub fn finish(&mut self, now_ms: u64) {
        if self.is_done() {
            return;
        }
        self.state = QueryState::Finished;
        self.ended_ms = Some(now_ms);
        self.changed.notify_waiters();
    }

    /// Fails the query (no-op when it already ended). Buffered rows are dropped: a failed query
    /// returns no more data, and holding it would only cost memory.
    pub fn fail(&mut self, failure: QueryFailure, now_ms: u64) -> bool {
        if self.is_done() {
            return false;
        }
        self.state = QueryState::Failed;
        self.failure = Some(failure);
        self.ended_ms = Some(now_ms);
        self.buffered.clear();
        self.changed.notify_waiters();
        self.cancel.notify_one();
        true
    }

    /// A finished query whose client stopped reading before the end: its unread rows are dropped
    /// and it ends as `failure` (abandoned) instead, so a client that never comes back does not
    /// hold its results for `query.min-expire-age`. False (nothing done) otherwise.
    pub fn abandon_unread_results(&mut self, failure: QueryFailure) -> bool {
        if self.state != QueryState::Finished || self.buffered.is_empty() {
            return false;
        }
        self.state = QueryState::Failed;
        self.failure = Some(failure);
        self.buffered = VecDeque::new(); // release the memory, not just the rows
        self.changed.notify_waiters();
        true
    }

    /// True when a long-polling client on the executing path has something new to see.
    pub fn has_news_for_executing(&self) -> bool {
        self.is_done() || !self.buffered.is_empty()
    }

    pub fn queued_page(&mut self, token: u64, base_uri: &str, now_ms: u64) -> Result<QueryResults, PageError> {
        if token < self.queued_token {
            return Err(PageError::Gone);
        }
        if token > self.queued_token + 1 {
            return Err(PageError::NotFound);
        }
        self.queued_token = token;
        self.last_client_access_ms = now_ms;
        let next_uri = match (self.state, &self.failure) {
            (QueryState::Queued, _) => Some(format!("{base_uri}/v1/statement/queued/{}/{}?slug={}", self.id, token + 1, self.slug)),
            (QueryState::Failed, Some(_)) if self.executing.is_none() => None,
            _ => Some(format!("{base_uri}/v1/statement/executing/{}/0?slug={}", self.id, self.slug)),
        };
        let mut page = self.results(base_uri, next_uri, now_ms);
        if page.next_uri.is_some() {
            page.error = None;
        }
        self.final_page_served |= page.next_uri.is_none();
        Ok(page)
    }

    pub fn executing_page(&mut self, token: u64, base_uri: &str, now_ms: u64) -> Result<QueryResults, PageError> {
        self.last_client_access_ms = now_ms;
        let expected = match &self.executing {
            Some((last, page)) if *last == token => return Ok(page.clone()),
            Some((last, _)) if token < *last => return Err(PageError::Gone),
            Some((last, _)) => last + 1,
            None => 0,
        };
        if token != expected {
            return Err(PageError::NotFound);
        }
        let take = self.buffered.len().min(PAGE_ROWS_MAX);
        let drained: Vec<Vec<Value>> = self.buffered.drain(..take).collect();
        let rows: Vec<Vec<Value>> = drained.into_iter().map(|row| self.project(row)).collect();
        let more = !self.is_done() || !self.buffered.is_empty();
        let next_uri = more.then(|| format!("{base_uri}/v1/statement/executing/{}/{}?slug={}", self.id, token + 1, self.slug));
        let mut page = self.results(base_uri, next_uri, now_ms);
        // A SQL statement's columns are known once planned; until then pages carry none (the
        // clients read them from the first page that has them).
        if !self.columns.is_empty() || !matches!(self.plan, Plan::Sql(_)) {
            page.columns = Some(self.columns.clone());
        }
        if !rows.is_empty() {
            page.data = Some(rows);
        }
        self.executing = Some((token, page.clone()));
        self.final_page_served |= page.next_uri.is_none();
        Ok(page)
    }

    /// A synthetic task produces `[task, row, worker]`; the client asked for some of them.
    fn project(&self, row: Vec<Value>) -> Vec<Value> {
        match &self.plan {
            Plan::Constant { .. } | Plan::Sql(_) => row,
            Plan::Synthetic(spec) => {
                spec.columns.iter().map(|column| row.get(column.position()).cloned().unwrap_or(Value::Null)).collect()
            }
        }
    }

    /// The page every path shares: id, URIs, stats and, once failed and final, the error.
    fn results(&self, base_uri: &str, next_uri: Option<String>, now_ms: u64) -> QueryResults {
        // While pages remain to be read, Presto reports the query as still running.
        let state = match self.state {
            QueryState::Finished if next_uri.is_some() => "RUNNING",
            QueryState::Failed if next_uri.is_some() => "RUNNING",
            state => state.name(),
        };
        let error = match (&self.failure, &next_uri) {
            (Some(failure), None) => Some(QueryError::from(failure)),
            _ => None,
        };
        QueryResults {
            id: self.id.clone(),
            info_uri: format!("{base_uri}/ui/query.html?{}", self.id),
            next_uri,
            columns: None,
            data: None,
            stats: self.stats(state, now_ms),
            error,
            warnings: Vec::new(),
            update_type: None,
        }
    }

    fn stats(&self, state: &str, now_ms: u64) -> StatementStats {
        let end_ms = self.ended_ms.unwrap_or(now_ms);
        let queued_until_ms = self.started_ms.or(self.ended_ms).unwrap_or(now_ms);
        let progress = if self.tasks_total == 0 {
            if self.is_done() { 100.0 } else { 0.0 }
        } else {
            100.0 * f64::from(self.tasks_done) / f64::from(self.tasks_total)
        };
        StatementStats {
            state: state.to_string(),
            queued: self.state == QueryState::Queued,
            scheduled: self.started_ms.is_some(),
            nodes: self.tasks_total.max(1),
            total_splits: self.tasks_total,
            queued_splits: 0,
            running_splits: self.tasks_total.saturating_sub(self.tasks_done) * u32::from(self.state == QueryState::Running),
            completed_splits: self.tasks_done,
            cpu_time_millis: 0,
            wall_time_millis: end_ms.saturating_sub(self.started_ms.unwrap_or(end_ms)),
            queued_time_millis: queued_until_ms.saturating_sub(self.created_ms),
            elapsed_time_millis: end_ms.saturating_sub(self.created_ms),
            processed_rows: self.rows_produced,
            processed_bytes: 0,
            peak_memory_bytes: self.peak_reserved_bytes,
            peak_total_memory_bytes: self.peak_reserved_bytes,
            spilled_bytes: 0,
            progress_percentage: progress,
        }
    }

    /// CPU the query's tasks spent: a synthetic task is busy for its whole run time.
    pub fn cpu_ms(&self) -> u64 {
        match &self.plan {
            Plan::Synthetic(spec) => spec.run_time_ms.saturating_mul(u64::from(spec.tasks)),
            Plan::Constant { .. } | Plan::Sql(_) => 0,
        }
    }

    pub fn summary(&self) -> QuerySummary {
        QuerySummary {
            query_id: self.id.clone(),
            group: self.group.clone(),
            state: self.state,
            user: self.session.user.clone(),
            source: self.session.source.clone(),
            query: self.sql.chars().take(SUMMARY_SQL_CHARS_MAX).collect(),
            memory_bytes: self.reserved_bytes(),
            created_wall_ms: self.created_wall_ms,
            error_name: self.failure.as_ref().map(|failure| failure.code.name.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::errors::USER_CANCELED;
    use crate::protocol::session::HeaderDialect;
    use std::collections::BTreeMap;

    fn query(sql: &str) -> Query {
        let parsed = crate::sql::parse(sql).unwrap();
        Query::new(NewQuery {
            id: "20261121_000000_00001_abcde".into(),
            slug: "xslug".into(),
            session: SessionContext {
                dialect: HeaderDialect::Presto,
                user: "alice".into(),
                source: None,
                catalog: None,
                schema: None,
                client_tags: vec![],
                properties: BTreeMap::new(),
            },
            sql: sql.into(),
            query_type: parsed.query_type,
            plan: parsed.plan,
            group: "global".into(),
            now_ms: 0,
            wall_ms: 0,
        })
    }

    const BASE: &str = "http://c1:8080";

    #[test]
    fn pages_walk_from_queued_to_executing_and_repeat_safely() {
        let mut query = query("SELECT row FROM synthetic(tasks => 1, rows => 5000)");
        let page = query.queued_page(1, BASE, 1).unwrap();
        assert_eq!(page.stats.state, "QUEUED");
        assert!(page.next_uri.as_deref().unwrap().contains("/queued/20261121_000000_00001_abcde/2?slug=xslug"));
        assert_eq!(query.queued_page(1, BASE, 2).unwrap().stats.state, "QUEUED", "same token again is fine");
        assert_eq!(query.queued_page(5, BASE, 2).unwrap_err(), PageError::NotFound);
        query.mark_running(3);
        let page = query.queued_page(2, BASE, 4).unwrap();
        assert!(page.next_uri.unwrap().ends_with("/executing/20261121_000000_00001_abcde/0?slug=xslug"));

        let page0 = query.executing_page(0, BASE, 5).unwrap();
        assert!(page0.data.is_none(), "no rows yet: data omitted, not empty");
        assert_eq!(page0.columns.as_ref().unwrap()[0].name, "row");
        let rows = crate::sql::synthetic::generate_rows(0, 0, 5000, "w1");
        query.push_rows(rows);
        query.task_done();
        query.finish(6);
        let page1 = query.executing_page(1, BASE, 7).unwrap();
        assert_eq!(page1.data.as_ref().unwrap().len(), PAGE_ROWS_MAX);
        assert_eq!(page1.data.as_ref().unwrap()[1], vec![serde_json::json!(1)], "projected to the row column");
        assert_eq!(page1.stats.state, "RUNNING", "more pages follow");
        let again = query.executing_page(1, BASE, 8).unwrap();
        assert_eq!(again.data, page1.data, "a retried token returns the same page");
        assert_eq!(query.executing_page(0, BASE, 9).unwrap_err(), PageError::Gone);
        let last = query.executing_page(2, BASE, 10).unwrap();
        assert_eq!(last.data.unwrap().len(), 5000 - PAGE_ROWS_MAX);
        assert!(last.next_uri.is_none());
        assert_eq!(last.stats.state, "FINISHED");
    }

    #[test]
    fn failures_end_paging_with_the_error() {
        let mut query = query("SELECT * FROM synthetic(tasks => 2)");
        assert!(query.fail(QueryFailure::new(USER_CANCELED, "Query was canceled"), 5));
        assert!(!query.fail(QueryFailure::new(USER_CANCELED, "again"), 6), "first failure wins");
        let page = query.queued_page(1, BASE, 7).unwrap();
        assert!(page.next_uri.is_none());
        assert_eq!(page.error.unwrap().error_name, "USER_CANCELED");
        assert_eq!(page.stats.state, "FAILED");
    }
}
