//! The query manager without a runtime: each decision from its inputs, and a property test of
//! random input sequences against the invariants.

use proptest::prelude::*;

use super::*;
use crate::config::properties::Properties;
use crate::protocol::session::HeaderDialect;
use crate::protocol::SessionContext;
use crate::wire::{ClusterMemory, MemoryInfo};

const SYNTHETIC: &str = "SELECT * FROM synthetic(run_time => '1s', memory => '100MB', tasks => 2, rows => 4)";

fn node_config(extra: &str) -> NodeConfig {
    let text = format!(
        "node.environment=test\nnode.id=coordinator-1\ncoordinator=true\nresource-manager-enabled=true\n\
         discovery.uri=http://127.0.0.1:8090\n{extra}"
    );
    NodeConfig::from_properties(&Properties::parse(&text, "config.properties").expect("test properties parse"))
        .expect("test config is valid")
}

/// A coordinator allowing 2 running and 1 queued query, plus `extra` properties. Admission is
/// `naive` (no freshness gate) unless `extra` says otherwise, so that each test sees only the
/// decision it is about.
fn manager(extra: &str) -> QueryManager {
    let policy = if extra.contains("resource-group-admission-policy") { "" } else { "resource-group-admission-policy=naive\n" };
    let config = node_config(&format!("query.max-concurrent-queries=2\nquery.max-queued-queries=1\n{policy}{extra}"));
    let mut manager = QueryManager::new(&config, 7, 0).expect("manager builds");
    // The cluster's memory (what softMemoryLimit resolves against) is known from a first view.
    let mut first = view(vec![worker("w1")]);
    first.memory.total_bytes = 100 << 30;
    assert!(manager.handle(0, Input::ClusterView { view: first, with_nodes: true }).is_empty());
    manager
}

fn session(user: &str) -> SessionContext {
    SessionContext {
        dialect: HeaderDialect::Presto,
        user: user.to_string(),
        source: None,
        catalog: None,
        schema: None,
        client_tags: Vec::new(),
        properties: Default::default(),
    }
}

fn submission(sql: &str) -> Input {
    Input::Submit(Submission {
        session: session("alice"),
        sql: sql.to_string(),
        parsed: crate::sql::parse(sql),
        slug: "slug".into(),
        wall_ms: 1_700_000_000_000,
    })
}

/// Submits `sql` at `now_ms`; the query's id and the effects.
fn submit(manager: &mut QueryManager, now_ms: u64, sql: &str) -> (String, Vec<Effect>) {
    let effects = manager.handle(now_ms, submission(sql));
    let id = effects
        .iter()
        .find_map(|effect| match effect {
            Effect::Accepted { query_id } => Some(query_id.clone()),
            _ => None,
        })
        .expect("every submission is accepted with an id");
    (id, effects)
}

fn executes(effects: &[Effect], id: &str) -> bool {
    effects.iter().any(|effect| matches!(effect, Effect::Execute { query_id, .. } if query_id == id))
}

fn ended_with(effects: &[Effect], id: &str) -> Option<Option<&'static str>> {
    effects.iter().find_map(|effect| match effect {
        Effect::Ended { query_id, error_name, .. } if query_id == id => Some(*error_name),
        _ => None,
    })
}

fn failure_of(manager: &QueryManager, id: &str) -> (String, String) {
    let failure = manager.query(id).and_then(|query| query.failure.clone()).expect("the query failed");
    (failure.code.name.to_string(), failure.message)
}

