//! Tests for resource groups: spec validation, Presto's documented example, admission, the
//! scheduling policies, and property tests over random trees and operation sequences.

mod admission;
mod docs_example;
mod invariant_checks;
mod policies;
mod properties;
mod spec_errors;

use serde_json::{json, Value};

use super::{parse_resource_groups, AdmissionPolicy, ResourceGroupManager, SubmitOutcome};

/// A group's JSON with the required fields; `extra` is merged in.
pub(super) fn group(name: &str, hard: u32, max_queued: u32, extra: Value) -> Value {
    let mut value =
        json!({ "name": name, "hardConcurrencyLimit": hard, "maxQueued": max_queued, "softMemoryLimit": "100%" });
    if let (Value::Object(target), Value::Object(source)) = (&mut value, extra) {
        target.extend(source);
    }
    value
}

/// A whole document; every leaf id in `selector_groups` gets a catch-all-style selector keyed
/// by user name equal to the id (so tests can select any leaf).
pub(super) fn document(root_groups: Vec<Value>, selector_groups: &[&str]) -> String {
    let selectors: Vec<Value> =
        selector_groups.iter().map(|group| json!({ "user": regex::escape(group), "group": group })).collect();
    json!({ "rootGroups": root_groups, "selectors": selectors }).to_string()
}

pub(super) fn manager_for(text: &str, policy: AdmissionPolicy, threshold: f64) -> ResourceGroupManager {
    let spec = parse_resource_groups(text, "test.json").unwrap_or_else(|error| panic!("{error}"));
    let mut manager = ResourceGroupManager::new(spec, policy, threshold, 42, 0);
    manager.set_cluster_memory_bytes(1 << 40);
    manager
}

pub(super) fn running(manager: &ResourceGroupManager, group_id: &str) -> u32 {
    manager.tree.by_id.get(group_id).map_or(0, |index| manager.tree.group(*index).local_running())
}

pub(super) fn queued(manager: &ResourceGroupManager, group_id: &str) -> u32 {
    manager.tree.by_id.get(group_id).map_or(0, |index| manager.tree.group(*index).local_queued())
}

pub(super) fn submit(manager: &mut ResourceGroupManager, query_id: &str, group_id: &str, now_ms: u64) -> SubmitOutcome {
    let outcome = manager.submit(query_id, group_id, 1, now_ms);
    manager.check_invariants().unwrap_or_else(|error| panic!("after submitting {query_id}: {error}"));
    outcome
}
