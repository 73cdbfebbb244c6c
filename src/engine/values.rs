//! Arrow results in the client protocol's terms: each column's Presto type, each value as the
//! JSON Presto sends (numbers as numbers, decimals, dates and timestamps as strings, varbinary
//! as base64, NaN and the infinities as strings).

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, IntervalUnit, Schema, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::protocol::{Column, SqlType};

pub fn columns(schema: &Schema) -> Vec<Column> {
    schema.fields().iter().map(|field| Column::new(field.name().clone(), sql_type(field.data_type()))).collect()
}

pub fn sql_type(data_type: &DataType) -> SqlType {
    match data_type {
        DataType::Boolean => SqlType::Boolean,
        DataType::Int8 => SqlType::Tinyint,
        DataType::Int16 | DataType::UInt8 => SqlType::Smallint,
        DataType::Int32 | DataType::UInt16 => SqlType::Integer,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => SqlType::Bigint,
        DataType::Float16 | DataType::Float32 => SqlType::Real,
        DataType::Float64 => SqlType::Double,
        DataType::Decimal32(precision, scale)
        | DataType::Decimal64(precision, scale)
        | DataType::Decimal128(precision, scale)
        | DataType::Decimal256(precision, scale) => SqlType::Decimal { precision: *precision, scale: *scale },
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => SqlType::Varbinary,
        DataType::Date32 | DataType::Date64 => SqlType::Date,
        DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
        DataType::Timestamp(_, _) => SqlType::Timestamp,
        DataType::Interval(IntervalUnit::YearMonth) => SqlType::IntervalYearToMonth,
        DataType::Interval(_) | DataType::Duration(_) => SqlType::IntervalDayToSecond,
        DataType::Null => SqlType::Unknown,
        // Strings, and what fireball does not type yet (nested types), travel as text.
        _ => SqlType::Varchar { length: None },
    }
}

/// The batch's rows, in order.
pub fn rows(batch: &RecordBatch) -> Result<Vec<Vec<Value>>, String> {
    let columns = batch.columns().iter().map(column_values).collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows()).map(|row| columns.iter().map(|values| values[row].clone()).collect()).collect())
}

fn column_values(array: &ArrayRef) -> Result<Vec<Value>, String> {
    let length = array.len();
    let nulls = |index: usize| array.is_null(index);
    macro_rules! numbers {
        ($kind:ty) => {{
            let values = array.as_primitive::<$kind>();
            (0..length).map(|index| if nulls(index) { Value::Null } else { Value::from(values.value(index)) }).collect()
        }};
    }
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; length],
        DataType::Boolean => {
            let values = array.as_boolean();
            (0..length).map(|index| if nulls(index) { Value::Null } else { Value::from(values.value(index)) }).collect()
        }
        DataType::Int8 => numbers!(Int8Type),
        DataType::Int16 => numbers!(Int16Type),
        DataType::Int32 => numbers!(Int32Type),
        DataType::Int64 => numbers!(Int64Type),
        DataType::UInt8 => numbers!(UInt8Type),
        DataType::UInt16 => numbers!(UInt16Type),
        DataType::UInt32 => numbers!(UInt32Type),
        DataType::UInt64 => numbers!(UInt64Type),
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>();
            (0..length).map(|index| if nulls(index) { Value::Null } else { float(f64::from(values.value(index))) }).collect()
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            (0..length).map(|index| if nulls(index) { Value::Null } else { float(values.value(index)) }).collect()
        }
        DataType::Utf8 => strings(array.as_string::<i32>().iter(), length),
        DataType::LargeUtf8 => strings(array.as_string::<i64>().iter(), length),
        DataType::Utf8View => strings(array.as_string_view().iter(), length),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            // Presto sends varbinary as base64.
            base64_values(array)?
        }
        _ => formatted(array)?,
    })
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>, length: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(length);
    out.extend(values.map(|value| value.map_or(Value::Null, Value::from)));
    out
}

/// Presto's JSON for a double: a number, or "NaN" / "Infinity" / "-Infinity".
fn float(value: f64) -> Value {
    if value.is_nan() {
        Value::from("NaN")
    } else if value.is_infinite() {
        Value::from(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(value)
    }
}

/// Dates, times, timestamps, decimals, intervals: Arrow's text form, in Presto's layout.
fn formatted(array: &ArrayRef) -> Result<Vec<Value>, String> {
    let options = FormatOptions::default()
        .with_null("\u{0}")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f %Z"));
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|error| error.to_string())?;
    Ok((0..array.len())
        .map(|index| if array.is_null(index) { Value::Null } else { Value::from(formatter.value(index).to_string()) })
        .collect())
}

fn base64_values(array: &ArrayRef) -> Result<Vec<Value>, String> {
    let binary = datafusion::arrow::compute::cast(array, &DataType::Binary).map_err(|error| error.to_string())?;
    let values = binary.as_binary::<i32>();
    Ok((0..values.len()).map(|index| if values.is_null(index) { Value::Null } else { Value::from(base64(values.value(index))) }).collect())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16) | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8) | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(char::from(ALPHABET[((word >> (18 - 6 * position)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BinaryArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    use super::*;

    #[test]
    fn values_are_sent_the_way_presto_sends_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("d", DataType::Date32, true),
            Field::new("x", DataType::Float64, true),
            Field::new("m", DataType::Decimal128(15, 2), true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Binary, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(Date32Array::from(vec![Some(10_561), None])),
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(1.5)])),
                Arc::new(Decimal128Array::from(vec![Some(12_345), None]).with_precision_and_scale(15, 2).unwrap()),
                Arc::new(StringArray::from(vec![Some("Zürich"), None])),
                Arc::new(BinaryArray::from(vec![Some(&b"hi!"[..]), Some(&b"a"[..])])),
            ],
        )
        .unwrap();
        let rows = rows(&batch).unwrap();
        assert_eq!(rows[0], vec![Value::from(7), Value::from("1998-12-01"), Value::from("NaN"), Value::from("123.45"), Value::from("Zürich"), Value::from("aGkh")]);
        assert_eq!(rows[1][0], Value::Null);
        assert_eq!(rows[1][1], Value::Null);
        assert_eq!(rows[1][5], Value::from("YQ=="));
        let columns = columns(&schema);
        assert_eq!(columns[1].type_name, "date");
        assert_eq!(columns[3].type_name, "decimal(15,2)");
        assert_eq!(columns[4].type_name, "varchar");
    }
}
