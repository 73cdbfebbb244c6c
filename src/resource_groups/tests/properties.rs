//! Property tests: random small trees and random operation sequences.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use serde_json::{json, Value};

use super::{document, group, manager_for, running};
use crate::resource_groups::{AdmissionPolicy, ResourceGroupManager, SubmitOutcome};

#[derive(Clone, Debug)]
struct Shape {
    hard: u32,
    max_queued: u32,
    soft: Option<u32>,
    policy: Option<&'static str>,
    weight: u32,
    children: Vec<Shape>,
}

fn shape() -> impl Strategy<Value = Shape> {
    let policy = prop_oneof![
        Just(None),
        Just(Some("fair")),
        Just(Some("weighted")),
        Just(Some("weighted_fair")),
        Just(Some("query_priority"))
    ];
    let leaf = (0..4u32, 0..4u32, proptest::option::of(0..4u32), policy, 1..4u32).prop_map(
        |(hard, max_queued, soft, policy, weight)| Shape {
            hard,
            max_queued,
            soft: soft.map(|soft| soft.min(hard)),
            policy,
            weight,
            children: vec![],
        },
    );
    leaf.prop_recursive(2, 12, 3, |inner| {
        (inner.clone(), proptest::collection::vec(inner, 1..4)).prop_map(|(mut node, children)| {
            node.children = children;
            node
        })
    })
}

/// The shape as JSON (sub-groups of a query_priority group drop any other policy) plus leaf ids.
fn to_json(
    shape: &Shape,
    name: &str,
    parent_id: Option<&str>,
    parent_is_priority: bool,
    leaves: &mut Vec<String>,
) -> Value {
    let id = parent_id.map_or(name.to_string(), |parent| format!("{parent}.{name}"));
    let policy = shape.policy.filter(|policy| !parent_is_priority || *policy == "query_priority");
    let mut value = group(name, shape.hard, shape.max_queued, json!({ "schedulingWeight": shape.weight }));
    if let Some(policy) = policy {
        value["schedulingPolicy"] = json!(policy);
    }
    if let Some(soft) = shape.soft {
        value["softConcurrencyLimit"] = json!(soft);
    }
    if shape.children.is_empty() {
        leaves.push(id);
    } else {
        let is_priority = parent_is_priority || policy == Some("query_priority");
        let children: Vec<Value> = shape
            .children
            .iter()
            .enumerate()
            .map(|(index, child)| to_json(child, &format!("g{index}"), Some(&id), is_priority, leaves))
            .collect();
        value["subGroups"] = Value::Array(children);
    }
    value
}

