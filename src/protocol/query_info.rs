//! Presto's `BasicQueryInfo` JSON (what `/v1/query` and `/v1/query/{id}` return), built from the
//! summary coordinators heartbeat to RMs, so both roles answer in the same shape.

use serde_json::{json, Value};

use super::errors;
use crate::runtime::clock::format_iso8601;
use crate::wire::QuerySummary;

pub fn basic_query_info(summary: &QuerySummary, coordinator_uri: &str, error_message: Option<&str>) -> Value {
    let code = summary.error_name.as_deref().map(|name| {
        let known = errors::by_name(name);
        json!({
            "code": known.map(|code| code.code).unwrap_or(errors::GENERIC_INTERNAL_ERROR.code),
            "name": name,
            "type": known.map(|code| code.error_type).unwrap_or(errors::ErrorType::InternalError),
        })
    });
    let mut info = json!({
        "queryId": summary.query_id,
        "state": summary.state.name(),
        "scheduled": summary.state != crate::wire::QueryState::Queued,
        "self": format!("{coordinator_uri}/v1/query/{}", summary.query_id),
        "query": summary.query,
        "resourceGroupId": summary.group.split('.').collect::<Vec<_>>(),
        "memoryPool": "general",
        "session": { "user": summary.user, "source": summary.source },
        "queryStats": {
            "createTime": format_iso8601(summary.created_wall_ms),
            "userMemoryReservation": format!("{}B", summary.memory_bytes),
        },
    });
    if let (Some(object), Some(code)) = (info.as_object_mut(), code) {
        object.insert("errorType".into(), code["type"].clone());
        object.insert("errorCode".into(), code);
        if let Some(message) = error_message {
            object.insert("failureInfo".into(), json!({ "message": message }));
        }
    }
    info
}