#[test]
fn admits_up_to_the_limit_queues_one_then_refuses() {
    let mut manager = manager("");
    let (a, effects) = submit(&mut manager, 0, SYNTHETIC);
    assert!(executes(&effects, &a) && effects.contains(&Effect::HeartbeatDue));
    let (b, effects) = submit(&mut manager, 0, SYNTHETIC);
    assert!(executes(&effects, &b));
    let (c, effects) = submit(&mut manager, 0, SYNTHETIC);
    assert!(!executes(&effects, &c), "the third waits in the queue");
    assert_eq!(manager.query(&c).map(|query| query.state), Some(QueryState::Queued));
    let (d, effects) = submit(&mut manager, 0, SYNTHETIC);
    assert_eq!(ended_with(&effects, &d), Some(Some("QUERY_QUEUE_FULL")));
    // Ids are distinct and carry this coordinator's suffix.
    assert!(a != b && b != c && c.ends_with(crate::query_id::CoordinatorSuffix::of_node("coordinator-1").as_str()));

    // The first ends: its slot goes to the queued query, in the same input.
    let effects = manager.handle(10, Input::ExecutionEnded { query_id: a.clone(), outcome: Ok(()) });
    assert_eq!(ended_with(&effects, &a), Some(None));
    assert!(executes(&effects, &c));
    assert_eq!(effects.iter().filter(|effect| **effect == Effect::HeartbeatDue).count(), 1, "coalesced");
    manager.check_invariants().unwrap();
}

#[test]
fn under_the_presto_gate_a_fresh_view_starts_what_waits() {
    // At threshold 0 every start needs an RM refresh newer than the group's last start (or its
    // creation), so each query waits for the next view — and the view starts it.
    let mut manager = manager("resource-group-admission-policy=presto\nconcurrency-threshold-to-enable-resource-group-refresh=0\n");
    let refresh = |manager: &mut QueryManager, now_ms| manager.handle(now_ms, Input::ClusterView { view: view(Vec::new()), with_nodes: false });
    for at_ms in [1, 10] {
        let (id, effects) = submit(&mut manager, at_ms, SYNTHETIC);
        assert!(!executes(&effects, &id), "no RM view newer than the group's last start");
        assert!(executes(&refresh(&mut manager, at_ms + 1), &id), "the refresh lets it start");
    }
}

#[test]
fn a_query_priority_that_is_not_an_integer_fails_the_query_and_holds_no_slot() {
    let mut manager = manager("");
    for (value, expected) in [("abc", Some(Some("INVALID_SESSION_PROPERTY"))), ("", Some(Some("INVALID_SESSION_PROPERTY"))), ("7", None)] {
        let mut session = session("alice");
        session.properties.insert("query_priority".into(), value.into());
        let input = Input::Submit(Submission { session, sql: SYNTHETIC.into(), parsed: crate::sql::parse(SYNTHETIC), slug: "slug".into(), wall_ms: 0 });
        let effects = manager.handle(0, input);
        let id = effects.iter().find_map(|effect| match effect {
            Effect::Accepted { query_id } => Some(query_id.clone()),
            _ => None,
        });
        let id = id.expect("an id either way");
        assert_eq!(ended_with(&effects, &id), expected, "query_priority={value:?}");
        if expected.is_some() {
            assert!(failure_of(&manager, &id).1.contains("query_priority"), "the message names the property");
        } else {
            assert!(executes(&effects, &id), "an integer priority runs");
        }
    }
}

#[test]
fn a_parse_error_is_refused_with_an_id_and_holds_no_slot() {
    let mut manager = manager("");
    let (id, effects) = submit(&mut manager, 0, "SELEC 1");
    assert_eq!(ended_with(&effects, &id), Some(Some("SYNTAX_ERROR")));
    for _ in 0..2 {
        let (other, effects) = submit(&mut manager, 0, SYNTHETIC);
        assert!(executes(&effects, &other), "both slots are still free");
    }
}

#[test]
fn the_distributed_memory_limit_fails_the_query() {
    let mut manager = manager("query.max-memory=1GB\n");
    let (id, _) = submit(&mut manager, 0, SYNTHETIC);
    let effects = manager.handle(5, Input::TaskMemory { query_id: id.clone(), task_index: 0, bytes: 600 << 20 });
    assert!(ended_with(&effects, &id).is_none(), "600MB is within 1GB");
    let effects = manager.handle(6, Input::TaskMemory { query_id: id.clone(), task_index: 1, bytes: 600 << 20 });
    assert_eq!(ended_with(&effects, &id), Some(Some("EXCEEDED_GLOBAL_MEMORY_LIMIT")));
    assert_eq!(failure_of(&manager, &id).1, "Query exceeded distributed user memory limit of 1GB");
    // A report for the ended query changes nothing.
    assert!(manager.handle(7, Input::TaskMemory { query_id: id, task_index: 0, bytes: 2 << 30 }).is_empty());
}