#[derive(Clone, Debug)]
enum Op {
    Submit { leaf: usize, priority: i32 },
    Remove { query: usize },
    StartEligible,
    Refresh,
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..16usize, 0..4i32).prop_map(|(leaf, priority)| Op::Submit { leaf, priority }),
        2 => (0..32usize).prop_map(|query| Op::Remove { query }),
        2 => Just(Op::StartEligible),
        1 => Just(Op::Refresh),
        1 => (0..3u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

struct Run {
    manager: ResourceGroupManager,
    leaves: Vec<String>,
    live: Vec<String>,
    next_query: usize,
    now_ms: u64,
    /// `(op index, time)` of every start, per group id (a start counts for every ancestor).
    last_start: BTreeMap<String, (usize, u64)>,
    refreshes: Vec<(usize, u64)>,
}

impl Run {
    fn new(shape: &Shape, policy: AdmissionPolicy, threshold: f64) -> Run {
        let mut leaves = Vec::new();
        let root = to_json(shape, "root", None, false, &mut leaves);
        let text = document(vec![root], &leaves.iter().map(String::as_str).collect::<Vec<_>>());
        let manager = manager_for(&text, policy, threshold);
        Run {
            manager,
            leaves,
            live: Vec::new(),
            next_query: 0,
            now_ms: 0,
            last_start: BTreeMap::new(),
            refreshes: Vec::new(),
        }
    }

    /// Applies one op; returns the starts it caused as `(query, group)`.
    fn apply(&mut self, step: usize, op: &Op) -> Vec<(String, String)> {
        match op {
            Op::Submit { leaf, priority } => {
                let group_id = self.leaves[leaf % self.leaves.len()].clone();
                let query_id = format!("q{}", self.next_query);
                self.next_query += 1;
                match self.manager.submit(&query_id, &group_id, *priority, self.now_ms) {
                    SubmitOutcome::Started => {
                        self.live.push(query_id.clone());
                        return vec![(query_id, group_id)];
                    }
                    SubmitOutcome::Queued => self.live.push(query_id),
                    SubmitOutcome::QueueFull(message) => {
                        assert_eq!(message, format!("Too many queued queries for \"{group_id}\""))
                    }
                    SubmitOutcome::Invalid(message) => panic!("{message}"),
                }
            }
            Op::Remove { query } if !self.live.is_empty() => {
                let query_id = self.live.remove(query % self.live.len());
                assert!(self.manager.remove(&query_id));
            }
            Op::Remove { .. } => assert!(!self.manager.remove("unknown")),
            Op::StartEligible => return self.manager.start_eligible(self.now_ms),
            Op::Refresh => {
                self.manager.refresh(&[], self.now_ms);
                self.refreshes.push((step, self.now_ms));
            }
            Op::Advance { ms } => self.now_ms += ms,
        }
        Vec::new()
    }

    fn check_limits(&self) {
        self.manager.check_invariants().unwrap();
        let mut live = self.live.clone();
        live.sort();
        assert_eq!(
            live,
            self.manager.tree.queries.keys().cloned().collect::<Vec<_>>(),
            "every live query is in exactly one group"
        );
        for group in &self.manager.tree.groups {
            assert!(
                group.local_running() <= group.config.hard_concurrency_limit,
                "{} runs {}",
                group.id,
                group.local_running()
            );
            assert!(group.local_queued() <= group.config.max_queued, "{} queues {}", group.id, group.local_queued());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// With no remote counts, local decisions never exceed any group's hard limit or maxQueued,
    /// and the cached counts always match the queries.
    #[test]
    fn local_admission_respects_every_limit(
        shape in shape(),
        ops in proptest::collection::vec(op(), 1..80),
        naive in any::<bool>(),
        threshold in prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
    ) {
        let policy = if naive { AdmissionPolicy::Naive } else { AdmissionPolicy::Presto };
        let mut run = Run::new(&shape, policy, threshold);
        for (step, op) in ops.iter().enumerate() {
            run.apply(step, op);
            run.check_limits();
        }
    }

    /// At threshold 0, between two starts that count against the same group there is always a
    /// successful refresh that completed after the first of them.
    #[test]
    fn threshold_zero_needs_a_fresh_refresh_per_start(shape in shape(), ops in proptest::collection::vec(op(), 1..80)) {
        let mut run = Run::new(&shape, AdmissionPolicy::Presto, 0.0);
        for (step, op) in ops.iter().enumerate() {
            let now_ms = run.now_ms;
            for (_, group_id) in run.apply(step, op) {
                let mut path = group_id.as_str();
                loop {
                    if let Some((previous_step, previous_ms)) = run.last_start.get(path) {
                        let fresh = run.refreshes.iter().any(|(refresh_step, refresh_ms)| refresh_step > previous_step && refresh_ms > previous_ms);
                        prop_assert!(fresh, "{} started twice (at {} ms and {} ms) without a refresh in between", path, previous_ms, now_ms);
                    }
                    run.last_start.insert(path.to_string(), (step, now_ms));
                    match path.rsplit_once('.') {
                        Some((parent, _)) => path = parent,
                        None => break,
                    }
                }
            }
            run.check_limits();
        }
    }

    /// fair: FIFO within a group, and sub-groups with queued queries take turns in the order
    /// they became eligible.
    #[test]
    fn fair_sub_groups_take_turns(submissions in proptest::collection::vec(0..4usize, 1..24)) {
        let leaves: Vec<Value> = (0..5).map(|index| group(&format!("l{index}"), 5, 50, json!({}))).collect();
        let mut manager = single_slot_root("fair", leaves);
        let mut model: BTreeMap<String, VecDeque<String>> = BTreeMap::new();
        let mut turns: VecDeque<String> = VecDeque::new();
        for (index, leaf) in submissions.iter().enumerate() {
            let group_id = format!("root.l{leaf}");
            prop_assert_eq!(manager.submit(&format!("q{index}"), &group_id, 1, 0), SubmitOutcome::Queued);
            if !turns.contains(&group_id) {
                turns.push_back(group_id.clone());
            }
            model.entry(group_id).or_default().push_back(format!("q{index}"));
        }
        let mut current = "blocker".to_string();
        while let Some(expected_group) = turns.pop_front() {
            let expected = model.get_mut(&expected_group).unwrap().pop_front().unwrap();
            if !model[&expected_group].is_empty() {
                turns.push_back(expected_group.clone());
            }
            let started = start_after_removing(&mut manager, &current);
            prop_assert_eq!(&started, &(expected.clone(), expected_group));
            current = expected;
        }
    }

    /// query_priority: the next query is always one of the highest queued priority anywhere
    /// under the root, and FIFO among equal priorities within its group.
    #[test]
    fn query_priority_starts_the_highest_priority(submissions in proptest::collection::vec((0..3usize, 0..4i32), 1..24)) {
        let mut middle = group("m", 50, 50, json!({}));
        middle["subGroups"] = json!([group("x", 50, 50, json!({})), group("y", 50, 50, json!({}))]);
        let mut manager = single_slot_root("query_priority", vec![middle, group("w", 50, 50, json!({}))]);
        let ids = ["root.m.x", "root.m.y", "root.w"];
        let mut queued: Vec<(String, String, i32)> = Vec::new();
        for (index, (leaf, priority)) in submissions.iter().enumerate() {
            prop_assert_eq!(manager.submit(&format!("q{index}"), ids[*leaf], *priority, 0), SubmitOutcome::Queued);
            queued.push((format!("q{index}"), ids[*leaf].to_string(), *priority));
        }
        let mut current = "blocker".to_string();
        while !queued.is_empty() {
            let (query_id, group_id) = start_after_removing(&mut manager, &current);
            let best = queued.iter().map(|(_, _, priority)| *priority).max().unwrap();
            let first_in_group = queued.iter().find(|(_, group, priority)| *group == group_id && *priority == best).map(|(query, _, _)| query.clone());
            prop_assert_eq!(Some(query_id.clone()), first_in_group, "started {} in {}; best priority {}", query_id, group_id, best);
            queued.retain(|(query, _, _)| *query != query_id);
            current = query_id;
        }
    }

    /// weighted_fair: each start goes to a group with the least running relative to its weight.
    #[test]
    fn weighted_fair_prefers_least_running_per_weight(groups in proptest::collection::vec((1..5u32, 1..6usize), 2..5)) {
        let leaves: Vec<Value> = groups.iter().enumerate().map(|(index, (weight, _))| group(&format!("l{index}"), 50, 50, json!({ "schedulingWeight": weight }))).collect();
        let mut manager = gated_root("weighted_fair", leaves);
        let mut remaining: Vec<usize> = groups.iter().map(|(_, count)| *count).collect();
        for (index, (_, count)) in groups.iter().enumerate() {
            for query in 0..*count {
                prop_assert_eq!(manager.submit(&format!("l{index}q{query}"), &format!("root.l{index}"), 1, 0), SubmitOutcome::Queued);
            }
        }
        for now_ms in 1..=remaining.iter().sum::<usize>() as u64 {
            let before: Vec<u64> = (0..groups.len()).map(|index| u64::from(running(&manager, &format!("root.l{index}")))).collect();
            let (_, group_id) = start_by_refresh(&mut manager, now_ms);
            let chosen: usize = group_id.trim_start_matches("root.l").parse().unwrap();
            for other in (0..groups.len()).filter(|other| remaining[*other] > 0) {
                // before[chosen] / weight[chosen] <= before[other] / weight[other]
                prop_assert!(before[chosen] * u64::from(groups[other].0) <= before[other] * u64::from(groups[chosen].0), "{:?} chose l{}", before, chosen);
            }
            remaining[chosen] -= 1;
        }
    }

    /// Soft concurrency limits (weighted parent): a group at or above its soft limit starts a
    /// query only when every sibling that could start one is at or above its own.
    #[test]
    fn soft_limits_yield_to_siblings_below_theirs(groups in proptest::collection::vec((1..5u32, 0..4u32, 1..6usize), 2..5), seed in any::<u64>()) {
        let leaves: Vec<Value> = groups.iter().enumerate()
            .map(|(index, (weight, soft, _))| group(&format!("l{index}"), 10, 50, json!({ "schedulingWeight": weight, "softConcurrencyLimit": soft })))
            .collect();
        let mut manager = gated_root("weighted", leaves);
        manager.tree.rng = crate::resource_groups::queues::Rng::new(seed);
        let mut remaining: Vec<usize> = groups.iter().map(|(_, _, count)| *count).collect();
        for (index, (_, _, count)) in groups.iter().enumerate() {
            for query in 0..*count {
                prop_assert_eq!(manager.submit(&format!("l{index}q{query}"), &format!("root.l{index}"), 1, 0), SubmitOutcome::Queued);
            }
        }
        for now_ms in 1..=remaining.iter().sum::<usize>() as u64 {
            let before: Vec<u32> = (0..groups.len()).map(|index| running(&manager, &format!("root.l{index}"))).collect();
            let (_, group_id) = start_by_refresh(&mut manager, now_ms);
            let chosen: usize = group_id.trim_start_matches("root.l").parse().unwrap();
            if before[chosen] >= groups[chosen].1 {
                for other in (0..groups.len()).filter(|other| remaining[*other] > 0) {
                    prop_assert!(before[other] >= groups[other].1, "l{} (at its soft limit) started while l{} was below its own: {:?}", chosen, other, before);
                }
            }
            remaining[chosen] -= 1;
        }
    }
}

/// A root with the given policy that runs one query at a time, holding a running blocker query.
fn single_slot_root(policy: &str, mut leaves: Vec<Value>) -> ResourceGroupManager {
    leaves.push(group("blocker", 1, 1, json!({})));
    let mut root = group("root", 1, 100, json!({ "schedulingPolicy": policy }));
    root["subGroups"] = Value::Array(leaves);
    let mut ids = Vec::new();
    collect_leaf_ids(&root, "", &mut ids);
    let mut manager = manager_for(
        &document(vec![root], &ids.iter().map(String::as_str).collect::<Vec<_>>()),
        AdmissionPolicy::Presto,
        1.0,
    );
    assert_eq!(manager.submit("blocker", "root.blocker", 0, 0), SubmitOutcome::Started);
    manager
}

/// A root with the given policy at threshold 0 and no refresh yet: everything queues, and each
/// later refresh lets exactly one query start.
fn gated_root(policy: &str, leaves: Vec<Value>) -> ResourceGroupManager {
    let mut root = group("root", 100, 100, json!({ "schedulingPolicy": policy }));
    root["subGroups"] = Value::Array(leaves);
    let mut ids = Vec::new();
    collect_leaf_ids(&root, "", &mut ids);
    manager_for(
        &document(vec![root], &ids.iter().map(String::as_str).collect::<Vec<_>>()),
        AdmissionPolicy::Presto,
        0.0,
    )
}

fn collect_leaf_ids(value: &Value, parent: &str, ids: &mut Vec<String>) {
    let name = value["name"].as_str().unwrap();
    let id = if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") };
    match value.get("subGroups").and_then(Value::as_array) {
        Some(children) => children.iter().for_each(|child| collect_leaf_ids(child, &id, ids)),
        None => ids.push(id),
    }
}

fn start_after_removing(manager: &mut ResourceGroupManager, running_query: &str) -> (String, String) {
    assert!(manager.remove(running_query));
    let mut started = manager.start_eligible(0);
    manager.check_invariants().unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    started.pop().unwrap()
}

fn start_by_refresh(manager: &mut ResourceGroupManager, now_ms: u64) -> (String, String) {
    manager.refresh(&[], now_ms);
    let mut started = manager.start_eligible(now_ms);
    manager.check_invariants().unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    started.pop().unwrap()
}
