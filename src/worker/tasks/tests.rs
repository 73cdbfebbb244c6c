//! The task table without a runtime: each input on its own, then random sequences of them.

use super::*;
use proptest::prelude::*;

const CLIENT_TIMEOUT_MS: u64 = 5_000;

fn table(pool_bytes: u64, query_limit_bytes: u64) -> TaskTable {
    TaskTable::new("w1", MemoryPool::new(pool_bytes, query_limit_bytes), CLIENT_TIMEOUT_MS, true)
}

fn request(query_id: &str, memory_bytes: u64, peak_memory_bytes: u64) -> TaskRequest {
    TaskRequest {
        query_id: query_id.to_string(),
        coordinator_id: "c1".into(),
        task_index: 0,
        run_time_ms: 1_000,
        memory_bytes,
        peak_memory_bytes,
        first_row: 0,
        row_count: 3,
        fragment: None,
    }
}

fn state(table: &TaskTable, task_id: &str) -> Option<TaskState> {
    table.status(task_id).map(|status| status.state)
}

fn woken(effects: &[Effect]) -> Vec<&str> {
    effects.iter().filter_map(|effect| if let Effect::Wake { task_id } = effect { Some(task_id.as_str()) } else { None }).collect()
}

fn ended_events(effects: &[Effect]) -> Vec<(&str, &str)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Record(Event::TaskEnded { task_id, state, .. }) => Some((task_id.as_str(), state.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn create_is_idempotent_and_counts_as_a_poll() {
    let mut table = table(100, 100);
    let created = table.create(0, "t1", &request("q1", 40, 0));
    assert!(matches!(created, Ok(Created::New(TaskStatus { state: TaskState::Running, memory_bytes: 40, .. }))));
    let effects = table.take_effects();
    assert!(effects.iter().any(|effect| matches!(effect, Effect::Record(Event::TaskMemory { task_bytes: 40, .. }))));
    // A retry much later: the same task, no second reservation, and it resets the poll clock.
    let again = table.create(4_000, "t1", &request("q1", 40, 0));
    assert!(matches!(again, Ok(Created::Existing(TaskStatus { memory_bytes: 40, .. }))));
    assert!(table.take_effects().is_empty());
    assert_eq!(table.pool().reserved_bytes(), 40);
    table.tick(8_000);
    assert_eq!(state(&table, "t1"), Some(TaskState::Running), "polled at 4 s by the retry: not abandoned at 8 s");
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn a_cancelled_id_is_refused_until_its_tombstone_expires() {
    let mut table = table(100, 100);
    table.cancel(1_000, "t1");
    assert_eq!(table.create(2_000, "t1", &request("q1", 10, 0)), Err(CreateRefused::Cancelled));
    assert_eq!(table.pool().reserved_bytes(), 0, "a refused create reserves nothing");
    table.tick(1_000 + FINISHED_TASK_RETENTION_MS);
    assert!(matches!(table.create(1_000 + FINISHED_TASK_RETENTION_MS, "t1", &request("q1", 10, 0)), Ok(Created::New(_))));
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn bad_requests_and_a_full_table_are_refused() {
    let mut table = table(1 << 40, 1 << 40);
    assert!(matches!(table.create(0, "t", &request("q", 10, 5)), Err(CreateRefused::BadRequest(_))));
    // The worker that accepted row_count 5,000,000 (+800 MB) and any run time.
    let rows = TaskRequest { row_count: 5_000_000, ..request("q", 0, 0) };
    assert!(matches!(table.create(0, "t", &rows), Err(CreateRefused::BadRequest(_))));
    let long = TaskRequest { run_time_ms: 100_000_000_000, ..request("q", 0, 0) };
    assert!(matches!(table.create(0, "t", &long), Err(CreateRefused::BadRequest(_))));
    assert_eq!(table.pool().reserved_bytes(), 0);
    for index in 0..TASKS_MAX {
        assert!(table.create(0, &format!("t{index}"), &request("q", 0, 0)).is_ok());
    }
    assert_eq!(table.create(0, "one-more", &request("q", 0, 0)), Err(CreateRefused::Full));
    assert!(matches!(table.create(0, "t7", &request("q", 0, 0)), Ok(Created::Existing(_))), "a retry is still answered");
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn the_per_node_limit_refuses_a_create_with_prestos_error() {
    let mut table = table(1 << 30, 1 << 20);
    assert!(table.create(0, "a", &request("q", 600 << 10, 0)).is_ok());
    let Err(CreateRefused::LocalMemoryLimit(rejection)) = table.create(0, "b", &request("q", 500 << 10, 0)) else {
        panic!("the second task of q passes 1MB on this node");
    };
    assert_eq!(rejection.error_name, "EXCEEDED_LOCAL_MEMORY_LIMIT");
    assert_eq!(rejection.message, "Query exceeded per-node user memory limit of 1MB [Allocated: 600kB, Delta: 500kB]");
    assert!(!table.contains("b"));
    assert_eq!(table.pool().reserved_bytes(), 600 << 10);
}

#[test]
fn the_per_node_limit_fails_a_growing_task_and_frees_its_memory() {
    let mut table = table(1_000, 100);
    table.create(0, "t", &request("q", 60, 200)).ok();
    let _ = table.take_effects();
    assert_eq!(table.proceed("t"), Proceed::Go);
    assert_eq!(table.grow(10, "t", 30), Grow::Granted);
    assert_eq!(table.grow(20, "t", 30), Grow::Ended, "60 + 30 + 30 > 100");
    let status = table.status("t").expect("a failed task stays until it expires");
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(status.memory_bytes, 0);
    assert_eq!(status.error.map(|error| error.error_name), Some("EXCEEDED_LOCAL_MEMORY_LIMIT".to_string()));
    let effects = table.take_effects();
    assert_eq!(ended_events(&effects), vec![("t", "FAILED")]);
    assert_eq!(woken(&effects), vec!["t"]);
    assert_eq!(table.proceed("t"), Proceed::Stop);
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn a_blocked_task_runs_once_memory_is_released_and_starts_once() {
    let mut table = table(100, 100);
    table.create(0, "big", &request("q1", 70, 0)).ok();
    table.create(0, "next", &request("q2", 50, 0)).ok();
    assert_eq!(state(&table, "next"), Some(TaskState::Blocked));
    assert_eq!(table.proceed("next"), Proceed::Wait);
    assert_eq!(table.proceed("big"), Proceed::Go);
    assert_eq!(table.proceed("big"), Proceed::Go);
    let started = table.take_effects().iter().filter(|effect| matches!(effect, Effect::Record(Event::TaskStarted { .. }))).count();
    assert_eq!(started, 1, "TaskStarted is recorded once per task");
    table.finish(500, "big", TaskOutput::Rows(vec![vec![serde_json::json!(1)]]));
    let effects = table.take_effects();
    assert_eq!(ended_events(&effects), vec![("big", "FINISHED")]);
    assert!(woken(&effects).contains(&"next"), "the grant wakes the blocked task");
    assert_eq!(state(&table, "next"), Some(TaskState::Running));
    assert_eq!(table.proceed("next"), Proceed::Go);
    assert_eq!(table.results(600, "big"), Ok(TaskOutput::Rows(vec![vec![serde_json::json!(1)]])));
    assert_eq!(table.results(600, "next"), Err(ResultsRefused::NotFinished));
    assert_eq!(table.results(600, "nope"), Err(ResultsRefused::NotFound));
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn a_sql_tasks_output_pages_stay_reserved_until_released_or_expired() {
    let mut table = table(100, 100);
    table.create(0, "sql", &request("q1", 60, 0)).ok();
    table.create(0, "waits", &request("q2", 50, 0)).ok();
    assert_eq!(table.proceed("sql"), Proceed::Go);
    table.finish(100, "sql", TaskOutput::Pages(vec![bytes::Bytes::from_static(b"page")]));
    assert_eq!(table.pool().reserved_bytes(), 60, "unfetched pages are memory");
    assert_eq!(state(&table, "waits"), Some(TaskState::Blocked));
    assert_eq!(table.check_invariants(), Ok(()));
    table.cancel(200, "sql"); // the coordinator read the last page and released the task
    assert_eq!(table.pool().reserved_bytes(), 50, "released, and the waiting task got its memory");
    assert_eq!(state(&table, "waits"), Some(TaskState::Running));
    // Pages nobody fetches are freed when the finished task expires.
    assert_eq!(table.proceed("waits"), Proceed::Go);
    table.finish(300, "waits", TaskOutput::Pages(vec![]));
    assert_eq!(table.pool().reserved_bytes(), 50);
    table.tick(300 + FINISHED_TASK_RETENTION_MS);
    assert_eq!(table.pool().reserved_bytes(), 0);
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn cancel_frees_memory_wakes_the_engine_and_the_waiters() {
    let mut table = table(100, 100);
    table.create(0, "a", &request("q1", 80, 0)).ok();
    table.create(0, "b", &request("q2", 40, 0)).ok();
    let _ = table.take_effects();
    table.cancel(100, "a");
    let effects = table.take_effects();
    assert_eq!(woken(&effects), vec!["a", "b"], "a's engine stops, b got its memory");
    assert_eq!(ended_events(&effects), vec![("a", "CANCELED")]);
    assert!(effects.contains(&Effect::Removed { task_id: "a".into() }));
    assert!(!table.contains("a"));
    assert_eq!(table.pool().reserved_bytes(), 40);
    assert_eq!(state(&table, "b"), Some(TaskState::Running));
    assert!(table.is_ended("a"));
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn an_unpolled_task_is_abandoned_after_the_client_timeout() {
    let mut table = table(100, 100);
    table.create(0, "quiet", &request("q1", 30, 0)).ok();
    table.create(0, "polled", &request("q2", 30, 0)).ok();
    let _ = table.take_effects();
    table.poll(4_000, "polled");
    table.tick(CLIENT_TIMEOUT_MS);
    assert_eq!(state(&table, "quiet"), Some(TaskState::Running), "exactly the timeout is not past it");
    table.tick(CLIENT_TIMEOUT_MS + 1);
    assert_eq!(state(&table, "quiet"), Some(TaskState::Abandoned));
    assert_eq!(state(&table, "polled"), Some(TaskState::Running));
    let effects = table.take_effects();
    assert!(effects.contains(&Effect::Abandoned { task_id: "quiet".into(), query_id: "q1".into() }));
    assert_eq!(ended_events(&effects), vec![("quiet", "ABANDONED")]);
    assert_eq!(table.pool().reserved_bytes(), 30);
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn finished_tasks_expire_after_the_retention() {
    let mut table = table(100, 100);
    table.create(0, "t", &request("q", 10, 0)).ok();
    table.finish(1_000, "t", TaskOutput::default());
    assert_eq!(table.counts().unfinished, 1, "rows not yet fetched keep a shutdown waiting");
    let _ = table.take_effects();
    table.tick(1_000 + FINISHED_TASK_RETENTION_MS - 1);
    assert!(table.contains("t"));
    table.tick(1_000 + FINISHED_TASK_RETENTION_MS);
    assert!(!table.contains("t"));
    assert_eq!(table.take_effects(), vec![Effect::Removed { task_id: "t".into() }]);
    assert_eq!(table.counts(), TaskCounts::default());
}

#[test]
fn a_second_request_while_one_waits_is_busy_not_a_panic() {
    let mut table = table(100, 100);
    table.create(0, "a", &request("q1", 90, 0)).ok();
    table.create(0, "b", &request("q2", 5, 100)).ok();
    assert_eq!(table.grow(0, "b", 20), Grow::Waiting);
    assert_eq!(state(&table, "b"), Some(TaskState::Blocked));
    assert_eq!(table.grow(0, "b", 20), Grow::Busy);
    assert_eq!(table.counts(), TaskCounts { running: 1, blocked: 1, unfinished: 2 });
    assert_eq!(table.check_invariants(), Ok(()));
}

#[test]
fn check_invariants_catches_a_done_task_holding_memory() {
    let mut table = table(100, 100);
    table.create(0, "t", &request("q", 10, 0)).ok();
    if let Some(task) = table.tasks.get_mut("t") {
        task.state = TaskState::Finished; // bypassing `end`, which releases
        task.ended_ms = Some(0);
    }
    assert!(table.check_task("t").unwrap_err().contains("holds 10 bytes"));
    assert!(table.check_invariants().is_err());
}

#[test]
fn events_are_queued_only_when_recording() {
    let mut silent = TaskTable::new("w1", MemoryPool::new(100, 100), CLIENT_TIMEOUT_MS, false);
    silent.create(0, "t", &request("q", 10, 0)).ok();
    silent.cancel(1, "t");
    let effects = silent.take_effects();
    assert!(effects.iter().all(|effect| !matches!(effect, Effect::Record(_))));
    assert_eq!(woken(&effects), vec!["t"], "the engine is woken all the same");
}

#[derive(Clone, Debug)]
enum Input {
    Create { task: u8, query: u8, memory_bytes: u64, growth_bytes: u64 },
    Grow { task: u8, bytes: u64 },
    Proceed { task: u8 },
    Finish { task: u8 },
    Fail { task: u8 },
    Cancel { task: u8 },
    Poll { task: u8 },
    Results { task: u8 },
    Tick,
}

const TASK_IDS: u8 = 8;

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => (0..TASK_IDS, 0u8..3, 0u64..60, 0u64..60).prop_map(|(task, query, memory_bytes, growth_bytes)| Input::Create { task, query, memory_bytes, growth_bytes }),
        3 => (0..TASK_IDS, 0u64..50).prop_map(|(task, bytes)| Input::Grow { task, bytes }),
        2 => (0..TASK_IDS).prop_map(|task| Input::Proceed { task }),
        1 => (0..TASK_IDS).prop_map(|task| Input::Finish { task }),
        1 => (0..TASK_IDS).prop_map(|task| Input::Fail { task }),
        1 => (0..TASK_IDS).prop_map(|task| Input::Cancel { task }),
        2 => (0..TASK_IDS).prop_map(|task| Input::Poll { task }),
        1 => (0..TASK_IDS).prop_map(|task| Input::Results { task }),
        1 => Just(Input::Tick),
    ]
}

proptest! {
    /// Whatever coordinators, engines and the timer do, in any order and at any pace: the table's
    /// and the pool's invariants hold after every input, every status agrees with the pool, a
    /// woken task is one the table knows or just removed, and once everything is cancelled the
    /// pool is empty and nothing waits.
    #[test]
    fn random_inputs_keep_the_invariants(steps in proptest::collection::vec((input(), 0u64..3_000), 1..150)) {
        let mut table = table(100, 90);
        let mut now_ms = 0u64;
        for (input, advance_ms) in steps {
            now_ms += advance_ms;
            let task_id = |task: u8| format!("t{task}");
            match input {
                Input::Create { task, query, memory_bytes, growth_bytes } => {
                    let peak = if growth_bytes == 0 { 0 } else { memory_bytes + growth_bytes };
                    let _ = table.create(now_ms, &task_id(task), &request(&format!("q{query}"), memory_bytes, peak));
                }
                Input::Grow { task, bytes } => {
                    let before = table.pool().task_bytes(&task_id(task));
                    match table.grow(now_ms, &task_id(task), bytes) {
                        Grow::Granted => prop_assert_eq!(table.pool().task_bytes(&task_id(task)), before + bytes),
                        Grow::Waiting => prop_assert_eq!(state(&table, &task_id(task)), Some(TaskState::Blocked)),
                        Grow::Busy => prop_assert!(table.pool().is_waiting(&task_id(task))),
                        Grow::Ended => prop_assert!(table.is_ended(&task_id(task))),
                    }
                }
                Input::Proceed { task } => {
                    let answer = table.proceed(&task_id(task));
                    prop_assert_eq!(answer == Proceed::Stop, table.is_ended(&task_id(task)));
                }
                Input::Finish { task } => table.finish(now_ms, &task_id(task), TaskOutput::Rows(vec![vec![serde_json::json!(task)]])),
                Input::Fail { task } => table.fail(now_ms, &task_id(task), TaskRejection { error_name: "E".into(), message: "m".into() }),
                Input::Cancel { task } => {
                    table.cancel(now_ms, &task_id(task));
                    prop_assert!(!table.contains(&task_id(task)));
                }
                Input::Poll { task } => {
                    let _ = table.poll(now_ms, &task_id(task));
                }
                Input::Results { task } => {
                    let _ = table.results(now_ms, &task_id(task));
                }
                Input::Tick => table.tick(now_ms),
            }
            prop_assert_eq!(table.check_invariants(), Ok(()));
            for effect in table.take_effects() {
                if let Effect::Wake { task_id } | Effect::Changed { task_id } = &effect {
                    let gone = !table.contains(task_id);
                    prop_assert!(!gone || table.cancelled.contains_key(task_id), "woke {} which is neither known nor cancelled", task_id);
                }
            }
            let held: u64 = (0..TASK_IDS).filter_map(|task| table.status(&task_id(task))).map(|status| status.memory_bytes).sum();
            prop_assert_eq!(held, table.pool().reserved_bytes());
        }
        for task in 0..TASK_IDS {
            table.cancel(now_ms, &format!("t{task}"));
        }
        prop_assert_eq!(table.check_invariants(), Ok(()));
        prop_assert!(table.is_empty());
        prop_assert_eq!(table.pool().reserved_bytes(), 0);
        prop_assert!(!table.pool().is_blocked());
        prop_assert_eq!(table.counts(), TaskCounts::default());
    }
}
