//! Presto's error codes, names and types (`StandardErrorCode`), as clients expect them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorType {
    UserError,
    InternalError,
    InsufficientResources,
    External,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: i32,
    pub name: &'static str,
    pub error_type: ErrorType,
}

const fn user(code: i32, name: &'static str) -> ErrorCode {
    ErrorCode { code, name, error_type: ErrorType::UserError }
}
const fn internal(code: i32, name: &'static str) -> ErrorCode {
    ErrorCode { code, name, error_type: ErrorType::InternalError }
}
const fn resources(code: i32, name: &'static str) -> ErrorCode {
    ErrorCode { code, name, error_type: ErrorType::InsufficientResources }
}

pub const SYNTAX_ERROR: ErrorCode = user(1, "SYNTAX_ERROR");
pub const ABANDONED_QUERY: ErrorCode = user(2, "ABANDONED_QUERY");
pub const USER_CANCELED: ErrorCode = user(3, "USER_CANCELED");
pub const PERMISSION_DENIED: ErrorCode = user(4, "PERMISSION_DENIED");
pub const NOT_SUPPORTED: ErrorCode = user(13, "NOT_SUPPORTED");
pub const INVALID_SESSION_PROPERTY: ErrorCode = user(14, "INVALID_SESSION_PROPERTY");
pub const INVALID_FUNCTION_ARGUMENT: ErrorCode = user(7, "INVALID_FUNCTION_ARGUMENT");
pub const ADMINISTRATIVELY_KILLED: ErrorCode = user(38, "ADMINISTRATIVELY_KILLED");
pub const GENERIC_INTERNAL_ERROR: ErrorCode = internal(65536, "GENERIC_INTERNAL_ERROR");
pub const NO_NODES_AVAILABLE: ErrorCode = internal(65541, "NO_NODES_AVAILABLE");
pub const REMOTE_TASK_ERROR: ErrorCode = internal(65542, "REMOTE_TASK_ERROR");
pub const SERVER_SHUTTING_DOWN: ErrorCode = internal(65545, "SERVER_SHUTTING_DOWN");
pub const QUERY_QUEUE_FULL: ErrorCode = resources(131074, "QUERY_QUEUE_FULL");
pub const QUERY_REJECTED: ErrorCode = user(31, "QUERY_REJECTED");
pub const INVALID_RESOURCE_GROUP: ErrorCode = internal(65561, "INVALID_RESOURCE_GROUP");
pub const EXCEEDED_GLOBAL_MEMORY_LIMIT: ErrorCode = resources(131073, "EXCEEDED_GLOBAL_MEMORY_LIMIT");
pub const EXCEEDED_TIME_LIMIT: ErrorCode = resources(131075, "EXCEEDED_TIME_LIMIT");
pub const EXCEEDED_CPU_LIMIT: ErrorCode = resources(131077, "EXCEEDED_CPU_LIMIT");
pub const CLUSTER_OUT_OF_MEMORY: ErrorCode = resources(131076, "CLUSTER_OUT_OF_MEMORY");
pub const EXCEEDED_LOCAL_MEMORY_LIMIT: ErrorCode = resources(131079, "EXCEEDED_LOCAL_MEMORY_LIMIT");
pub const ADMINISTRATIVELY_PREEMPTED: ErrorCode = resources(131080, "ADMINISTRATIVELY_PREEMPTED");
pub const QUERY_TEXT_TOO_LARGE: ErrorCode = user(35, "QUERY_TEXT_TOO_LARGE");
pub const COLUMN_NOT_FOUND: ErrorCode = user(47, "COLUMN_NOT_FOUND");
pub const DIVISION_BY_ZERO: ErrorCode = user(8, "DIVISION_BY_ZERO");
pub const INVALID_CAST_ARGUMENT: ErrorCode = user(9, "INVALID_CAST_ARGUMENT");
pub const NUMERIC_VALUE_OUT_OF_RANGE: ErrorCode = user(19, "NUMERIC_VALUE_OUT_OF_RANGE");

/// Looks up the codes fireball itself produces by name (for errors relayed between nodes).
pub fn by_name(name: &str) -> Option<ErrorCode> {
    [
        SYNTAX_ERROR, ABANDONED_QUERY, USER_CANCELED, PERMISSION_DENIED, NOT_SUPPORTED, INVALID_SESSION_PROPERTY, INVALID_FUNCTION_ARGUMENT,
        ADMINISTRATIVELY_KILLED, GENERIC_INTERNAL_ERROR, NO_NODES_AVAILABLE, REMOTE_TASK_ERROR,
        SERVER_SHUTTING_DOWN, QUERY_QUEUE_FULL, CLUSTER_OUT_OF_MEMORY, EXCEEDED_LOCAL_MEMORY_LIMIT,
        QUERY_TEXT_TOO_LARGE, COLUMN_NOT_FOUND, QUERY_REJECTED, INVALID_RESOURCE_GROUP,
        EXCEEDED_GLOBAL_MEMORY_LIMIT, EXCEEDED_TIME_LIMIT, EXCEEDED_CPU_LIMIT, ADMINISTRATIVELY_PREEMPTED,
        DIVISION_BY_ZERO, INVALID_CAST_ARGUMENT, NUMERIC_VALUE_OUT_OF_RANGE,
    ]
    .into_iter()
    .find(|code| code.name == name)
}

/// A query failure: what the client sees in `error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryFailure {
    pub code: ErrorCode,
    pub message: String,
    /// 1-based line and column in the SQL text, for syntax errors.
    pub location: Option<(u32, u32)>,
}

impl QueryFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        QueryFailure { code, message: message.into(), location: None }
    }

    pub fn at(mut self, line: u32, column: u32) -> Self {
        self.location = Some((line, column));
        self
    }
}

impl std::fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name, self.message)
    }
}
