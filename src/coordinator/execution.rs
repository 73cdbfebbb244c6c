//! Runs a started query: constant selects answer at once; synthetic queries become tasks on
//! workers, which are created, polled (the poll doubles as the keep-alive workers expect) and
//! drained of their rows. Rows are handed to the query as each task finishes, so clients see data
//! while other tasks still run.
//!
//! The driver decides nothing about the query itself: rows, memory and the outcome go to the query
//! manager as inputs, and a query the manager ended (cancel, kill, a limit) stops its driver
//! through the query's cancel handle.
//!
//! Everything here runs inside the query's tracing span (see `Coordinator::apply`), so every
//! log line carries the query id.

use tokio::sync::mpsc;

use super::manager::Input;
use super::remote_task::{self, TaskDriver};
use super::{scheduler, Coordinator};
use crate::protocol::errors::{NO_NODES_AVAILABLE, REMOTE_TASK_ERROR};
use crate::protocol::QueryFailure;
use crate::sql::{Plan, SyntheticSpec};
use crate::wire::{TaskRequest, WorkerView};

/// Other workers tried when a task cannot be created on its first choice.
const PLACEMENT_FALLBACKS_MAX: usize = 2;
/// How often a query waiting for its first worker looks again.
const WORKER_WAIT_POLL_MS: u64 = 100;

pub async fn execute(coordinator: Coordinator, query_id: String) {
    let Some((plan, cancel)) =
        coordinator.with_manager(|manager| manager.query(&query_id).map(|query| (query.plan.clone(), query.cancel.clone())))
    else {
        return;
    };
    let result = match plan {
        Plan::Constant { row, .. } => {
            coordinator.apply(Input::TaskOutput { query_id: query_id.clone(), rows: vec![row], task_done: false });
            Ok(())
        }
        Plan::Synthetic(spec) => {
            tokio::select! {
                biased;
                result = run_synthetic(&coordinator, &query_id, &spec) => result,
                _ = cancel.notified() => Ok(()), // the query already ended; tasks are cancelled below
            }
        }
        Plan::Sql(sql) => {
            tokio::select! {
                biased;
                result = super::sql_execution::run(&coordinator, &query_id, &sql) => result,
                // The query already ended: dropping the plan drops its leaf drivers, which cancel
                // their tasks on the workers.
                _ = cancel.notified() => Ok(()),
            }
        }
    };
    coordinator.apply(Input::ExecutionEnded { query_id, outcome: result });
}

async fn run_synthetic(coordinator: &Coordinator, query_id: &str, spec: &SyntheticSpec) -> Result<(), QueryFailure> {
    let workers = wait_for_workers(coordinator).await?;
    let cursor = coordinator.with_manager(|manager| manager.advance_schedule_cursor(spec.tasks));
    let placement = scheduler::place(&workers, spec.tasks, cursor, PLACEMENT_FALLBACKS_MAX);
    let (results_tx, mut results_rx) = mpsc::channel(spec.tasks as usize);
    let mut task_handles = TaskCleanup { coordinator: coordinator.clone(), created: Vec::new(), drivers: Vec::new() };
    for (task_index, candidates) in placement.into_iter().enumerate() {
        let task_index = task_index as u32;
        let (first_row, row_count) = spec.task_rows(task_index);
        let request = TaskRequest {
            query_id: query_id.to_string(),
            coordinator_id: coordinator.node_id().to_string(),
            task_index,
            run_time_ms: spec.run_time_ms,
            memory_bytes: spec.task_memory_bytes,
            peak_memory_bytes: spec.task_peak_memory_bytes,
            first_row,
            row_count,
            fragment: None,
        };
        let driver = TaskDriver { coordinator: coordinator.clone(), task: format!("{query_id}.0.{task_index}"), request, candidates };
        task_handles.created.extend(driver.attempts());
        let results_tx = results_tx.clone();
        // Spawned tasks do not inherit the span by themselves; this one is the query's work too.
        task_handles.drivers.push(crate::runtime::spawn(tracing::Instrument::in_current_span(async move {
            let outcome = driver.run_to_rows().await;
            let _ = results_tx.send(outcome).await;
        })));
    }
    drop(results_tx);
    let mut remaining = spec.tasks;
    let outcome = loop {
        if remaining == 0 {
            break Ok(());
        }
        match results_rx.recv().await {
            Some(Ok(rows)) => {
                remaining -= 1;
                coordinator.apply(Input::TaskOutput { query_id: query_id.to_string(), rows, task_done: true });
            }
            Some(Err(failure)) => break Err(failure),
            None => break Err(QueryFailure::new(REMOTE_TASK_ERROR, "task drivers ended without a result")),
        }
    };
    if outcome.is_ok() {
        task_handles.created.clear(); // finished tasks were already released by their drivers
    }
    outcome
}

/// Stops the query's task drivers and cancels its tasks on their workers when execution ends
/// early (failure, cancel or kill — also when the execution future is dropped mid-way). The
/// drivers must stop first: one left running would keep polling, and so keep alive, a task the
/// cancel just removed — or create it after the cancel. (Workers also refuse a create for a task
/// they already cancelled, for a create that was in flight.)
struct TaskCleanup {
    coordinator: Coordinator,
    /// Every attempt of every task, with the worker it goes to.
    created: Vec<(WorkerView, String)>,
    drivers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TaskCleanup {
    fn drop(&mut self) {
        for driver in &self.drivers {
            driver.abort();
        }
        remote_task::cancel_attempts(&self.coordinator, std::mem::take(&mut self.created));
    }
}

/// Waits (bounded by `query-manager.required-workers-max-wait`) until the RM view lists a worker.
pub(super) async fn wait_for_workers(coordinator: &Coordinator) -> Result<Vec<WorkerView>, QueryFailure> {
    let deadline_ms = coordinator.now_ms() + coordinator.config().required_workers_max_wait_ms;
    loop {
        let workers = coordinator.with_manager(|manager| manager.workers());
        if !workers.is_empty() {
            return Ok(workers);
        }
        if coordinator.now_ms() >= deadline_ms {
            return Err(QueryFailure::new(NO_NODES_AVAILABLE, "No worker nodes available"));
        }
        crate::runtime::sleep_ms(WORKER_WAIT_POLL_MS).await;
    }
}

