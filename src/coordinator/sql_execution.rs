//! Runs a SQL statement: the engine plans it on this coordinator against the active workers,
//! its scans run as leaf tasks on the workers (one per split, placed round-robin from the
//! query's schedule cursor), and its result is handed to the query manager batch by batch.
//!
//! The manager bounds nothing about how fast a plan produces rows, so this driver does: it waits
//! while more than [`BUFFERED_ROWS_MAX`] rows wait for the client, which in turn holds back the
//! plan and, through the bounded page channels, the leaf drivers.

#[cfg(not(madsim))]
pub use production::run;

/// Rows that may wait for the client before the plan is held back (four full pages).
#[cfg(not(madsim))]
const BUFFERED_ROWS_MAX: usize = 4 * super::query::PAGE_ROWS_MAX;

/// The simulation has no SQL engine: `sql::parse` never plans a statement for it.
#[cfg(madsim)]
pub async fn run(_coordinator: &super::Coordinator, _query_id: &str, _sql: &str) -> Result<(), crate::protocol::QueryFailure> {
    Err(crate::protocol::QueryFailure::new(crate::protocol::errors::NOT_SUPPORTED, "the simulation has no SQL engine"))
}

#[cfg(not(madsim))]
mod production {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::http::Method;
    use bytes::Bytes;
    use futures::StreamExt;
    use tokio::sync::mpsc;

    use super::super::execution::wait_for_workers;
    use super::super::remote_task::{self, TaskDriver};
    use super::super::manager::Input;
    use super::super::{scheduler, Coordinator};
    use super::BUFFERED_ROWS_MAX;
    use crate::engine::{self, LeafRunner, NodeRow, QueryContext};
    use crate::protocol::errors::{GENERIC_INTERNAL_ERROR, REMOTE_TASK_ERROR};
    use crate::protocol::QueryFailure;
    use crate::runtime::http_client::Request;
    use crate::runtime::sim_hooks::MessageKind;
    use crate::wire::{paths, LeafFragment, TaskRequest, WorkerView};

    /// Other workers tried when a leaf task cannot be created on its first choice.
    const PLACEMENT_FALLBACKS_MAX: usize = 2;
    /// Output pages a leaf driver fetches ahead of the plan.
    const PAGES_AHEAD: usize = 2;
    /// How often a driver held back by the client's buffer looks again.
    const BUFFER_POLL_MS: u64 = 10;

    pub async fn run(coordinator: &Coordinator, query_id: &str, sql: &str) -> Result<(), QueryFailure> {
        let workers = wait_for_workers(coordinator).await?;
        let session = coordinator.with_manager(|manager| manager.query(query_id).map(|query| query.session.clone()));
        let Some(session) = session else { return Ok(()) };
        let cursor = coordinator.with_manager(|manager| manager.advance_schedule_cursor(workers.len() as u32));
        let mut nodes: Vec<NodeRow> =
            workers.iter().map(|worker| NodeRow { node_id: worker.node_id.clone(), http_uri: worker.uri.clone(), coordinator: false }).collect();
        nodes.push(NodeRow { node_id: coordinator.node_id().to_string(), http_uri: coordinator.config().self_uri(), coordinator: true });
        let runner = Arc::new(Runner {
            io: tokio::runtime::Handle::current(),
            coordinator: coordinator.clone(),
            query_id: query_id.to_string(),
            workers: workers.clone(),
            cursor,
            next_task: AtomicU32::new(0),
        });
        let processors = crate::runtime::available_processors() as usize;
        let context = QueryContext {
            catalog: session.catalog.clone(),
            schema: session.schema.clone(),
            workers: workers.len(),
            nodes,
            splits_per_worker: processors,
            coordinator_partitions: processors,
            memory_limit_bytes: coordinator.config().query_max_memory_per_node_bytes,
            spill_enabled: coordinator.config().spill_enabled,
            runner,
        };
        // The plan runs on the engine's threads (its joins and aggregations compute inside `poll`);
        // this driver, on the node's runtime, hands what it produces to the manager. Dropping
        // this future (the query ended) closes the channel, which stops the plan.
        let (results, mut received) = mpsc::channel::<Produced>(2);
        let sql = sql.to_string();
        let plan = crate::runtime::spawn_engine(tracing::Instrument::in_current_span(produce(sql, context, results)));
        let _stop_plan = AbortOnDrop(plan);
        while let Some(produced) = received.recv().await {
            match produced {
                Produced::Columns(columns) => {
                    coordinator.apply(Input::Columns { query_id: query_id.to_string(), columns });
                }
                Produced::Rows(rows) => {
                    if !wait_for_buffer_room(coordinator, query_id).await {
                        return Ok(()); // the query ended meanwhile
                    }
                    coordinator.apply(Input::TaskOutput { query_id: query_id.to_string(), rows, task_done: false });
                }
                Produced::Failed(failure) => return Err(failure),
            }
        }
        Ok(())
    }

    enum Produced {
        Columns(Vec<crate::protocol::Column>),
        Rows(Vec<Vec<serde_json::Value>>),
        Failed(QueryFailure),
    }

