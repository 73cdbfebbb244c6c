//! Admission: ancestors, the local + remote merge, memory, workers, cpu quota, the freshness
//! gate, and what the manager reports.

use serde_json::json;

use super::{document, group, manager_for, queued, running, submit};
use crate::resource_groups::{AdmissionPolicy, ResourceGroupManager, SelectionContext, SubmitOutcome, GROUPS_MAX};
use crate::wire::GroupCounts;

/// `root` (hard 3, queue 2) → leaves `a` and `b` (hard 5, queue 5 each).
fn two_leaves(policy: AdmissionPolicy, threshold: f64) -> ResourceGroupManager {
    let mut root = group("root", 3, 2, json!({}));
    root["subGroups"] = json!([group("a", 5, 5, json!({})), group("b", 5, 5, json!({}))]);
    manager_for(&document(vec![root], &["root.a", "root.b"]), policy, threshold)
}

fn counts(group: &str, running: u32, queued: u32, descendant_running: u32, descendant_queued: u32) -> GroupCounts {
    GroupCounts { group: group.to_string(), running, queued, descendant_running, descendant_queued, memory_bytes: 0 }
}

#[test]
fn every_ancestor_limits_running_and_queueing() {
    let mut manager = two_leaves(AdmissionPolicy::Presto, 1.0);
    for query in ["a1", "a2"] {
        assert_eq!(submit(&mut manager, query, "root.a", 0), SubmitOutcome::Started);
    }
    assert_eq!(submit(&mut manager, "b1", "root.b", 0), SubmitOutcome::Started);
    assert_eq!(submit(&mut manager, "b2", "root.b", 0), SubmitOutcome::Queued, "the root is full");
    assert_eq!(submit(&mut manager, "a3", "root.a", 0), SubmitOutcome::Queued);
    assert_eq!(
        submit(&mut manager, "a4", "root.a", 0),
        SubmitOutcome::QueueFull("Too many queued queries for \"root.a\"".into())
    );
    assert_eq!((running(&manager, "root"), queued(&manager, "root")), (3, 2));
    assert!(manager.remove("b2"), "a queued query can be removed");
    assert!(!manager.remove("b2"));
    assert!(manager.remove("a1"));
    assert_eq!(manager.start_eligible(5), vec![("a3".to_string(), "root.a".to_string())]);
    assert!(manager.start_eligible(6).is_empty());
    manager.check_invariants().unwrap();
}

#[test]
fn remote_counts_merge_into_every_check() {
    let mut manager = two_leaves(AdmissionPolicy::Presto, 1.0);
    // Other coordinators run 2 in root.b and queue 1 in root.a.
    let remote = [counts("root", 0, 0, 2, 1), counts("root.a", 0, 1, 0, 0), counts("root.b", 2, 0, 0, 0)];
    manager.refresh(&remote, 0);
    assert_eq!(submit(&mut manager, "a1", "root.a", 1), SubmitOutcome::Started);
    assert_eq!(submit(&mut manager, "a2", "root.a", 1), SubmitOutcome::Queued, "1 local + 2 remote fill the root");
    assert!(
        matches!(submit(&mut manager, "a3", "root.a", 1), SubmitOutcome::QueueFull(_)),
        "1 local + 1 remote queued fill the root queue"
    );
    let info = manager.group_info("root", true).unwrap();
    assert_eq!((info["numRunningQueries"].clone(), info["numQueuedQueries"].clone()), (json!(3), json!(2)));
    assert_eq!(info["state"], "FULL");
    let local = manager.group_info("root", false).unwrap();
    assert_eq!((local["numRunningQueries"].clone(), local["numQueuedQueries"].clone()), (json!(1), json!(1)));
    // The other coordinators finish: the next refresh frees the slots.
    manager.refresh(&[], 2);
    assert_eq!(manager.start_eligible(2), vec![("a2".to_string(), "root.a".to_string())]);
    manager.check_invariants().unwrap();
}