#[test]
fn a_query_whose_client_stops_polling_is_abandoned() {
    let mut manager = manager("query.client.timeout=10s\n");
    let (polled, _) = submit(&mut manager, 0, SYNTHETIC);
    let (silent, _) = submit(&mut manager, 0, SYNTHETIC);
    manager.page(8_000, &polled, "slug", PagePath::Queued, 1, "http://c").expect("the next queued page");
    let effects = manager.handle(10_001, Input::Tick);
    assert_eq!(ended_with(&effects, &silent), Some(Some("ABANDONED_QUERY")));
    assert!(ended_with(&effects, &polled).is_none(), "its client polled at 8 s");
    assert!(failure_of(&manager, &silent).1.starts_with(&format!("Query {silent} has not been accessed since")));
}

/// The ten finished queries whose clients never came back for the rows: the rows are
/// dropped once the client timeout passes, and the query reads as abandoned, not as finished.
#[test]
fn unread_results_of_a_finished_query_are_dropped_when_its_client_is_gone() {
    let mut manager = manager("query.client.timeout=10s\n");
    let (id, _) = submit(&mut manager, 0, SYNTHETIC);
    let rows = crate::sql::synthetic::generate_rows(0, 0, 1_000, "w1");
    manager.handle(1, Input::TaskOutput { query_id: id.clone(), rows, task_done: true });
    manager.handle(2, Input::ExecutionEnded { query_id: id.clone(), outcome: Ok(()) });
    let query = manager.query(&id).expect("held");
    assert_eq!((query.state, query.buffered_rows()), (QueryState::Finished, 1_000));
    manager.handle(9_000, Input::Tick);
    assert_eq!(manager.query(&id).expect("held").buffered_rows(), 1_000, "within the timeout nothing is dropped");
    manager.handle(10_001, Input::Tick);
    let query = manager.query(&id).expect("held");
    assert_eq!((query.state, query.buffered_rows()), (QueryState::Failed, 0));
    assert_eq!(failure_of(&manager, &id).0, "ABANDONED_QUERY");
    assert_eq!(manager.check_invariants(), Ok(()));
}

#[test]
fn finished_queries_beyond_the_history_bound_are_forgotten_once_old_enough() {
    let mut manager = manager("query.max-history=1\nquery.min-expire-age=1m\n");
    let ids: Vec<String> = (0..2).map(|_| submit(&mut manager, 0, SYNTHETIC).0).collect();
    for id in &ids {
        manager.handle(1_000, Input::ExecutionEnded { query_id: id.clone(), outcome: Ok(()) });
    }
    manager.handle(30_000, Input::Tick);
    assert_eq!(manager.queries().count(), 2, "younger than query.min-expire-age");
    manager.handle(61_000, Input::Tick);
    let kept: Vec<&str> = manager.queries().map(|query| query.id.as_str()).collect();
    assert_eq!(kept, [ids[1].as_str()], "the oldest goes first");
}

#[test]
fn shutting_down_refuses_new_queries_and_tracks_what_the_drain_waits_for() {
    let mut manager = manager("");
    let (running, _) = submit(&mut manager, 0, SYNTHETIC);
    assert!(manager.handle(1, Input::BeginShutdown).is_empty());
    let (refused, effects) = submit(&mut manager, 2, SYNTHETIC);
    assert_eq!(ended_with(&effects, &refused), Some(Some("SERVER_SHUTTING_DOWN")));
    assert_eq!(manager.drain_progress(), DrainProgress { active: 1, unread: 1 });
    manager.handle(3, Input::ExecutionEnded { query_id: running.clone(), outcome: Ok(()) });
    assert_eq!(manager.drain_progress(), DrainProgress { active: 0, unread: 1 }, "its client has not read the last page");
    manager.page(4, &running, "slug", PagePath::Executing, 0, "http://c").expect("the only executing page");
    assert_eq!(manager.drain_progress(), DrainProgress { active: 0, unread: 0 });
}

