//! The SQL engine: Apache DataFusion as the operator library, in production builds only (the
//! simulation runs the synthetic engine, and this module is not compiled under madsim).
//!
//! - [`catalogs`]: the catalogs a query sees, each with its own `information_schema`;
//! - [`tpch`]: the tpch connector's tables, generated split by split;
//! - [`leaf`]: the worker's executor: leaf tasks (scan, filter, project over one split) on
//!   DataFusion, synthetic tasks on the synthetic engine;
//! - [`partial_agg`]: aggregations over one table computed partially by the leaf tasks;
//! - [`remote`]: the coordinator's tables, whose scans run as leaf tasks on the workers;
//! - [`statements`]: Presto's statements DataFusion does not speak (`SHOW CATALOGS`, …);
//! - [`dialect`]: Presto's meaning where DataFusion reads the same SQL differently;
//! - [`names`]: result column names as Presto gives them (`_col0` for an expression);
//! - [`values`]: Arrow results as the client protocol's types and JSON;
//! - [`errors`]: DataFusion's errors in Presto's names and words;
//! - this file: running one statement.

mod catalogs;
mod dialect;
pub mod errors;
pub mod leaf;
mod names;
mod partial_agg;
pub mod remote;
mod statements;
pub mod tpch;
pub mod values;

use std::sync::Arc;

use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::protocol::QueryFailure;
pub use remote::LeafRunner;

/// The catalog a query sees when its session names none (Presto requires one for unqualified
/// names; here they fail as unknown tables).
const DEFAULT_CATALOG: &str = "system";
const DEFAULT_SCHEMA: &str = "information_schema";

/// What one statement runs with.
pub struct QueryContext {
    pub catalog: Option<String>,
    pub schema: Option<String>,
    /// Active workers now: the count splits are cut for.
    pub workers: usize,
    /// The rows of `system.runtime.nodes`.
    pub nodes: Vec<NodeRow>,
    pub splits_per_worker: usize,
    /// Threads the coordinator's part of the plan may use.
    pub coordinator_partitions: usize,
    /// What the coordinator's operators (joins, aggregation, sort) may hold for this query:
    /// `query.max-memory-per-node`, the coordinator being a node the query runs on.
    pub memory_limit_bytes: u64,
    /// `experimental.spill-enabled`: past the limit, sorts, joins and aggregations spill to disk.
    pub spill_enabled: bool,
    pub runner: Arc<dyn LeafRunner>,
}

/// A row of `system.runtime.nodes`.
#[derive(Clone, Debug)]
pub struct NodeRow {
    pub node_id: String,
    pub http_uri: String,
    pub coordinator: bool,
}

/// A running statement: its result columns (with Presto's names) and a stream of its batches.
pub struct Output {
    pub columns: Vec<crate::protocol::Column>,
    pub batches: SendableRecordBatchStream,
}

/// Plans `sql` and starts it. Leaf scans start as the stream is pulled.
pub async fn execute(sql: &str, context: QueryContext) -> Result<Output, QueryFailure> {
    let config = config(context.catalog.as_deref(), context.schema.as_deref(), context.coordinator_partitions);
    let runtime = memory_limited_runtime(context.memory_limit_bytes, context.spill_enabled).map_err(|error| errors::failure(&error))?;
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_optimizer_rule(std::sync::Arc::new(partial_agg::PartialAggregation))
        .build();
    let session = SessionContext::new_with_state(state);
    for (name, catalog) in catalogs::catalogs(&context).map_err(|error| errors::failure(&error))? {
        session.register_catalog(name, catalog);
    }
    let sql = statements::rewrite(sql, context.catalog.as_deref(), context.schema.as_deref(), &catalogs::NAMES)?;
    run(&session, &sql).await
}