    struct AbortOnDrop(tokio::task::JoinHandle<()>);

    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    /// Plans and runs the statement, sending its columns and then its rows; stops when the
    /// receiver is gone.
    async fn produce(sql: String, context: QueryContext, results: mpsc::Sender<Produced>) {
        let mut output = match engine::execute(&sql, context).await {
            Ok(output) => output,
            Err(failure) => {
                let _ = results.send(Produced::Failed(failure)).await;
                return;
            }
        };
        if results.send(Produced::Columns(std::mem::take(&mut output.columns))).await.is_err() {
            return;
        }
        while let Some(batch) = output.batches.next().await {
            let produced = match batch {
                Ok(batch) if batch.num_rows() == 0 => continue,
                Ok(batch) => match engine::values::rows(&batch) {
                    Ok(rows) => Produced::Rows(rows),
                    Err(message) => Produced::Failed(QueryFailure::new(GENERIC_INTERNAL_ERROR, message)),
                },
                Err(error) => Produced::Failed(engine::errors::failure(&error)),
            };
            let failed = matches!(produced, Produced::Failed(_));
            if results.send(produced).await.is_err() || failed {
                return;
            }
        }
    }

    /// Waits while the client has not read enough; `false` once the query ended.
    async fn wait_for_buffer_room(coordinator: &Coordinator, query_id: &str) -> bool {
        loop {
            let buffered = coordinator.with_manager(|manager| {
                manager.query(query_id).filter(|query| !query.is_done()).map(|query| query.buffered_rows())
            });
            match buffered {
                None => return false,
                Some(rows) if rows <= BUFFERED_ROWS_MAX => return true,
                Some(_) => crate::runtime::sleep_ms(BUFFER_POLL_MS).await,
            }
        }
    }

    /// Runs a query's leaf fragments as tasks on the workers.
    struct Runner {
        /// The node's runtime, where leaf drivers (HTTP, no computing) run.
        io: tokio::runtime::Handle,
        coordinator: Coordinator,
        query_id: String,
        workers: Vec<WorkerView>,
        cursor: u64,
        next_task: AtomicU32,
    }

    impl std::fmt::Debug for Runner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Runner").field("query_id", &self.query_id).field("workers", &self.workers.len()).finish()
        }
    }

    impl LeafRunner for Runner {
        fn run(&self, fragment: LeafFragment) -> mpsc::Receiver<Result<Bytes, QueryFailure>> {
            let (pages, receiver) = mpsc::channel(PAGES_AHEAD);
            let task_index = self.next_task.fetch_add(1, Ordering::Relaxed);
            let candidates = scheduler::place(&self.workers, 1, self.cursor + u64::from(fragment.split), PLACEMENT_FALLBACKS_MAX)
                .pop()
                .unwrap_or_default();
            let request = TaskRequest {
                query_id: self.query_id.clone(),
                coordinator_id: self.coordinator.node_id().to_string(),
                task_index,
                run_time_ms: 0,
                memory_bytes: 0,
                peak_memory_bytes: 0,
                first_row: 0,
                row_count: 0,
                fragment: Some(fragment),
            };
            let driver = TaskDriver {
                coordinator: self.coordinator.clone(),
                task: format!("{}.1.{task_index}", self.query_id),
                request,
                candidates,
            };
            self.io.spawn(tracing::Instrument::in_current_span(drive(driver, pages)));
            receiver
        }
    }

    /// Follows one leaf task to its end and forwards its pages; stops as soon as nobody reads
    /// them any more. The task is released on its worker whichever way this ends.
    async fn drive(driver: TaskDriver, pages: mpsc::Sender<Result<Bytes, QueryFailure>>) {
        let outcome = tokio::select! {
            biased;
            _ = pages.closed() => Ok(()),
            outcome = forward_pages(&driver, &pages) => outcome,
        };
        if let Err(failure) = outcome {
            let _ = pages.send(Err(failure)).await;
        }
        remote_task::cancel_attempts(&driver.coordinator, driver.attempts());
    }

    async fn forward_pages(driver: &TaskDriver, pages: &mpsc::Sender<Result<Bytes, QueryFailure>>) -> Result<(), QueryFailure> {
        let task = driver.create().await?;
        let leaf = |done| Input::LeafTask {
            query_id: driver.request.query_id.clone(),
            task_id: task.task_id.clone(),
            node_id: task.worker.node_id.clone(),
            done,
        };
        driver.coordinator.apply(leaf(false));
        let base = driver.follow(&task).await?;
        let config = driver.coordinator.config();
        let client = &driver.coordinator.context().client;
        let mut token = 0usize;
        loop {
            let url = format!("{base}/results/0/{token}");
            let request = Request::new(Method::GET, &url, MessageKind::TaskResults).timeout_ms(config.request_timeout_ms).retries(3);
            let response = client.send(request).await.map_err(|error| {
                QueryFailure::new(REMOTE_TASK_ERROR, format!("Could not fetch page {token} of task {}: {error}", task.task_id))
            })?;
            if response.status != 200 {
                let body = String::from_utf8_lossy(&response.body);
                return Err(QueryFailure::new(
                    REMOTE_TASK_ERROR,
                    format!("Page {token} of task {} was refused ({}): {body}", task.task_id, response.status),
                ));
            }
            let count: usize = response.header(paths::RESULTS_PAGE_COUNT_HEADER).and_then(|value| value.parse().ok()).ok_or_else(|| {
                QueryFailure::new(REMOTE_TASK_ERROR, format!("task {} sent a page without its page count", task.task_id))
            })?;
            if token == 0 {
                driver.record_consumed(&task);
            }
            if pages.send(Ok(response.body)).await.is_err() {
                return Ok(()); // the plan stopped reading
            }
            token += 1;
            if token >= count {
                driver.coordinator.apply(leaf(true));
                return Ok(());
            }
        }
    }
}
