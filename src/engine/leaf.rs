//! The worker's side of SQL: a leaf task scans one split of a table and runs the SQL the
//! coordinator pushed into the scan (columns, filters, limit) over it, then keeps the output as
//! Arrow IPC pages until the coordinator fetches them. Every page is reserved in the worker's
//! memory pool before it is kept, so a leaf task's output is what the RMs see, what
//! `query.max-memory-per-node` limits and what blocks a full node.
//!
//! Synthetic tasks (no fragment) go to the synthetic engine: one executor serves both.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::tpch::{self, ColumnNaming, SplitReader};
use crate::protocol::QueryFailure;
use crate::wire::{LeafFragment, TaskRejection, TaskRequest};
use crate::worker::executor::{Executor, Outcome, Run, TaskHandle};
use crate::worker::synthetic::SyntheticExecutor;
use crate::worker::tasks::TaskOutput;

/// Batches are gathered into pages of about this size (Presto's default page is 1 MB).
const PAGE_BYTES_TARGET: usize = 1024 * 1024;

/// The worker's executor: SQL leaf tasks on DataFusion, synthetic tasks on the synthetic engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeafExecutor;

impl Executor for LeafExecutor {
    fn run(&self, request: TaskRequest, task: TaskHandle) -> Run {
        match request.fragment.clone() {
            None => SyntheticExecutor.run(request, task),
            // On the engine's threads: a scan computes inside `poll` (see `runtime::spawn_engine`).
            Some(fragment) => Box::pin(async move {
                let task_id = task.task_id().to_string();
                match crate::runtime::spawn_engine(tracing::Instrument::in_current_span(run(fragment, task))).await {
                    Ok(outcome) => outcome,
                    Err(error) => Outcome::Failed(TaskRejection {
                        error_name: crate::protocol::errors::GENERIC_INTERNAL_ERROR.name.to_string(),
                        message: format!("leaf task {task_id} stopped: {error}"),
                    }),
                }
            }),
        }
    }
}

async fn run(fragment: LeafFragment, task: TaskHandle) -> Outcome {
    if !task.wait_for_memory().await {
        return Outcome::Ended;
    }
    match pages(&fragment, &task).await {
        Ok(Some(pages)) => Outcome::Finished(TaskOutput::Pages(pages)),
        Ok(None) => Outcome::Ended,
        Err(failure) => {
            tracing::info!(task_id = task.task_id(), error = %failure, "leaf task failed");
            Outcome::Failed(TaskRejection { error_name: failure.code.name.to_string(), message: failure.message })
        }
    }
}

/// Runs the fragment to its end: `None` if the task ended meanwhile (cancelled, or its memory
/// would pass the per-node limit, which the table reports itself).
async fn pages(fragment: &LeafFragment, task: &TaskHandle) -> Result<Option<Vec<Bytes>>, QueryFailure> {
    let table: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(split_table(fragment)?);
    // The coordinator's dialect (decimal literals above all), one thread per task (a worker runs
    // many), and the split under its own name as well as `split`: a pushed-down scan reads
    // `FROM split`, a partial aggregation is the coordinator's plan written back to SQL, which
    // names the table as the query did.
    let config = super::config(Some(&fragment.catalog), Some(&fragment.schema), 1);
    // The operators' own memory (a partial aggregation's hash table) is bounded by the per-node
    // limit too; the output pages are reserved in the worker's pool below.
    let runtime = super::memory_limited_runtime(task.memory_limit_bytes(), false).map_err(|error| super::errors::failure(&error))?;
    let context = SessionContext::new_with_config_rt(config, runtime);
    let failure = |error: datafusion::error::DataFusionError| super::errors::failure(&error);
    let schema = datafusion::catalog::MemorySchemaProvider::new();
    datafusion::catalog::SchemaProvider::register_table(&schema, fragment.table.clone(), table.clone()).map_err(failure)?;
    datafusion::catalog::SchemaProvider::register_table(&schema, "split".to_string(), table).map_err(failure)?;
    let catalog = datafusion::catalog::MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, &fragment.schema, Arc::new(schema)).map_err(failure)?;
    context.register_catalog(&fragment.catalog, Arc::new(catalog));
    let frame = context.sql_with_options(&fragment.sql, super::read_only()).await.map_err(|error| super::errors::failure(&error))?;
    let mut stream = frame.execute_stream().await.map_err(|error| super::errors::failure(&error))?;
    let schema = stream.schema();
    let mut pages = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_bytes = 0;
    while let Some(batch) = stream.next().await {
        if task.is_ended() {
            return Ok(None);
        }
        let batch = batch.map_err(|error| super::errors::failure(&error))?;
        if batch.num_rows() == 0 {
            continue;
        }
        pending_bytes += batch.get_array_memory_size();
        pending.push(batch);
        if pending_bytes >= PAGE_BYTES_TARGET {
            let page = encode(&schema, &std::mem::take(&mut pending))?;
            pending_bytes = 0;
            if !task.reserve(page.len() as u64).await {
                return Ok(None);
            }
            pages.push(page);
        }
    }
    // The last page; an empty output still has one page, which carries the schema.
    if !pending.is_empty() || pages.is_empty() {
        let page = encode(&schema, &pending)?;
        if !task.reserve(page.len() as u64).await {
            return Ok(None);
        }
        pages.push(page);
    }
    Ok(Some(pages))
}