#[test]
fn soft_memory_limit_counts_local_and_remote_memory() {
    let leaf = group("leaf", 10, 10, json!({ "softMemoryLimit": "10MB" }));
    let mut manager = manager_for(&document(vec![leaf], &["leaf"]), AdmissionPolicy::Presto, 1.0);
    assert_eq!(submit(&mut manager, "q1", "leaf", 0), SubmitOutcome::Started);
    manager.set_query_memory_bytes("q1", 11 << 20);
    assert_eq!(submit(&mut manager, "q2", "leaf", 0), SubmitOutcome::Queued, "over the soft memory limit");
    manager.set_query_memory_bytes("q1", 4 << 20);
    assert_eq!(manager.start_eligible(1).len(), 1);
    let mut remote = counts("leaf", 1, 0, 0, 0);
    remote.memory_bytes = 7 << 20;
    manager.refresh(&[remote], 2);
    assert_eq!(submit(&mut manager, "q3", "leaf", 2), SubmitOutcome::Queued, "4MB local + 7MB remote");
    assert!(manager.remove("q1"));
    assert_eq!(manager.start_eligible(3).len(), 1);

    // Percentages resolve against the cluster memory the coordinator sets.
    let leaf = group("leaf", 10, 10, json!({ "softMemoryLimit": "50%" }));
    let mut manager = manager_for(&document(vec![leaf], &["leaf"]), AdmissionPolicy::Presto, 1.0);
    manager.set_cluster_memory_bytes(100);
    assert_eq!(submit(&mut manager, "q1", "leaf", 0), SubmitOutcome::Started);
    manager.set_query_memory_bytes("q1", 60);
    assert_eq!(submit(&mut manager, "q2", "leaf", 0), SubmitOutcome::Queued);
    manager.set_cluster_memory_bytes(200);
    assert_eq!(manager.start_eligible(0).len(), 1, "a bigger pool raises a percentage limit");
    assert_eq!(manager.group_info("leaf", false).unwrap()["softMemoryLimit"], "100B");
}

#[test]
fn workers_per_query_limit_needs_active_workers() {
    let leaf = group("leaf", 10, 10, json!({ "workersPerQueryLimit": 2 }));
    let mut manager = manager_for(&document(vec![leaf], &["leaf"]), AdmissionPolicy::Presto, 1.0);
    manager.set_active_workers(3);
    assert_eq!(submit(&mut manager, "q1", "leaf", 0), SubmitOutcome::Started, "0 × 2 <= 3");
    assert_eq!(submit(&mut manager, "q2", "leaf", 0), SubmitOutcome::Started, "1 × 2 <= 3");
    assert_eq!(submit(&mut manager, "q3", "leaf", 0), SubmitOutcome::Queued, "2 × 2 > 3");
    manager.set_active_workers(4);
    assert_eq!(manager.start_eligible(0).len(), 1);
}

#[test]
fn cpu_quota_penalises_then_regenerates() {
    let leaf = group("leaf", 10, 100, json!({ "softCpuLimit": "10m", "hardCpuLimit": "20m" }));
    let mut text: serde_json::Value = serde_json::from_str(&document(vec![leaf], &["leaf"])).unwrap();
    text["cpuQuotaPeriod"] = json!("1h");
    let mut manager = manager_for(&text.to_string(), AdmissionPolicy::Presto, 1.0);
    assert_eq!(submit(&mut manager, "q0", "leaf", 0), SubmitOutcome::Started);
    // 15 of the 20 cpu minutes used: linear penalty halves the limit to 5.
    manager.charge_cpu_ms("leaf", 15 * 60_000, 0);
    let index = manager.tree.by_id["leaf"];
    assert_eq!(manager.tree.hard_limit_based_on_cpu(index), 5);
    let outcomes: Vec<_> = (1..6).map(|i| submit(&mut manager, &format!("q{i}"), "leaf", 0)).collect();
    assert_eq!(outcomes.iter().filter(|outcome| **outcome == SubmitOutcome::Started).count(), 4);
    assert_eq!(running(&manager, "leaf"), 5);
    // At the hard cpu limit nothing runs, even with free slots.
    manager.charge_cpu_ms("leaf", 5 * 60_000, 0);
    for i in 0..5 {
        assert!(manager.remove(&format!("q{i}")));
    }
    assert!(manager.start_eligible(0).is_empty(), "cpu quota exhausted");
    // The quota regenerates at 20 min per hour: 1000 × 1_200_000 / 3_600_000 = 333 ms each second.
    assert_eq!(manager.tree.group(index).config.cpu_quota_ms_per_second, 333);
    assert_eq!(manager.start_eligible(999).len(), 0, "no whole second has passed");
    assert_eq!(manager.start_eligible(1_000).len(), 1);
    assert_eq!(manager.tree.group(index).cpu_usage_ms, 20 * 60_000 - 333);
}

