//! The JSON the Presto client protocol returns (`QueryResults` and friends).
//!
//! Optional fields are *omitted*, never sent as `null`: presto-python-client crashes on
//! `"error": null` and PyHive on `"nextUri": null`. Every column carries a `typeSignature`
//! (the trino client needs it).

use serde::{Deserialize, Serialize};

use super::errors::{ErrorType, QueryFailure};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResults {
    pub id: String,
    pub info_uri: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub columns: Option<Vec<Column>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<Vec<Vec<serde_json::Value>>>,
    pub stats: StatementStats,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<QueryError>,
    #[serde(default)]
    pub warnings: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_type: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatementStats {
    pub state: String,
    pub queued: bool,
    pub scheduled: bool,
    pub nodes: u32,
    pub total_splits: u32,
    pub queued_splits: u32,
    pub running_splits: u32,
    pub completed_splits: u32,
    pub cpu_time_millis: u64,
    pub wall_time_millis: u64,
    pub queued_time_millis: u64,
    pub elapsed_time_millis: u64,
    pub processed_rows: u64,
    pub processed_bytes: u64,
    pub peak_memory_bytes: u64,
    pub peak_total_memory_bytes: u64,
    pub spilled_bytes: u64,
    pub progress_percentage: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryError {
    pub message: String,
    pub error_code: i32,
    pub error_name: String,
    pub error_type: ErrorType,
    pub retriable: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_location: Option<ErrorLocation>,
    pub failure_info: FailureInfo,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorLocation {
    pub line_number: u32,
    pub column_number: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureInfo {
    #[serde(rename = "type")]
    pub failure_type: String,
    pub message: String,
    pub suppressed: Vec<serde_json::Value>,
    pub stack: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_location: Option<ErrorLocation>,
}

impl From<&QueryFailure> for QueryError {
    fn from(failure: &QueryFailure) -> Self {
        let location = failure
            .location
            .map(|(line_number, column_number)| ErrorLocation { line_number, column_number });
        let failure_type = if failure.code.name == "SYNTAX_ERROR" {
            "com.facebook.presto.sql.parser.ParsingException"
        } else {
            "com.facebook.presto.spi.PrestoException"
        };
        QueryError {
            message: failure.message.clone(),
            error_code: failure.code.code,
            error_name: failure.code.name.to_string(),
            error_type: failure.code.error_type,
            retriable: false,
            error_location: location,
            failure_info: FailureInfo {
                failure_type: failure_type.to_string(),
                message: failure.message.clone(),
                suppressed: Vec::new(),
                stack: Vec::new(),
                error_location: location,
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(rename = "typeSignature")]
    pub type_signature: TypeSignature,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSignature {
    pub raw_type: String,
    pub arguments: Vec<TypeArgument>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TypeArgument {
    pub kind: String,
    pub value: serde_json::Value,
}

/// The length Presto reports for `varchar` without a bound (`VarcharType.UNBOUNDED_LENGTH`).
pub const VARCHAR_LENGTH_UNBOUNDED: u32 = i32::MAX as u32;

/// The SQL types fireball produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Boolean,
    Tinyint,
    Smallint,
    Integer,
    Bigint,
    Real,
    Double,
    Decimal { precision: u8, scale: i8 },
    Varchar { length: Option<u32> },
    Varbinary,
    Date,
    Time,
    Timestamp,
    IntervalDayToSecond,
    IntervalYearToMonth,
    Unknown,
}

impl Column {
    pub fn new(name: impl Into<String>, sql_type: SqlType) -> Column {
        let long = |value: i64| TypeArgument { kind: "LONG_LITERAL".into(), value: serde_json::Value::from(value) };
        let (raw, arguments) = match sql_type {
            SqlType::Boolean => ("boolean", vec![]),
            SqlType::Tinyint => ("tinyint", vec![]),
            SqlType::Smallint => ("smallint", vec![]),
            SqlType::Integer => ("integer", vec![]),
            SqlType::Bigint => ("bigint", vec![]),
            SqlType::Real => ("real", vec![]),
            SqlType::Double => ("double", vec![]),
            SqlType::Decimal { precision, scale } => ("decimal", vec![long(i64::from(precision)), long(i64::from(scale))]),
            SqlType::Varbinary => ("varbinary", vec![]),
            SqlType::Date => ("date", vec![]),
            SqlType::Time => ("time", vec![]),
            SqlType::Timestamp => ("timestamp", vec![]),
            SqlType::IntervalDayToSecond => ("interval day to second", vec![]),
            SqlType::IntervalYearToMonth => ("interval year to month", vec![]),
            SqlType::Unknown => ("unknown", vec![]),
            // Presto sends unbounded varchar with its maximum length as the argument; the trino
            // client reads `arguments[0]` for every varchar and fails without it.
            SqlType::Varchar { length } => (
                "varchar",
                vec![TypeArgument {
                    kind: "LONG_LITERAL".into(),
                    value: serde_json::Value::from(length.unwrap_or(VARCHAR_LENGTH_UNBOUNDED)),
                }],
            ),
        };
        let type_name = match sql_type {
            SqlType::Varchar { length: Some(length) } => format!("varchar({length})"),
            SqlType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            _ => raw.to_string(),
        };
        Column { name: name.into(), type_name, type_signature: TypeSignature { raw_type: raw.into(), arguments } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::errors::QUERY_QUEUE_FULL;

    #[test]
    fn nulls_are_omitted_and_columns_carry_signatures() {
        let results = QueryResults {
            id: "q".into(),
            info_uri: "http://c/ui".into(),
            next_uri: None,
            columns: Some(vec![Column::new("s", SqlType::Varchar { length: Some(25) })]),
            data: None,
            stats: StatementStats { state: "FINISHED".into(), ..Default::default() },
            error: None,
            warnings: vec![],
            update_type: None,
        };
        let json = serde_json::to_value(&results).unwrap();
        let object = json.as_object().unwrap();
        for absent in ["nextUri", "data", "error", "updateType"] {
            assert!(!object.contains_key(absent), "{absent} must be omitted, not null");
        }
        assert_eq!(json["columns"][0]["type"], "varchar(25)");
        assert_eq!(json["columns"][0]["typeSignature"]["rawType"], "varchar");
        assert_eq!(json["columns"][0]["typeSignature"]["arguments"][0]["kind"], "LONG_LITERAL");
        assert_eq!(json["stats"]["state"], "FINISHED");
        let unbounded = serde_json::to_value(Column::new("w", SqlType::Varchar { length: None })).unwrap();
        assert_eq!(unbounded["type"], "varchar");
        assert_eq!(unbounded["typeSignature"]["arguments"][0]["value"], 2147483647);
    }

    #[test]
    fn errors_use_presto_names() {
        let error = QueryError::from(&QueryFailure::new(QUERY_QUEUE_FULL, "Too many queued queries for \"global\""));
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["errorCode"], 131074);
        assert_eq!(json["errorName"], "QUERY_QUEUE_FULL");
        assert_eq!(json["errorType"], "INSUFFICIENT_RESOURCES");
        assert!(json.get("errorLocation").is_none());
    }
}
