//! The coordinator's side of a scan: a table whose scan runs on the workers.
//!
//! DataFusion plans the query on the coordinator against [`RemoteTable`]s. Their scan takes the
//! columns, filters and limit DataFusion pushes into it, writes them as SQL over one split
//! (`SELECT "c" FROM split WHERE …`), and becomes one partition per split. Executing a partition
//! runs that SQL as a leaf task on a worker (through the [`LeafRunner`] the coordinator gives)
//! and decodes the Arrow IPC pages the task returns. So scan, filter and projection run on the
//! workers; the operators above the scan run on the coordinator.
//!
//! Filters are pushed as `Inexact`: DataFusion still applies them above the scan, so a filter
//! the unparser cannot write is simply not pushed, and never lost.

use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Column;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::tpch::ColumnNaming;
use crate::protocol::QueryFailure;
use crate::wire::LeafFragment;

/// Runs leaf fragments on the workers. The coordinator implements it over its task drivers.
pub trait LeafRunner: Send + Sync + std::fmt::Debug + 'static {
    /// Starts `fragment` as a task on a worker. Its output pages (Arrow IPC streams) arrive in
    /// order on the receiver, which closes after the last; an `Err` ends the output. Dropping the
    /// receiver stops the task and cancels it on its worker.
    fn run(&self, fragment: LeafFragment) -> mpsc::Receiver<Result<Bytes, QueryFailure>>;
}

#[derive(Clone, Debug)]
pub struct RemoteTable {
    pub catalog: String,
    pub schema_name: String,
    pub table: String,
    pub schema: SchemaRef,
    pub naming: ColumnNaming,
    pub splits: u32,
    pub runner: Arc<dyn LeafRunner>,
    /// A leaf query whose output is this table (a partial aggregation over each split, see
    /// `partial_agg`); `None` for the connector's table itself.
    pub leaf_sql: Option<String>,
}

#[async_trait::async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| {
                if self.leaf_sql.is_none() && filter_sql(filter).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projected = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => self.schema.clone(),
        };
        let sql = self.leaf_sql(&projected, filters, limit);
        let fragments: Vec<LeafFragment> = (0..self.splits)
            .map(|split| LeafFragment {
                catalog: self.catalog.clone(),
                schema: self.schema_name.clone(),
                table: self.table.clone(),
                column_naming: match self.naming {
                    ColumnNaming::Simplified => "SIMPLIFIED".to_string(),
                    ColumnNaming::Standard => "STANDARD".to_string(),
                },
                split,
                splits: self.splits,
                sql: sql.clone(),
            })
            .collect();
        let runner = self.runner.clone();
        let partitions: Vec<Arc<dyn PartitionStream>> = if self.leaf_sql.is_some() {
            vec![Arc::new(OrderedSplits { schema: projected.clone(), fragments, runner })]
        } else {
            fragments
                .into_iter()
                .map(|fragment| Arc::new(RemoteSplit { schema: projected.clone(), fragment, runner: runner.clone() }) as Arc<dyn PartitionStream>)
                .collect()
        };
        Ok(Arc::new(StreamingTableExec::try_new(projected, partitions, None, Vec::new(), false, limit)?))
    }
}

impl RemoteTable {
    /// The SQL a leaf task runs over its split.
    fn leaf_sql(&self, projected: &SchemaRef, filters: &[Expr], limit: Option<usize>) -> String {
        if let Some(sql) = &self.leaf_sql {
            let columns: Vec<String> = projected.fields().iter().map(|field| quote(field.name())).collect();
            return match columns.is_empty() {
                true => sql.clone(),
                false => format!("SELECT {} FROM ({sql}) AS leaf", columns.join(", ")),
            };
        }
        // No column asked for (`count(*)`): fetch the narrowest useful one and keep only the count.
        let columns: Vec<String> = if projected.fields().is_empty() {
            vec![quote(self.schema.field(0).name())]
        } else {
            projected.fields().iter().map(|field| quote(field.name())).collect()
        };
        let mut sql = format!("SELECT {} FROM split", columns.join(", "));
        let predicates: Vec<String> = filters.iter().filter_map(filter_sql).collect();
        if !predicates.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&predicates.iter().map(|predicate| format!("({predicate})")).collect::<Vec<_>>().join(" AND "));
        }
        // A limit is only safe per split when every filter was pushed (all of them are then in
        // the SQL); DataFusion's own limit above the scan still cuts the union of the splits.
        if let (Some(limit), true) = (limit, predicates.len() == filters.len()) {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        sql
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The filter as SQL over the split (column qualifiers dropped: the split has one table).
fn filter_sql(filter: &Expr) -> Option<String> {
    let unqualified = filter
        .clone()
        .transform(|expr| {
            Ok(match expr {
                Expr::Column(column) if column.relation.is_some() => Transformed::yes(Expr::Column(Column::new_unqualified(column.name))),
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::OuterReferenceColumn(..) => {
                    return Err(DataFusionError::NotImplemented("subqueries are not pushed into a scan".into()))
                }
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    datafusion::sql::unparser::expr_to_sql(&unqualified).ok().map(|sql| sql.to_string())
}

/// One split of a remote table: a leaf task's output as a DataFusion partition.
#[derive(Debug)]
struct RemoteSplit {
    schema: SchemaRef,
    fragment: LeafFragment,
    runner: Arc<dyn LeafRunner>,
}

impl PartitionStream for RemoteSplit {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = batches(self.runner.run(self.fragment.clone()), self.schema.clone());
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// Every split of a remote table as one partition, in split order. The leaf tasks all start at
/// once; their outputs are read one after the other. For partial aggregates: merging them in a
/// fixed order makes a floating-point sum the same every time, so two uses of one aggregation in
/// a query (TPC-H Q15 compares a sum with the maximum of the same sums) agree to the last bit.
#[derive(Debug)]
struct OrderedSplits {
    schema: SchemaRef,
    fragments: Vec<LeafFragment>,
    runner: Arc<dyn LeafRunner>,
}

impl PartitionStream for OrderedSplits {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let outputs: Vec<_> = self.fragments.iter().map(|fragment| batches(self.runner.run(fragment.clone()), self.schema.clone())).collect();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(outputs).flatten()))
    }
}

/// A leaf task's pages as decoded batches; ends at the first error.
fn batches(
    pages: mpsc::Receiver<Result<Bytes, QueryFailure>>,
    schema: SchemaRef,
) -> impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static {
    let state = (pages, VecDeque::<RecordBatch>::new(), false);
    futures::stream::unfold(state, move |(mut pages, mut decoded, failed)| {
        let schema = schema.clone();
        async move {
            if failed {
                return None;
            }
            loop {
                if let Some(batch) = decoded.pop_front() {
                    return Some((Ok(batch), (pages, decoded, false)));
                }
                match pages.recv().await {
                    None => return None,
                    Some(Err(failure)) => return Some((Err(super::errors::relay(failure)), (pages, decoded, true))),
                    Some(Ok(page)) => match decode(&page, &schema) {
                        Ok(batches) => decoded.extend(batches),
                        Err(error) => return Some((Err(error), (pages, decoded, true))),
                    },
                }
            }
        }
    })
}

/// A page's batches, in the scan's schema (without columns: only the row counts).
fn decode(page: &Bytes, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(Cursor::new(page.clone()), None)?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch?;
        let batch = if schema.fields().is_empty() {
            RecordBatch::try_new_with_options(schema.clone(), Vec::new(), &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())))?
        } else {
            RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?
        };
        batches.push(batch);
    }
    Ok(batches)
}