fn split_table(fragment: &LeafFragment) -> Result<StreamingTable, QueryFailure> {
    let invalid = |message: String| QueryFailure::new(crate::protocol::errors::GENERIC_INTERNAL_ERROR, message);
    if fragment.catalog != tpch::CATALOG {
        return Err(invalid(format!("this worker has no connector for catalog '{}'", fragment.catalog)));
    }
    let scale_factor =
        tpch::scale_factor(&fragment.schema).ok_or_else(|| invalid(format!("tpch has no schema '{}'", fragment.schema)))?;
    let naming = ColumnNaming::parse(&fragment.column_naming)
        .ok_or_else(|| invalid(format!("unknown tpch column naming '{}'", fragment.column_naming)))?;
    // Checked here so a bad split fails the task at once rather than inside the stream.
    let reader = SplitReader::new(&fragment.table, scale_factor, fragment.split, fragment.splits, naming).map_err(invalid)?;
    let schema = reader.schema();
    let split = Arc::new(Split { schema: schema.clone(), fragment: fragment.clone(), scale_factor, naming });
    StreamingTable::try_new(schema, vec![split]).map_err(|error| super::errors::failure(&error))
}

/// A whole tpch table in this process, one partition per split (the single-process baseline).
pub fn generated_table(table: &str, scale_factor: f64, splits: u32, naming: ColumnNaming) -> Result<StreamingTable, String> {
    let schema = tpch::schema(table, naming).ok_or_else(|| format!("tpch has no table '{table}'"))?;
    let partitions: Vec<Arc<dyn PartitionStream>> = (0..splits)
        .map(|split| {
            let fragment = LeafFragment {
                catalog: tpch::CATALOG.to_string(),
                schema: String::new(),
                table: table.to_string(),
                column_naming: String::new(),
                split,
                splits,
                sql: String::new(),
            };
            Arc::new(Split { schema: schema.clone(), fragment, scale_factor, naming }) as Arc<dyn PartitionStream>
        })
        .collect();
    StreamingTable::try_new(schema, partitions).map_err(|error| error.to_string())
}

/// One split as a DataFusion partition: generated lazily, batch by batch, as the plan pulls.
#[derive(Debug)]
struct Split {
    schema: SchemaRef,
    fragment: LeafFragment,
    scale_factor: f64,
    naming: ColumnNaming,
}

impl PartitionStream for Split {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let fragment = &self.fragment;
        let batches: Box<dyn Iterator<Item = datafusion::error::Result<RecordBatch>> + Send> =
            match SplitReader::new(&fragment.table, self.scale_factor, fragment.split, fragment.splits, self.naming) {
                Ok(reader) => Box::new(reader.map(|batch| batch.map_err(Into::into))),
                Err(message) => Box::new(std::iter::once(Err(datafusion::error::DataFusionError::Execution(message)))),
            };
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(batches)))
    }
}

/// One Arrow IPC stream: the schema, then the batches.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes, QueryFailure> {
    let mut buffer = Vec::new();
    let internal = |error: datafusion::arrow::error::ArrowError| {
        QueryFailure::new(crate::protocol::errors::GENERIC_INTERNAL_ERROR, format!("could not encode a page: {error}"))
    };
    let mut writer = StreamWriter::try_new(&mut buffer, schema).map_err(internal)?;
    for batch in batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    drop(writer);
    Ok(Bytes::from(buffer))
}