#[test]
fn kill_answers_as_presto_does() {
    let mut manager = manager("");
    let kill = |id: &str| Input::Kill { query_id: id.to_string(), failure: QueryFailure::new(errors::ADMINISTRATIVELY_KILLED, "by ops") };
    assert_eq!(manager.handle(0, kill("nosuch")), vec![Effect::KillResult(KillOutcome::NotFound)]);
    let (id, _) = submit(&mut manager, 0, SYNTHETIC);
    let effects = manager.handle(1, kill(&id));
    assert!(effects.contains(&Effect::KillResult(KillOutcome::Killed)));
    assert_eq!(failure_of(&manager, &id), ("ADMINISTRATIVELY_KILLED".to_string(), "by ops".to_string()));
    assert_eq!(manager.handle(2, kill(&id)), vec![Effect::KillResult(KillOutcome::AlreadyDone)]);
}

fn worker(node_id: &str) -> WorkerView {
    WorkerView { node_id: node_id.into(), uri: format!("http://{node_id}"), memory: MemoryInfo::default(), cpu: Default::default() }
}

fn view(workers: Vec<WorkerView>) -> ClusterView {
    ClusterView {
        resource_manager_id: "rm-1".into(),
        resource_managers: Vec::new(),
        coordinators: Vec::new(),
        groups: Vec::new(),
        workers,
        memory: ClusterMemory::default(),
        pending_memory_kills: Vec::new(),
    }
}

#[test]
fn a_view_without_nodes_keeps_the_last_workers() {
    let mut manager = manager("");
    assert_eq!(manager.workers(), vec![worker("w1")]);
    manager.handle(0, Input::ClusterView { view: view(vec![worker("w1"), worker("w2")]), with_nodes: true });
    manager.handle(1, Input::ClusterView { view: view(Vec::new()), with_nodes: false });
    assert_eq!(manager.workers().len(), 2);
    manager.handle(2, Input::ClusterView { view: view(vec![worker("w3")]), with_nodes: true });
    assert_eq!(manager.workers(), vec![worker("w3")]);
}

#[test]
fn heartbeats_carry_open_queries_and_recently_finished_ones() {
    let mut manager = manager("");
    let (done, _) = submit(&mut manager, 0, SYNTHETIC);
    let (open, _) = submit(&mut manager, 0, SYNTHETIC);
    manager.handle(1_000, Input::ExecutionEnded { query_id: done.clone(), outcome: Ok(()) });
    let first = manager.heartbeat(2_000, "http://c");
    assert_eq!(first.queries.len(), 2);
    let later = manager.heartbeat(1_000 + FINISHED_REPORT_WINDOW_MS + 1, "http://c");
    assert_eq!(later.queries.iter().map(|query| query.query_id.as_str()).collect::<Vec<_>>(), [open.as_str()]);
    assert!(later.sequence > first.sequence);
}

#[test]
fn a_broken_manager_is_caught_by_its_invariants() {
    let mut manager = manager("");
    let (id, _) = submit(&mut manager, 0, SYNTHETIC);
    manager.check_invariants().unwrap();
    // Admission forgets a running query behind the manager's back.
    manager.admission.remove(&id);
    let error = manager.check_invariants().unwrap_err();
    assert!(error.contains("admission counts 0 running"), "{error}");
}