#[test]
fn the_gate_allows_one_start_per_fresh_refresh() {
    let mut manager = two_leaves(AdmissionPolicy::Presto, 0.0);
    assert_eq!(submit(&mut manager, "a1", "root.a", 0), SubmitOutcome::Queued, "no refresh yet: wait");
    assert_eq!(submit(&mut manager, "b1", "root.b", 0), SubmitOutcome::Queued);
    manager.refresh(&[], 5);
    assert_eq!(
        manager.start_eligible(5).len(),
        1,
        "the start stamps the root, which then waits though root.b's stamp is older"
    );
    manager.refresh(&[], 5);
    assert!(manager.start_eligible(5).is_empty(), "a refresh in the same millisecond as the start is not fresher");
    manager.refresh(&[], 6);
    assert_eq!(manager.start_eligible(6).len(), 1);
    // A failed poll (no refresh call) keeps the group waiting however long it takes.
    assert_eq!(submit(&mut manager, "a2", "root.a", 7), SubmitOutcome::Queued);
    assert!(manager.start_eligible(60_000).is_empty());
    manager.refresh(&[], 60_001);
    assert_eq!(manager.start_eligible(60_001).len(), 1);

    // Threshold 0.5 of 3: below 1.5 running the stale view is trusted; at or above it, gated.
    let mut manager = two_leaves(AdmissionPolicy::Presto, 0.5);
    manager.refresh(&[], 0);
    assert_eq!(submit(&mut manager, "a1", "root.a", 1), SubmitOutcome::Started);
    assert_eq!(submit(&mut manager, "a2", "root.a", 1), SubmitOutcome::Started);
    assert_eq!(submit(&mut manager, "a3", "root.a", 1), SubmitOutcome::Queued, "2 running >= 1.5 and no refresh since");
    manager.refresh(&[], 2);
    assert_eq!(manager.start_eligible(2).len(), 1);
}

#[test]
fn naive_admits_where_presto_waits() {
    let run = |policy| {
        let mut manager = two_leaves(policy, 0.0);
        let first = submit(&mut manager, "a1", "root.a", 0);
        manager.refresh(&[], 1);
        let started = manager.start_eligible(1).len();
        // Another coordinator may have taken the other slots since that refresh: wait for the next.
        let second = submit(&mut manager, "b1", "root.b", 2);
        (first, started, second)
    };
    assert_eq!(run(AdmissionPolicy::Presto), (SubmitOutcome::Queued, 1, SubmitOutcome::Queued));
    assert_eq!(run(AdmissionPolicy::Naive), (SubmitOutcome::Started, 0, SubmitOutcome::Started));
}

