//! The Presto client protocol: request headers, result JSON and error codes.
//! The HTTP handlers that speak it live with the coordinator (`coordinator::statement_api`).

pub mod client;
pub mod errors;
pub mod query_info;
pub mod resource_group_info;
pub mod results;
pub mod session;

pub use errors::{ErrorCode, QueryFailure};
pub use results::{Column, QueryResults, SqlType, StatementStats};
pub use session::SessionContext;
