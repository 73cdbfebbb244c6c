//! The `tpch` catalog, as Presto's tpch connector shows it: schemas `tiny` (scale factor 0.01),
//! `sf1`, `sf10`, … with the eight TPC-H tables, generated split by split on the workers (no
//! files), with Presto's column names (`lineitem.shipdate`, not `l_shipdate`) and types (money
//! and quantities as `double`).
//!
//! The data comes from `tpchgen` (through `tpchgen-arrow`), which splits every table into `parts`
//! whose union is the whole table: split `k` of `n` is generator part `k + 1` of `n`.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator, RegionGenerator,
    SupplierGenerator,
};
use tpchgen_arrow::{CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow, SupplierArrow};

pub const CATALOG: &str = "tpch";

/// The tables, in Presto's order.
pub const TABLES: [&str; 8] = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"];

/// Schemas offered (Presto also accepts `sfN` for any N; these are the ones listed).
pub const SCHEMAS: [&str; 6] = ["tiny", "sf1", "sf10", "sf100", "sf1000", "sf10000"];

/// Rows per generated batch: large enough for vectorised work, small enough to page.
const BATCH_ROWS: usize = 8_192;

/// The scale factor a schema stands for: `tiny` is 0.01, `sfN` is N.
pub fn scale_factor(schema: &str) -> Option<f64> {
    if schema == "tiny" {
        return Some(0.01);
    }
    let factor: f64 = schema.strip_prefix("sf")?.parse().ok()?;
    (factor.is_finite() && factor > 0.0 && factor <= 100_000.0).then_some(factor)
}

/// The column naming of the tpch connector (`tpch.column-naming`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColumnNaming {
    /// Presto's default: `orderkey`, `shipdate`.
    #[default]
    Simplified,
    /// TPC-H's own: `l_orderkey`, `l_shipdate`.
    Standard,
}

impl ColumnNaming {
    pub fn parse(value: &str) -> Option<ColumnNaming> {
        match value.to_ascii_uppercase().as_str() {
            "SIMPLIFIED" => Some(ColumnNaming::Simplified),
            "STANDARD" => Some(ColumnNaming::Standard),
            _ => None,
        }
    }
}

/// The table's schema as Presto shows it.
pub fn schema(table: &str, naming: ColumnNaming) -> Option<SchemaRef> {
    let generated = generated_schema(table)?;
    let fields: Vec<Field> = generated
        .fields()
        .iter()
        .map(|field| {
            let name = match naming {
                ColumnNaming::Standard => field.name().clone(),
                ColumnNaming::Simplified => field.name().split_once('_').map_or(field.name().as_str(), |(_, rest)| rest).to_string(),
            };
            let data_type = match field.data_type() {
                DataType::Decimal128(_, _) => DataType::Float64,
                other => other.clone(),
            };
            Field::new(name, data_type, field.is_nullable())
        })
        .collect();
    Some(Arc::new(Schema::new(fields)))
}

fn generated_schema(table: &str) -> Option<SchemaRef> {
    Some(match table {
        "customer" => CustomerArrow::schema_ref(),
        "lineitem" => LineItemArrow::schema_ref(),
        "nation" => NationArrow::schema_ref(),
        "orders" => OrderArrow::schema_ref(),
        "part" => PartArrow::schema_ref(),
        "partsupp" => PartSuppArrow::schema_ref(),
        "region" => RegionArrow::schema_ref(),
        "supplier" => SupplierArrow::schema_ref(),
        _ => return None,
    })
}

/// How many splits a table is cut into for `workers` workers: the two one-page tables are one
/// split; the others `splits_per_worker` per worker (Presto's `tpch.splits-per-node`), so every
/// worker scans a share of every large table.
pub fn split_count(table: &str, workers: usize, splits_per_worker: usize) -> u32 {
    if matches!(table, "nation" | "region") {
        return 1;
    }
    u32::try_from(workers.max(1).saturating_mul(splits_per_worker.max(1))).unwrap_or(u32::MAX)
}

/// A generator of one split's rows as Presto-shaped batches.
pub struct SplitReader {
    inner: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>,
    schema: SchemaRef,
}

impl SplitReader {
    /// Split `split` (0-based) of `splits` of `table` at `scale_factor`.
    pub fn new(table: &str, scale_factor: f64, split: u32, splits: u32, naming: ColumnNaming) -> Result<SplitReader, String> {
        if splits == 0 || split >= splits {
            return Err(format!("split {split} of {splits} does not exist"));
        }
        let schema = schema(table, naming).ok_or_else(|| format!("tpch has no table '{table}'"))?;
        let part = i32::try_from(split + 1).map_err(|_| "too many splits".to_string())?;
        let parts = i32::try_from(splits).map_err(|_| "too many splits".to_string())?;
        let sf = scale_factor;
        let inner: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send> = match table {
            "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "part" => Box::new(PartArrow::new(PartGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, part, parts)).with_batch_size(BATCH_ROWS)),
            _ => return Err(format!("tpch has no table '{table}'")),
        };
        Ok(SplitReader { inner, schema })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Iterator for SplitReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.inner.next()?.and_then(|batch| reshape(&batch, &self.schema)))
    }
}

/// Renames and casts a generated batch into Presto's shape (same column order).
fn reshape(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| if column.data_type() == field.data_type() { Ok(column.clone()) } else { cast(column, field.data_type()) })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_use_presto_names_and_types() {
        let lineitem = schema("lineitem", ColumnNaming::Simplified).unwrap();
        assert_eq!(lineitem.field(0).name(), "orderkey");
        assert_eq!(lineitem.field_with_name("shipdate").unwrap().data_type(), &DataType::Date32);
        assert_eq!(lineitem.field_with_name("extendedprice").unwrap().data_type(), &DataType::Float64);
        assert_eq!(lineitem.field_with_name("linenumber").unwrap().data_type(), &DataType::Int32);
        let standard = schema("orders", ColumnNaming::Standard).unwrap();
        assert_eq!(standard.field(0).name(), "o_orderkey");
        assert!(schema("lineitems", ColumnNaming::Simplified).is_none());
    }

    #[test]
    fn scale_factors_follow_the_schema_names() {
        assert_eq!(scale_factor("tiny"), Some(0.01));
        assert_eq!(scale_factor("sf1"), Some(1.0));
        assert_eq!(scale_factor("sf100"), Some(100.0));
        assert_eq!(scale_factor("sf"), None);
        assert_eq!(scale_factor("sf-1"), None);
        assert_eq!(scale_factor("public"), None);
    }

    #[test]
    fn splits_partition_the_table() {
        // 60,175 lineitem rows at scale factor 0.01 (TPC-H's own count), whatever the split count.
        for splits in [1u32, 3, 4] {
            let rows: usize = (0..splits)
                .map(|split| {
                    SplitReader::new("lineitem", 0.01, split, splits, ColumnNaming::Simplified)
                        .unwrap()
                        .map(|batch| batch.unwrap().num_rows())
                        .sum::<usize>()
                })
                .sum();
            assert_eq!(rows, 60_175, "{splits} splits");
        }
        assert!(SplitReader::new("lineitem", 0.01, 4, 4, ColumnNaming::Simplified).is_err());
    }
}