#[test]
fn templates_create_groups_up_to_the_cap() {
    let mut root = group("root", 1_000_000, 1_000_000, json!({}));
    root["subGroups"] = json!([group("${USER}", 1, 1, json!({}))]);
    let text = json!({ "rootGroups": [root], "selectors": [{ "group": "root.${USER}" }] }).to_string();
    let mut manager = manager_for(&text, AdmissionPolicy::Presto, 1.0);
    let select = |manager: &ResourceGroupManager, user: &str| {
        manager.select(&SelectionContext { user: user.to_string(), ..Default::default() }).unwrap()
    };
    assert_eq!(select(&manager, "john.doe"), "root.john_doe", "dots in values cannot split the id");
    for user in 0..GROUPS_MAX - 1 {
        let group_id = select(&manager, &format!("u{user}"));
        assert_eq!(manager.submit(&format!("q{user}"), &group_id, 1, 0), SubmitOutcome::Started);
    }
    let last = select(&manager, "one-too-many");
    assert_eq!(
        manager.submit("last", &last, 1, 0),
        SubmitOutcome::Invalid(format!(
            "Cannot create resource group root.one-too-many: this coordinator already has {GROUPS_MAX} groups"
        ))
    );
    assert!(
        matches!(manager.submit("q0", "root.u0", 1, 0), SubmitOutcome::Invalid(message) if message.contains("already in root.u0"))
    );
    assert!(
        matches!(manager.submit("x", "nowhere", 1, 0), SubmitOutcome::Invalid(message) if message.contains("No resource group configuration matches nowhere"))
    );
    manager.check_invariants().unwrap();
}

#[test]
fn legacy_manager_is_one_global_group() {
    let mut manager = ResourceGroupManager::legacy(1, 1, AdmissionPolicy::Presto, 1.0, 1, 0);
    let group_id = manager.select(&SelectionContext { user: "anyone".into(), ..Default::default() }).unwrap();
    assert_eq!(group_id, "global");
    assert_eq!(submit(&mut manager, "q1", &group_id, 0), SubmitOutcome::Started);
    assert_eq!(submit(&mut manager, "q2", &group_id, 0), SubmitOutcome::Queued);
    assert_eq!(
        submit(&mut manager, "q3", &group_id, 0),
        SubmitOutcome::QueueFull("Too many queued queries for \"global\"".into())
    );
    assert_eq!(manager.hard_concurrency_limit("global"), Some(1));
}

#[test]
fn reports_presto_group_info_and_local_counts() {
    let mut manager = two_leaves(AdmissionPolicy::Presto, 1.0);
    submit(&mut manager, "a1", "root.a", 0);
    manager.set_query_memory_bytes("a1", 3 << 30);
    for query in ["a2", "a3", "b1"] {
        submit(&mut manager, query, if query == "b1" { "root.b" } else { "root.a" }, 0);
    }
    let info = manager.group_info("root", false).unwrap();
    assert_eq!(info["id"], json!(["root"]));
    assert_eq!(info["state"], "CAN_QUEUE");
    assert_eq!(info["schedulingPolicy"], "FAIR");
    assert_eq!(info["softMemoryLimit"], "1TB");
    assert_eq!(info["memoryUsage"], "3GB");
    assert_eq!(
        (info["hardConcurrencyLimit"].clone(), info["softConcurrencyLimit"].clone(), info["maxQueuedQueries"].clone()),
        (json!(3), json!(3), json!(2))
    );
    assert_eq!((info["numRunningQueries"].clone(), info["numQueuedQueries"].clone()), (json!(3), json!(1)));
    assert_eq!(info["subGroups"].as_array().unwrap().len(), 2);
    assert_eq!(info["subGroups"][0]["id"], json!(["root", "a"]));
    assert!(info["subGroups"][0].get("subGroups").is_none(), "summaries have no sub-groups");
    assert!(manager.group_info("root.c", false).is_none());
    let local = manager.local_counts();
    assert_eq!(
        local,
        vec![
            GroupCounts {
                group: "root".into(),
                running: 0,
                queued: 0,
                descendant_running: 3,
                descendant_queued: 1,
                memory_bytes: 3 << 30
            },
            GroupCounts {
                group: "root.a".into(),
                running: 3,
                queued: 0,
                descendant_running: 0,
                descendant_queued: 0,
                memory_bytes: 3 << 30
            },
            GroupCounts {
                group: "root.b".into(),
                running: 0,
                queued: 1,
                descendant_running: 0,
                descendant_queued: 0,
                memory_bytes: 0
            },
        ]
    );
    assert_eq!(manager.per_query_limits("root.a"), Default::default());
}
