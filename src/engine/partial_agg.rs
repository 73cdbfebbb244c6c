//! Partial aggregation on the workers: where an aggregation reads one remote table through only
//! filters, projections and aliases, each leaf task computes the aggregation over its own split
//! (`SELECT g AS g0, sum(x) AS p0 … GROUP BY g`), and the coordinator only merges the partial
//! results (`sum` of sums, `sum` of counts, `min` of minimums, `max` of maximums, an average as
//! the sum of sums over the sum of counts). TPC-H Q1 then moves four rows per split to the
//! coordinator instead of six million rows per scale factor.
//!
//! The rule rewrites the logical plan after DataFusion's own rules (so the scan already carries
//! its pushed-down columns and filters) and writes the partial plan back to SQL with DataFusion's
//! unparser. It leaves the plan alone for anything it does not handle (`DISTINCT`, `FILTER`,
//! ordered aggregates, other functions, a join below) and whenever the merged result's types
//! would differ from the original aggregation's.

use std::sync::Arc;

use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::Column;
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{cast, col, Aggregate, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::remote::RemoteTable;

#[derive(Debug, Default)]
pub struct PartialAggregation;

impl OptimizerRule for PartialAggregation {
    fn name(&self) -> &str {
        "fireball_partial_aggregation_on_workers"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else { return Ok(Transformed::no(plan)) };
        match split_aggregate(aggregate) {
            Ok(Some(rewritten)) if same_types(&plan, &rewritten) => Ok(Transformed::yes(rewritten)),
            // Anything unexpected (an unparser gap, say) keeps the original, correct plan.
            _ => Ok(Transformed::no(plan)),
        }
    }
}

/// How one aggregate is computed in two steps.
enum Kind {
    Sum,
    Count,
    Min,
    Max,
    Avg,
}

fn split_aggregate(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    let Some(table) = remote_table_below(&aggregate.input)? else { return Ok(None) };
    // Partial aggregates, each once (Q1 sums `quantity` and averages it: one `sum(quantity)`).
    let mut partial_aggregates: Vec<Expr> = Vec::new();
    let mut partial = |expr: Expr| match partial_aggregates.iter().position(|known| *known == expr) {
        Some(index) => index,
        None => {
            partial_aggregates.push(expr);
            partial_aggregates.len() - 1
        }
    };
    let input_schema = aggregate.input.schema().clone();
    let mut kinds = Vec::new();
    for expr in &aggregate.aggr_expr {
        let inner = match expr {
            Expr::Alias(alias) => alias.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else { return Ok(None) };
        if params.distinct || params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some() {
            return Ok(None);
        }
        let [argument] = params.args.as_slice() else { return Ok(None) };
        let argument = argument.clone();
        let (kind, index, count_index) = match func.name() {
            "sum" => (Kind::Sum, partial(sum(argument)), 0),
            "count" => (Kind::Count, partial(count(argument)), 0),
            "min" => (Kind::Min, partial(min(argument)), 0),
            "max" => (Kind::Max, partial(max(argument)), 0),
            "avg" => {
                let as_double = match argument.get_type(&input_schema)? {
                    DataType::Float64 => argument.clone(),
                    _ => cast(argument.clone(), DataType::Float64),
                };
                (Kind::Avg, partial(sum(as_double)), partial(count(argument)))
            }
            _ => return Ok(None),
        };
        kinds.push((kind, index, count_index));
    }
    let partial_aggregates: Vec<Expr> =
        partial_aggregates.into_iter().enumerate().map(|(index, expr)| expr.alias(format!("p{index}"))).collect();
    // The leaf: the aggregation over the split, with positional names the merge can refer to.
    let groups: Vec<Expr> = aggregate.group_expr.clone();
    let leaf = LogicalPlanBuilder::from(aggregate.input.as_ref().clone())
        .aggregate(groups.clone(), partial_aggregates.clone())?
        .build()?;
    let leaf_columns: Vec<Expr> = leaf
        .schema()
        .columns()
        .into_iter()
        .enumerate()
        .map(|(index, column)| {
            let name = if index < groups.len() { format!("g{index}") } else { column.name.clone() };
            Expr::Column(column).alias(name)
        })
        .collect();
    let leaf = LogicalPlanBuilder::from(leaf).project(leaf_columns)?.build()?;
    let sql = datafusion::sql::unparser::plan_to_sql(&leaf)?.to_string();
    let partial_schema = Arc::new(Schema::new(
        leaf.schema().fields().iter().map(|field| Field::new(field.name(), field.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let partial = RemoteTable { schema: partial_schema, leaf_sql: Some(sql), ..table };
    let scan = LogicalPlanBuilder::scan("partial", provider_as_source(Arc::new(partial)), None)?.build()?;

    // The merge on the coordinator.
    let partial_column = |index: usize| col(Column::new(Some("partial"), format!("p{index}")));
    let merged_groups: Vec<Expr> = (0..groups.len()).map(|index| col(Column::new(Some("partial"), format!("g{index}")))).collect();
    let mut merged_aggregates = Vec::new();
    for (position, (kind, index, count_index)) in kinds.iter().enumerate() {
        let name = format!("m{position}");
        merged_aggregates.push(match kind {
            Kind::Sum | Kind::Count => sum(partial_column(*index)).alias(name.clone()),
            Kind::Min => min(partial_column(*index)).alias(name.clone()),
            Kind::Max => max(partial_column(*index)).alias(name.clone()),
            Kind::Avg => sum(partial_column(*index)).alias(format!("{name}_sum")),
        });
        if let Kind::Avg = kind {
            merged_aggregates.push(sum(partial_column(*count_index)).alias(format!("{name}_count")));
        }
    }
    let merged = LogicalPlanBuilder::from(scan).aggregate(merged_groups, merged_aggregates)?.build()?;
    // Back to the original aggregation's names (and qualifiers), which the plan above refers to.
    let original: Vec<(Option<datafusion::common::TableReference>, String)> =
        aggregate.schema.iter().map(|(qualifier, field)| (qualifier.cloned(), field.name().clone())).collect();
    let mut outputs = Vec::new();
    for (index, (qualifier, name)) in original.iter().enumerate() {
        let value = if index < groups.len() {
            Expr::Column(Column::from(merged.schema().qualified_field(index)))
        } else {
            let position = index - groups.len();
            match kinds[position].0 {
                Kind::Avg => {
                    col(Column::new_unqualified(format!("m{position}_sum"))) / cast(col(Column::new_unqualified(format!("m{position}_count"))), DataType::Float64)
                }
                Kind::Count => cast(col(Column::new_unqualified(format!("m{position}"))), DataType::Int64),
                _ => col(Column::new_unqualified(format!("m{position}"))),
            }
        };
        outputs.push(value.alias_qualified(qualifier.clone(), name));
    }
    Ok(Some(LogicalPlanBuilder::from(merged).project(outputs)?.build()?))
}

/// The remote table the aggregation reads through filters, projections and aliases only.
fn remote_table_below(plan: &LogicalPlan) -> Result<Option<RemoteTable>> {
    match plan {
        LogicalPlan::Projection(projection) => remote_table_below(&projection.input),
        LogicalPlan::Filter(filter) if !filter.predicate.contains_outer() => remote_table_below(&filter.input),
        LogicalPlan::SubqueryAlias(alias) => remote_table_below(&alias.input),
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let provider = source_as_provider(&scan.source)?;
            let any: &dyn std::any::Any = provider.as_ref();
            Ok(any.downcast_ref::<RemoteTable>().filter(|table| table.leaf_sql.is_none()).cloned())
        }
        _ => Ok(None),
    }
}

fn same_types(original: &LogicalPlan, rewritten: &LogicalPlan) -> bool {
    let types = |plan: &LogicalPlan| plan.schema().fields().iter().map(|field| field.data_type().clone()).collect::<Vec<_>>();
    types(original) == types(rewritten)
}