/// One step of a random run.
#[derive(Clone, Debug)]
enum Step {
    Submit { parse_error: bool },
    Finish(usize),
    Fail(usize),
    Cancel(usize),
    Kill(usize),
    Memory { query: usize, bytes: u64 },
    Poll(usize),
    View,
    Tick { advance_ms: u64 },
    Shutdown,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<bool>().prop_map(|parse_error| Step::Submit { parse_error }),
        2 => any::<usize>().prop_map(Step::Finish),
        1 => any::<usize>().prop_map(Step::Fail),
        1 => any::<usize>().prop_map(Step::Cancel),
        1 => any::<usize>().prop_map(Step::Kill),
        1 => (any::<usize>(), 0u64..(3u64 << 30)).prop_map(|(query, bytes)| Step::Memory { query, bytes }),
        1 => any::<usize>().prop_map(Step::Poll),
        1 => Just(Step::View),
        2 => (0u64..20_000).prop_map(|advance_ms| Step::Tick { advance_ms }),
        1 => Just(Step::Shutdown),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever happens in whatever order: the invariants hold after every input, no query runs
    /// twice or ends twice, the local limit holds, and once every query is cancelled nothing is
    /// queued or running.
    #[test]
    fn random_inputs_keep_the_invariants(steps in proptest::collection::vec(step(), 1..120)) {
        let mut manager = manager("query.max-memory=2GB\nquery.client.timeout=30s\nquery.max-history=5\nquery.min-expire-age=10s\n");
        let mut now_ms = 0;
        let mut ids: Vec<String> = Vec::new();
        let mut executed = std::collections::BTreeSet::new();
        let mut ended = std::collections::BTreeSet::new();
        let pick = |ids: &[String], index: usize| ids.get(index % ids.len().max(1)).cloned().unwrap_or_default();
        for step in steps {
            now_ms += 1;
            let input = match step {
                Step::Submit { parse_error } => submission(if parse_error { "SELEC" } else { SYNTHETIC }),
                Step::Finish(index) => Input::ExecutionEnded { query_id: pick(&ids, index), outcome: Ok(()) },
                Step::Fail(index) => Input::ExecutionEnded {
                    query_id: pick(&ids, index),
                    outcome: Err(QueryFailure::new(errors::REMOTE_TASK_ERROR, "worker gone")),
                },
                Step::Cancel(index) => Input::Cancel { query_id: pick(&ids, index) },
                Step::Kill(index) => Input::Kill { query_id: pick(&ids, index), failure: QueryFailure::new(errors::ADMINISTRATIVELY_KILLED, "x") },
                Step::Memory { query, bytes } => Input::TaskMemory { query_id: pick(&ids, query), task_index: (query % 2) as u32, bytes },
                Step::Poll(index) => {
                    let id = pick(&ids, index);
                    let _ = manager.page(now_ms, &id, "slug", PagePath::Executing, 0, "http://c");
                    continue;
                }
                Step::View => Input::ClusterView { view: view(vec![worker("w1")]), with_nodes: true },
                Step::Tick { advance_ms } => {
                    now_ms += advance_ms;
                    Input::Tick
                }
                Step::Shutdown => Input::BeginShutdown,
            };
            for effect in manager.handle(now_ms, input) {
                match effect {
                    Effect::Accepted { query_id } => {
                        prop_assert!(!ids.contains(&query_id), "id {} handed out twice", query_id);
                        ids.push(query_id);
                    }
                    Effect::Execute { query_id, .. } => prop_assert!(executed.insert(query_id.clone()), "{} executed twice", query_id),
                    Effect::Ended { query_id, .. } => prop_assert!(ended.insert(query_id.clone()), "{} ended twice", query_id),
                    Effect::HeartbeatDue | Effect::KillResult(_) => {}
                }
            }
            manager.check_invariants().map_err(TestCaseError::fail)?;
            let running = manager.queries().filter(|query| query.state == QueryState::Running).count();
            prop_assert!(running <= 2, "{} running over the limit of 2", running);
        }
        for id in ids.clone() {
            manager.handle(now_ms, Input::Cancel { query_id: id });
        }
        manager.check_invariants().map_err(TestCaseError::fail)?;
        prop_assert_eq!(manager.drain_progress().active, 0);
        prop_assert!(manager.local_counts().iter().all(|counts| counts.running + counts.queued == 0));
    }
}
