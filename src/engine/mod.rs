//! The SQL engine: Apache DataFusion as the operator library, in production builds only (the
//! simulation runs the synthetic engine, and this module is not compiled under madsim).
//!
//! - [`tpch`]: the tpch connector's tables, generated split by split;
//! - [`leaf`]: the worker's executor: leaf tasks (scan, filter, project over one split) on
//!   DataFusion, synthetic tasks on the synthetic engine;
//! - [`remote`]: the coordinator's tables, whose scans run as leaf tasks on the workers;
//! - [`statements`]: Presto's statements DataFusion does not speak (`SHOW CATALOGS`, …);
//! - [`dialect`]: Presto's meaning where DataFusion reads the same SQL differently;
//! - [`names`]: result column names as Presto gives them (`_col0` for an expression);
//! - [`values`]: Arrow results as the client protocol's types and JSON;
//! - [`errors`]: DataFusion's errors in Presto's names and words;
//! - this file: the catalogs a query sees, and running one statement.

mod dialect;
pub mod errors;
pub mod leaf;
mod names;
pub mod remote;
mod statements;
pub mod tpch;
pub mod values;

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
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
    let session = session(&context).map_err(|error| errors::failure(&error))?;
    let sql = statements::rewrite(sql, context.catalog.as_deref(), context.schema.as_deref())?;
    let failure = |error: datafusion::error::DataFusionError| errors::failure(&error);
    let state = session.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(&sql, &dialect).map_err(failure)?;
    let mut names = None;
    if let datafusion::sql::parser::Statement::Statement(ast) = &mut statement {
        dialect::rewrite(ast);
        names = Some(names::output_names(ast));
    }
    let plan = state.statement_to_plan(statement).await.map_err(failure)?;
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

fn session(context: &QueryContext) -> datafusion::error::Result<SessionContext> {
    let config = SessionConfig::new()
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(
            context.catalog.as_deref().unwrap_or(DEFAULT_CATALOG),
            context.schema.as_deref().unwrap_or(DEFAULT_SCHEMA),
        )
        .with_information_schema(true)
        .with_target_partitions(context.coordinator_partitions.max(1));
    // Presto reads `0.06` as a DECIMAL literal: as a double, TPC-H Q6's `0.06 + 0.01` is
    // 0.06999999999999999 and the rows with discount 0.07 drop out.
    let mut config = config;
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    let session = SessionContext::new_with_config(config);
    session.register_catalog(tpch::CATALOG, tpch_catalog(context)?);
    session.register_catalog("system", system_catalog(context)?);
    Ok(session)
}

fn tpch_catalog(context: &QueryContext) -> datafusion::error::Result<Arc<dyn CatalogProvider>> {
    let catalog = MemoryCatalogProvider::new();
    let naming = tpch::ColumnNaming::default();
    for schema_name in tpch::SCHEMAS {
        let schema = MemorySchemaProvider::new();
        let scale_factor = tpch::scale_factor(schema_name).unwrap_or(0.01);
        for table in tpch::TABLES {
            let Some(table_schema) = tpch::schema(table, naming) else { continue };
            let provider = remote::RemoteTable {
                catalog: tpch::CATALOG.to_string(),
                schema_name: schema_name.to_string(),
                table: table.to_string(),
                schema: table_schema,
                naming,
                splits: tpch::split_count(table, scale_factor, context.workers, context.splits_per_worker),
                runner: context.runner.clone(),
            };
            schema.register_table(table.to_string(), Arc::new(provider))?;
        }
        catalog.register_schema(schema_name, Arc::new(schema))?;
    }
    Ok(Arc::new(catalog))
}

/// `system.runtime.nodes` from the RM's view of the active workers (and this coordinator).
fn system_catalog(context: &QueryContext) -> datafusion::error::Result<Arc<dyn CatalogProvider>> {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("node_id", DataType::Utf8, false),
        Field::new("http_uri", DataType::Utf8, false),
        Field::new("node_version", DataType::Utf8, false),
        Field::new("coordinator", DataType::Boolean, false),
        Field::new("state", DataType::Utf8, false),
    ]));
    let nodes = &context.nodes;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(nodes.iter().map(|node| node.node_id.as_str()))),
            Arc::new(StringArray::from_iter_values(nodes.iter().map(|node| node.http_uri.as_str()))),
            Arc::new(StringArray::from_iter_values(nodes.iter().map(|_| env!("CARGO_PKG_VERSION")))),
            Arc::new(BooleanArray::from_iter(nodes.iter().map(|node| Some(node.coordinator)))),
            Arc::new(StringArray::from_iter_values(nodes.iter().map(|_| "active"))),
        ],
    )?;
    let runtime = MemorySchemaProvider::new();
    runtime.register_table("nodes".to_string(), Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("runtime", Arc::new(runtime))?;
    Ok(Arc::new(catalog))
}
