//! Each incremental check the manager runs after an input catches the state it guards against,
//! broken here on purpose (the full check must agree).

use serde_json::json;

use super::{document, group, manager_for};
use crate::resource_groups::{AdmissionPolicy, ResourceGroupManager, SubmitOutcome};

/// `root` (limit 2) with leaves `root.a` and `root.b` (limit 1 each): q1 runs in a, q2 runs in
/// b, q3 waits in a.
fn busy_manager() -> ResourceGroupManager {
    let leaves = vec![group("a", 1, 10, json!({})), group("b", 1, 10, json!({}))];
    let text = document(vec![group("root", 2, 10, json!({ "subGroups": leaves }))], &["root.a", "root.b"]);
    let mut manager = manager_for(&text, AdmissionPolicy::Presto, 1.0);
    assert_eq!(manager.submit("q1", "root.a", 1, 0), SubmitOutcome::Started);
    assert_eq!(manager.submit("q2", "root.b", 1, 0), SubmitOutcome::Started);
    assert_eq!(manager.submit("q3", "root.a", 1, 0), SubmitOutcome::Queued);
    manager.set_query_memory_bytes("q1", 100);
    manager.check_invariants().expect("consistent before the damage");
    manager
}

fn index(manager: &ResourceGroupManager, group_id: &str) -> u32 {
    manager.tree.by_id[group_id]
}

/// Both the path check (what runs after an input) and the full check reject the damage.
fn assert_caught(manager: &ResourceGroupManager, leaf: &str, expected: &str) {
    let path = manager.tree.check_path(index(manager, leaf)).expect_err("the path check must catch it");
    assert!(path.contains(expected), "path check said {path:?}, expected {expected:?}");
    assert!(manager.tree.check_groups().is_err(), "the every-group check must catch it too");
    assert!(manager.check_invariants().is_err(), "the full check must catch it too");
}

#[test]
fn a_consistent_tree_passes_every_check() {
    let manager = busy_manager();
    for leaf in ["root.a", "root.b"] {
        manager.tree.check_path(index(&manager, leaf)).unwrap();
    }
    manager.tree.check_groups().unwrap();
    manager.tree.check_query("q3", index(&manager, "root.a")).unwrap();
    manager.tree.check_query("gone", index(&manager, "root.a")).unwrap();
}

#[test]
fn descendant_counts_that_disagree_with_the_sub_groups_are_caught() {
    let mut manager = busy_manager();
    let root = index(&manager, "root");
    manager.tree.groups[root as usize].descendant_running += 1;
    assert_caught(&manager, "root.b", "descendant running/queued 3/1 but sub-groups hold 2/1");
}

#[test]
fn memory_that_disagrees_with_the_running_queries_is_caught() {
    let mut manager = busy_manager();
    let a = index(&manager, "root.a");
    manager.tree.groups[a as usize].local_memory_bytes = 99;
    assert_caught(&manager, "root.a", "root.a: memory 99 but its running queries hold 100");
}

#[test]
fn a_running_query_missing_from_the_query_table_is_caught() {
    let mut manager = busy_manager();
    manager.tree.queries.get_mut("q2").expect("q2 is held").running = false;
    assert_caught(&manager, "root.b", "running query q2 is not running here");
    let query = manager.tree.check_query("q2", index(&manager, "root.b")).expect_err("entry and sets disagree");
    assert!(query.contains("running set true, queue false, entry false"), "{query}");
}

#[test]
fn a_query_lost_from_the_groups_is_caught_by_the_totals() {
    let mut manager = busy_manager();
    let b = index(&manager, "root.b");
    manager.tree.queries.insert(
        "ghost".into(),
        crate::resource_groups::tree::QueryEntry { group: b, running: false, memory_bytes: 0 },
    );
    let totals = manager.tree.check_totals().expect_err("the table holds a query no group counts");
    assert!(totals.contains("root groups count 2 running and 1 queued, but 4 queries are held"), "{totals}");
}

#[test]
fn a_removed_query_still_listed_by_its_leaf_is_caught() {
    let mut manager = busy_manager();
    manager.tree.queries.remove("q3");
    let error = manager.tree.check_query("q3", index(&manager, "root.a")).expect_err("root.a still queues q3");
    assert!(error.contains("q3 was removed but root.a still lists it"), "{error}");
}

#[test]
fn a_wrong_eligible_set_is_caught() {
    let mut manager = busy_manager();
    // root.a is full (q1 runs, limit 1), so it must not be listed as able to start q3.
    let (root, a) = (index(&manager, "root"), index(&manager, "root.a"));
    manager.tree.groups[root as usize].eligible.add_or_update(a, 1, true, 0);
    assert_caught(&manager, "root.a", "root.a: eligible false but listed in its parent's eligible set: true");
}

#[test]
fn every_input_runs_the_check() {
    // With a broken tree, the next input's check reports it: in a test build that panics at
    // the spot (in simulation it fails the run instead).
    let mut manager = busy_manager();
    let root = index(&manager, "root");
    manager.tree.groups[root as usize].descendant_queued += 5;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| manager.remove("q2")));
    assert!(caught.is_err(), "remove() applied an input on a broken tree without noticing");
}