/// Plans and starts one statement in `session`, Presto's way (see [`dialect`] and [`names`]).
async fn run(session: &SessionContext, sql: &str) -> Result<Output, QueryFailure> {
    let failure = |error: datafusion::error::DataFusionError| errors::locate_column(sql, errors::failure(&error));
    let state = session.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect).map_err(failure)?;
    let mut names = None;
    if let datafusion::sql::parser::Statement::Statement(ast) = &mut statement {
        dialect::rewrite(ast);
        names = Some(names::output_names(ast));
    }
    let plan = state.statement_to_plan(statement).await.map_err(failure)?;
    read_only().verify_plan(&plan).map_err(failure)?;
    let frame = session.execute_logical_plan(plan).await.map_err(failure)?;
    let batches = frame.execute_stream().await.map_err(failure)?;
    let mut columns = values::columns(&batches.schema());
    if let Some(names) = names.flatten().filter(|names| names.len() == columns.len()) {
        for (column, name) in columns.iter_mut().zip(names) {
            column.name = name;
        }
    }
    Ok(Output { columns, batches })
}

/// A runtime whose operators spill to disk past `limit_bytes` when `spill` is on, and fail with
/// `ResourcesExhausted` (Presto's `EXCEEDED_LOCAL_MEMORY_LIMIT`, see `errors`) otherwise.
pub(crate) fn memory_limited_runtime(
    limit_bytes: u64,
    spill: bool,
) -> datafusion::error::Result<std::sync::Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    let limit = usize::try_from(limit_bytes).unwrap_or(usize::MAX);
    let mode = if spill { DiskManagerMode::OsTmpDirectory } else { DiskManagerMode::Disabled };
    datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(std::sync::Arc::new(datafusion::execution::memory_pool::GreedyMemoryPool::new(limit)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
        .build_arc()
}

/// What a statement may do: read. DataFusion's own DDL (`CREATE EXTERNAL TABLE` reads any file
/// the node can), DML (`COPY … TO` writes one) and `SET` are refused, on the coordinator and in
/// the SQL a leaf task runs, even inside `EXPLAIN ANALYZE`.
pub(crate) fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

pub(crate) fn config(catalog: Option<&str>, schema: Option<&str>, partitions: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(catalog.unwrap_or(DEFAULT_CATALOG), schema.unwrap_or(DEFAULT_SCHEMA))
        .with_information_schema(false)
        .with_target_partitions(partitions.max(1));
    // Presto reads `0.06` as a DECIMAL literal: as a double, TPC-H Q6's `0.06 + 0.01` is
    // 0.06999999999999999 and the rows with discount 0.07 drop out.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    config
}

/// Runs `sql` with DataFusion alone in this process, over the same generated tpch data (each
/// table in `partitions` splits) with the same Presto dialect: the baseline the cluster is
/// measured against (`fireball datafusion`). Returns the row count.
pub async fn run_single_process(sql: &str, schema: &str, partitions: usize) -> Result<u64, QueryFailure> {
    let invalid = |message: String| QueryFailure::new(crate::protocol::errors::SYNTAX_ERROR, message);
    let scale_factor = tpch::scale_factor(schema).ok_or_else(|| invalid(format!("tpch has no schema '{schema}'")))?;
    let session = SessionContext::new_with_config(config(Some(tpch::CATALOG), Some(schema), partitions));
    let tables = datafusion::catalog::MemorySchemaProvider::new();
    for table in tpch::TABLES {
        let splits = tpch::split_count(table, 1, partitions);
        let provider = leaf::generated_table(table, scale_factor, splits, tpch::ColumnNaming::default()).map_err(invalid)?;
        datafusion::catalog::SchemaProvider::register_table(&tables, table.to_string(), std::sync::Arc::new(provider))
            .map_err(|error| errors::failure(&error))?;
    }
    let catalog = datafusion::catalog::MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, schema, std::sync::Arc::new(tables))
        .map_err(|error| errors::failure(&error))?;
    session.register_catalog(tpch::CATALOG, std::sync::Arc::new(catalog));
    let mut output = run(&session, sql).await?;
    let mut rows = 0u64;
    while let Some(batch) = futures::StreamExt::next(&mut output.batches).await {
        rows += batch.map_err(|error| errors::failure(&error))?.num_rows() as u64;
    }
    Ok(rows)
}
