//! The catalogs a query sees: `tpch` (tables whose scans run on the workers) and `system`
//! (`runtime.nodes`), each with its own `information_schema` as in Presto: `schemata`, `tables`
//! and `columns` of that catalog only, with Presto's type names (`bigint`, `varchar`, `date`).
//! DataFusion's own information schema spans every catalog and names Arrow types, which BI
//! tools (the trino SQLAlchemy dialect among them) cannot read.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemTable, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::Result;

use super::{remote, tpch, values, QueryContext};

pub const INFORMATION_SCHEMA: &str = "information_schema";
/// Every catalog's name, in order.
pub const NAMES: [&str; 2] = ["system", tpch::CATALOG];

/// One table of one catalog.
struct Table {
    catalog: &'static str,
    schema: String,
    name: String,
    columns: SchemaRef,
    provider: Arc<dyn TableProvider>,
}

/// The catalogs, by name.
pub fn catalogs(context: &QueryContext) -> Result<BTreeMap<&'static str, Arc<dyn CatalogProvider>>> {
    let mut tables = tpch_tables(context);
    tables.push(nodes_table(context)?);
    let mut by_catalog: BTreeMap<&'static str, BTreeMap<String, Vec<Table>>> = BTreeMap::new();
    for table in tables {
        by_catalog.entry(table.catalog).or_default().entry(table.schema.clone()).or_default().push(table);
    }
    let mut catalogs = BTreeMap::new();
    for (catalog_name, schemas) in by_catalog {
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(INFORMATION_SCHEMA, Arc::new(information_schema(catalog_name, &schemas)?))?;
        for (schema_name, tables) in schemas {
            let schema = MemorySchemaProvider::new();
            for table in tables {
                schema.register_table(table.name, table.provider)?;
            }
            catalog.register_schema(&schema_name, Arc::new(schema))?;
        }
        catalogs.insert(catalog_name, Arc::new(catalog) as Arc<dyn CatalogProvider>);
    }
    Ok(catalogs)
}

fn tpch_tables(context: &QueryContext) -> Vec<Table> {
    let naming = tpch::ColumnNaming::default();
    let mut tables = Vec::new();
    for schema_name in tpch::SCHEMAS {
        for table in tpch::TABLES {
            let Some(columns) = tpch::schema(table, naming) else { continue };
            let provider = remote::RemoteTable {
                catalog: tpch::CATALOG.to_string(),
                schema_name: schema_name.to_string(),
                table: table.to_string(),
                schema: columns.clone(),
                naming,
                splits: tpch::split_count(table, context.workers, context.splits_per_worker),
                runner: context.runner.clone(),
                leaf_sql: None,
            };
            tables.push(Table { catalog: tpch::CATALOG, schema: schema_name.to_string(), name: table.to_string(), columns, provider: Arc::new(provider) });
        }
    }
    tables
}

/// `system.runtime.nodes` from the RM's view of the active workers (and this coordinator).
fn nodes_table(context: &QueryContext) -> Result<Table> {
    let columns: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("node_id", DataType::Utf8, false),
        Field::new("http_uri", DataType::Utf8, false),
        Field::new("node_version", DataType::Utf8, false),
        Field::new("coordinator", DataType::Boolean, false),
        Field::new("state", DataType::Utf8, false),
    ]));
    let nodes = &context.nodes;
    let batch = RecordBatch::try_new(
        columns.clone(),
        vec![
            strings(nodes.iter().map(|node| node.node_id.as_str())),
            strings(nodes.iter().map(|node| node.http_uri.as_str())),
            strings(nodes.iter().map(|_| env!("CARGO_PKG_VERSION"))),
            Arc::new(BooleanArray::from_iter(nodes.iter().map(|node| Some(node.coordinator)))),
            strings(nodes.iter().map(|_| "active")),
        ],
    )?;
    let provider = Arc::new(MemTable::try_new(columns.clone(), vec![vec![batch]])?);
    Ok(Table { catalog: "system", schema: "runtime".to_string(), name: "nodes".to_string(), columns, provider })
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// The catalog's `information_schema`: its schemas (this one included), tables and columns.
fn information_schema(catalog: &str, schemas: &BTreeMap<String, Vec<Table>>) -> Result<MemorySchemaProvider> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let own_tables = ["columns", "schemata", "tables"];

    let mut schema_names: Vec<&str> = schemas.keys().map(String::as_str).collect();
    schema_names.push(INFORMATION_SCHEMA);
    schema_names.sort_unstable();
    let schemata_columns: SchemaRef = Arc::new(Schema::new(vec![text("catalog_name"), text("schema_name")]));
    let schemata = RecordBatch::try_new(
        schemata_columns.clone(),
        vec![strings(schema_names.iter().map(|_| catalog)), strings(schema_names.iter().copied())],
    )?;

    let mut table_rows: Vec<(&str, &str)> =
        schemas.iter().flat_map(|(schema, tables)| tables.iter().map(move |table| (schema.as_str(), table.name.as_str()))).collect();
    table_rows.extend(own_tables.iter().map(|table| (INFORMATION_SCHEMA, *table)));
    let tables_columns: SchemaRef =
        Arc::new(Schema::new(vec![text("table_catalog"), text("table_schema"), text("table_name"), text("table_type")]));
    let tables = RecordBatch::try_new(
        tables_columns.clone(),
        vec![
            strings(table_rows.iter().map(|_| catalog)),
            strings(table_rows.iter().map(|(schema, _)| *schema)),
            strings(table_rows.iter().map(|(_, table)| *table)),
            strings(table_rows.iter().map(|_| "BASE TABLE")),
        ],
    )?;

    // (schema, table, column, position, nullable, Presto type)
    let mut column_rows: Vec<(&str, &str, &str, i64, bool, String)> = Vec::new();
    for (schema, tables) in schemas {
        for table in tables {
            for (index, field) in table.columns.fields().iter().enumerate() {
                let type_name = crate::protocol::Column::new("", values::sql_type(field.data_type())).type_name;
                column_rows.push((schema, &table.name, field.name(), index as i64 + 1, field.is_nullable(), type_name));
            }
        }
    }
    let columns_columns: SchemaRef = Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        Field::new("ordinal_position", DataType::Int64, false),
        text("column_default"),
        text("is_nullable"),
        text("data_type"),
        text("comment"),
        text("extra_info"),
    ]));
    let none = |count: usize| Arc::new(StringArray::from(vec![None::<&str>; count])) as ArrayRef;
    let columns = RecordBatch::try_new(
        columns_columns.clone(),
        vec![
            strings(column_rows.iter().map(|_| catalog)),
            strings(column_rows.iter().map(|row| row.0)),
            strings(column_rows.iter().map(|row| row.1)),
            strings(column_rows.iter().map(|row| row.2)),
            Arc::new(Int64Array::from_iter_values(column_rows.iter().map(|row| row.3))),
            none(column_rows.len()),
            strings(column_rows.iter().map(|row| if row.4 { "YES" } else { "NO" })),
            strings(column_rows.iter().map(|row| row.5.as_str())),
            none(column_rows.len()),
            none(column_rows.len()),
        ],
    )?;

    let schema = MemorySchemaProvider::new();
    schema.register_table("schemata".to_string(), Arc::new(MemTable::try_new(schemata_columns, vec![vec![schemata]])?))?;
    schema.register_table("tables".to_string(), Arc::new(MemTable::try_new(tables_columns, vec![vec![tables]])?))?;
    schema.register_table("columns".to_string(), Arc::new(MemTable::try_new(columns_columns, vec![vec![columns]])?))?;
    Ok(schema)
}
