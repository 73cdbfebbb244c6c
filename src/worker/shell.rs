//! The driver around the [`TaskTable`]: one lock, the clock, and the wake-ups.
//!
//! Every input goes the same way ([`TaskShell::input`]): read the clock, lock, apply the input to
//! the table, take its effects, unlock, then carry the effects out — notify the task's engine or
//! its long-polls, record the oracle's events, log — and report the invariant check to the
//! simulator. Nothing is notified or recorded while the lock is held, and nothing here decides:
//! the table does.
//!
//! The table has no tokio types; the `Notify`s each task needs live here, next to it under the
//! same lock, keyed by task id, created with the task and dropped on [`Effect::Removed`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::tasks::{CreateRefused, Created, Effect, Grow, Proceed, ResultsRefused, TaskOutput, TaskCounts, TaskTable};
use crate::runtime::sim_hooks::{self, Event};
use crate::runtime::Clock;
use crate::wire::{MemoryInfo, TaskRejection, TaskRequest, TaskStatus};

/// The name under which the table's invariant checks are reported.
const CORE_NAME: &str = "worker.tasks";

/// What one task's engine and its long-polls wait on.
#[derive(Debug, Default)]
pub struct Signals {
    /// Woken when the task may proceed (memory granted) or must stop (ended). `notify_one`, so a
    /// wake-up that comes before its engine waits is kept, not lost.
    pub wake: Notify,
    /// Woken on every change of state or memory, for long-polled status requests.
    pub changed: Notify,
}

#[derive(Clone)]
pub struct TaskShell {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    clock: Clock,
    state: Mutex<Shared>,
}

struct Shared {
    table: TaskTable,
    signals: BTreeMap<String, Arc<Signals>>,
}

/// An effect resolved under the lock, carried out after it.
enum Action {
    Wake(Arc<Signals>),
    Changed(Arc<Signals>),
    Record(Event),
    Abandoned { task_id: String, query_id: String },
}

/// Which invariants to check after an input.
enum Check<'a> {
    Task(&'a str),
    All,
}

impl TaskShell {
    pub fn new(node_id: &str, clock: Clock, table: TaskTable) -> Self {
        let state = Mutex::new(Shared { table, signals: BTreeMap::new() });
        TaskShell { inner: Arc::new(Inner { node_id: node_id.to_string(), clock, state }) }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Applies one input under the lock, then carries out its effects.
    fn input<R>(&self, check: Check<'_>, apply: impl FnOnce(&mut Shared, u64) -> R) -> R {
        let now_ms = self.now_ms();
        let (result, actions, checked) = {
            let mut shared = crate::runtime::lock(&self.inner.state);
            let result = apply(&mut shared, now_ms);
            let effects = shared.table.take_effects();
            let actions = shared.resolve(effects);
            let checked = match check {
                Check::Task(task_id) => shared.table.check_task(task_id),
                Check::All => shared.table.check_invariants(),
            };
            (result, actions, checked)
        };
        for action in actions {
            match action {
                Action::Wake(signals) => signals.wake.notify_one(),
                Action::Changed(signals) => signals.changed.notify_waiters(),
                Action::Record(event) => sim_hooks::record(|| event),
                Action::Abandoned { task_id, query_id } => {
                    tracing::warn!(%query_id, %task_id, "abandoning task: its coordinator stopped polling it");
                }
            }
        }
        sim_hooks::check_invariants(CORE_NAME, checked);
        result
    }

    /// A read that changes nothing (no effects, no checks).
    fn read<R>(&self, read: impl FnOnce(&TaskTable) -> R) -> R {
        read(&crate::runtime::lock(&self.inner.state).table)
    }

    pub fn create(&self, task_id: &str, request: &TaskRequest) -> Result<Created, CreateRefused> {
        self.input(Check::Task(task_id), |shared, now_ms| {
            let created = shared.table.create(now_ms, task_id, request);
            if let Ok(Created::New(_)) = created {
                shared.signals.insert(task_id.to_string(), Arc::new(Signals::default()));
            }
            created
        })
    }

    /// The task's signals, while it is in the table.
    pub fn signals(&self, task_id: &str) -> Option<Arc<Signals>> {
        crate::runtime::lock(&self.inner.state).signals.get(task_id).cloned()
    }

    pub fn poll(&self, task_id: &str) -> Option<TaskStatus> {
        self.input(Check::Task(task_id), |shared, now_ms| shared.table.poll(now_ms, task_id))
    }

    pub fn grow(&self, task_id: &str, bytes: u64) -> Grow {
        self.input(Check::Task(task_id), |shared, now_ms| shared.table.grow(now_ms, task_id, bytes))
    }

    pub fn proceed(&self, task_id: &str) -> Proceed {
        self.input(Check::Task(task_id), |shared, _| shared.table.proceed(task_id))
    }

    pub fn is_ended(&self, task_id: &str) -> bool {
        self.read(|table| table.is_ended(task_id))
    }

    pub fn finish(&self, task_id: &str, output: TaskOutput) {
        self.input(Check::Task(task_id), |shared, now_ms| shared.table.finish(now_ms, task_id, output));
    }

    pub fn fail(&self, task_id: &str, error: TaskRejection) {
        self.input(Check::Task(task_id), |shared, now_ms| shared.table.fail(now_ms, task_id, error));
    }

    pub fn cancel(&self, task_id: &str) {
        self.input(Check::Task(task_id), |shared, now_ms| shared.table.cancel(now_ms, task_id));
    }

    pub fn results(&self, task_id: &str) -> Result<TaskOutput, ResultsRefused> {
        self.input(Check::Task(task_id), |shared, now_ms| shared.table.results(now_ms, task_id))
    }

    /// The reaper's timer, followed by a full invariant check (the per-input checks only look at
    /// the task an input touched).
    pub fn tick(&self) {
        self.input(Check::All, |shared, now_ms| shared.table.tick(now_ms));
    }

    pub fn counts(&self) -> TaskCounts {
        self.read(TaskTable::counts)
    }

    /// `query.max-memory-per-node`: what one query may hold on this worker.
    pub fn query_limit_bytes(&self) -> u64 {
        self.read(|table| table.pool().query_limit_bytes())
    }

    /// Memory and task counts for one heartbeat, read under one lock so they agree.
    pub fn load(&self) -> (MemoryInfo, TaskCounts) {
        self.read(|table| (table.memory_info(), table.counts()))
    }
}

impl Shared {
    /// Turns effects into actions: finds each task's signals (before a `Removed` drops them).
    fn resolve(&mut self, effects: Vec<Effect>) -> Vec<Action> {
        let mut actions = Vec::with_capacity(effects.len());
        for effect in effects {
            match effect {
                Effect::Wake { task_id } => actions.extend(self.signals.get(&task_id).cloned().map(Action::Wake)),
                Effect::Changed { task_id } => actions.extend(self.signals.get(&task_id).cloned().map(Action::Changed)),
                Effect::Record(event) => actions.push(Action::Record(event)),
                Effect::Abandoned { task_id, query_id } => actions.push(Action::Abandoned { task_id, query_id }),
                Effect::Removed { task_id } => {
                    self.signals.remove(&task_id);
                }
            }
        }
        actions
    }
}
