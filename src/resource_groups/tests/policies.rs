//! The documented order of each scheduling policy, on small fixed trees.
//!
//! Two harnesses make the order observable. "Blocker": the root runs one query at a time, so
//! removing the running query and calling `start_eligible` starts exactly the next one. "Gate":
//! at threshold 0 every start stamps the root, so each refresh lets exactly one more start while
//! running counts accumulate (what weighted_fair and soft limits look at).

use serde_json::{json, Value};

use super::{document, group, manager_for, running, submit};
use crate::resource_groups::{AdmissionPolicy, ResourceGroupManager, SubmitOutcome};

fn tree(root_policy: &str, root_hard: u32, leaves: Vec<Value>) -> String {
    let mut root = group("root", root_hard, 1000, json!({ "schedulingPolicy": root_policy }));
    let ids: Vec<String> = leaves.iter().map(|leaf| format!("root.{}", leaf["name"].as_str().unwrap())).collect();
    root["subGroups"] = Value::Array(leaves);
    document(vec![root], &ids.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Removes the running query and returns the one that starts next.
fn next_after(manager: &mut ResourceGroupManager, running_query: &str, now_ms: u64) -> (String, String) {
    assert!(manager.remove(running_query));
    let mut started = manager.start_eligible(now_ms);
    manager.check_invariants().unwrap();
    assert_eq!(started.len(), 1, "the root runs one query at a time: {started:?}");
    started.pop().unwrap()
}

/// One refresh, one start (the gate harness).
fn next_by_refresh(manager: &mut ResourceGroupManager, now_ms: u64) -> Option<(String, String)> {
    manager.refresh(&[], now_ms);
    let mut started = manager.start_eligible(now_ms);
    manager.check_invariants().unwrap();
    assert!(started.len() <= 1, "threshold 0 allows one start per refresh: {started:?}");
    started.pop()
}

fn submit_priority(manager: &mut ResourceGroupManager, query: &str, group_id: &str, priority: i32) {
    assert_eq!(manager.submit(query, group_id, priority, 0), SubmitOutcome::Queued, "{query}");
}

#[test]
fn fair_is_fifo_and_sub_groups_take_turns() {
    let leaves = ["a", "b", "c", "z"].map(|name| group(name, 5, 10, json!({}))).to_vec();
    let mut manager = manager_for(&tree("fair", 1, leaves), AdmissionPolicy::Presto, 1.0);
    assert_eq!(submit(&mut manager, "z1", "root.z", 0), SubmitOutcome::Started);
    for (query, leaf) in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c"), ("c2", "c")] {
        assert_eq!(submit(&mut manager, query, &format!("root.{leaf}"), 0), SubmitOutcome::Queued);
    }
    let mut order = Vec::new();
    let mut current = "z1".to_string();
    for now_ms in 1..=6 {
        current = next_after(&mut manager, &current, now_ms).0;
        order.push(current.clone());
    }
    assert_eq!(order, ["a1", "b1", "c1", "a2", "c2", "a3"]);
}

#[test]
fn query_priority_is_strict_across_nested_groups_and_fifo_within_a_leaf() {
    let mut root = group("root", 1, 100, json!({ "schedulingPolicy": "query_priority" }));
    let mut left = group("left", 10, 100, json!({}));
    left["subGroups"] = json!([group("x", 10, 100, json!({}))]);
    let mut right = group("right", 10, 100, json!({}));
    right["subGroups"] = json!([group("y", 10, 100, json!({})), group("z", 10, 100, json!({}))]);
    root["subGroups"] = json!([left, right]);
    let text = document(vec![root], &["root.left.x", "root.right.y", "root.right.z"]);
    let mut manager = manager_for(&text, AdmissionPolicy::Presto, 1.0);
    assert_eq!(manager.submit("blocker", "root.right.z", 0, 0), SubmitOutcome::Started);
    for (query, leaf, priority) in
        [("x1", "x", 1), ("x5a", "x", 5), ("y5", "y", 5), ("y9", "y", 9), ("x5b", "x", 5), ("x1b", "x", 1)]
    {
        let group_id = if leaf == "x" { "root.left.x".to_string() } else { format!("root.right.{leaf}") };
        submit_priority(&mut manager, query, &group_id, priority);
    }
    let mut order = Vec::new();
    let mut current = "blocker".to_string();
    for now_ms in 1..=6 {
        current = next_after(&mut manager, &current, now_ms).0;
        order.push(current.clone());
    }
    // 9 first; among the 5s the sub-group that waited longest; within x, 5 before 1, FIFO.
    assert_eq!(order, ["y9", "x5a", "y5", "x5b", "x1", "x1b"]);
}

#[test]
fn weighted_fair_starts_the_least_running_relative_to_weight() {
    let leaves = vec![
        group("a", 100, 100, json!({ "schedulingWeight": 2 })),
        group("b", 100, 100, json!({ "schedulingWeight": 1 })),
    ];
    let mut manager = manager_for(&tree("weighted_fair", 100, leaves), AdmissionPolicy::Presto, 0.0);
    for index in 0..20 {
        submit_priority(&mut manager, &format!("a{index}"), "root.a", 1);
        submit_priority(&mut manager, &format!("b{index}"), "root.b", 1);
    }
    for now_ms in 1..=9 {
        let (a_before, b_before) = (running(&manager, "root.a"), running(&manager, "root.b"));
        let (_, group_id) = next_by_refresh(&mut manager, now_ms).unwrap();
        // running / weight, compared without division: a/2 against b/1.
        let (chosen, other) = if group_id == "root.a" { (a_before, 2 * b_before) } else { (2 * b_before, a_before) };
        assert!(chosen <= other, "start {now_ms} went to {group_id} with a={a_before} b={b_before}");
    }
    assert_eq!((running(&manager, "root.a"), running(&manager, "root.b")), (6, 3));
}

#[test]
fn weighted_draws_sub_groups_in_proportion_to_weight_reproducibly() {
    let run = |seed: u64| {
        let leaves = vec![
            group("a", 1000, 1000, json!({ "schedulingWeight": 3 })),
            group("b", 1000, 1000, json!({ "schedulingWeight": 1 })),
        ];
        let spec = crate::resource_groups::parse_resource_groups(&tree("weighted", 1000, leaves), "x").unwrap();
        let mut manager = ResourceGroupManager::new(spec, AdmissionPolicy::Presto, 0.0, seed, 0);
        manager.set_cluster_memory_bytes(1 << 30);
        for index in 0..400 {
            submit_priority(&mut manager, &format!("a{index}"), "root.a", 1);
            submit_priority(&mut manager, &format!("b{index}"), "root.b", 1);
        }
        (1..=400).map(|now_ms| next_by_refresh(&mut manager, now_ms).unwrap().1).collect::<Vec<_>>()
    };
    let order = run(11);
    let a_count = order.iter().filter(|group_id| *group_id == "root.a").count() as f64;
    let ratio = a_count / (400.0 - a_count);
    assert!((2.4..3.8).contains(&ratio), "weights 3:1 gave {ratio:.2}:1");
    assert_eq!(order, run(11), "same seed, same draws");
    assert_ne!(order, run(12));
}

#[test]
fn weighted_draws_queries_in_proportion_to_priority() {
    let mut high_first = 0;
    for seed in 0..400 {
        let leaf = group("leaf", 10, 10, json!({ "schedulingPolicy": "weighted" }));
        let spec = crate::resource_groups::parse_resource_groups(&document(vec![leaf], &["leaf"]), "x").unwrap();
        let mut manager = ResourceGroupManager::new(spec, AdmissionPolicy::Presto, 0.0, seed, 0);
        submit_priority(&mut manager, "low", "leaf", 1);
        submit_priority(&mut manager, "high", "leaf", 9);
        if next_by_refresh(&mut manager, 1).unwrap().0 == "high" {
            high_first += 1;
        }
    }
    assert!((330..390).contains(&high_first), "priority 9 vs 1 went first {high_first} times of 400 (expected ~360)");
}

#[test]
fn soft_concurrency_limit_yields_to_siblings_below_theirs() {
    let leaves = vec![
        group("a", 10, 100, json!({ "schedulingWeight": 100, "softConcurrencyLimit": 2 })),
        group("b", 10, 100, json!({ "schedulingWeight": 1, "softConcurrencyLimit": 3 })),
    ];
    let mut manager = manager_for(&tree("weighted", 100, leaves), AdmissionPolicy::Presto, 0.0);
    for index in 0..10 {
        submit_priority(&mut manager, &format!("a{index}"), "root.a", 1);
        submit_priority(&mut manager, &format!("b{index}"), "root.b", 1);
    }
    for now_ms in 1..=14 {
        let (a_before, b_before) = (running(&manager, "root.a"), running(&manager, "root.b"));
        let (_, group_id) = next_by_refresh(&mut manager, now_ms).unwrap();
        if group_id == "root.a" && a_before >= 2 {
            assert!(b_before >= 3, "a (at its soft limit 2) started while b ran {b_before} < its soft limit 3");
        }
        if group_id == "root.b" && b_before >= 3 {
            assert!(a_before >= 2, "b (at its soft limit) started while a was below its own");
        }
    }
    assert_eq!((running(&manager, "root.a") + running(&manager, "root.b")), 14);
    assert!(running(&manager, "root.b") >= 3, "b reached its soft limit before a went past its own");
}
