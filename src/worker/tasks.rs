//! The worker's task table: every decision about a task's life, as a pure state machine.
//!
//! No async, no I/O, no clock: each input takes `now_ms` where time matters, changes the table and
//! queues [`Effect`]s — wake this task's engine, tell long-polls this task changed, record this
//! event for the oracle, forget this task's signals — which the driver (`shell.rs`) drains with
//! [`TaskTable::take_effects`] after every input and carries out once it released its lock
//! (the quinn-proto `poll_*` pattern). The table does not know which engine runs a task: engines
//! only ever reach it through the inputs [`TaskTable::grow`], [`TaskTable::proceed`],
//! [`TaskTable::finish`] and [`TaskTable::fail`].
//!
//! A task's life: created `RUNNING` (its initial memory granted) or `BLOCKED` (waiting for it);
//! it may ask for more (and block again); it ends `FINISHED` with rows, `FAILED` (per-node memory
//! limit, engine error), `CANCELED` by its coordinator or `ABANDONED` when its coordinator stopped
//! polling for `task.client.timeout`. A done task holds no memory, but for a finished SQL task's
//! output pages, which stay reserved until released; a finished one keeps its rows
//! until they are fetched or [`FINISHED_TASK_RETENTION_MS`] passes. A cancelled id is remembered
//! (a tombstone) so that a create still in flight is refused rather than leaking memory.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::format_data_size;
use crate::memory::pool::{MemoryPool, Reserve};
use crate::runtime::sim_hooks::Event;
use crate::wire::{MemoryInfo, TaskRejection, TaskRequest, TaskState, TaskStatus};

/// Tasks a worker holds at once (running, blocked or finished awaiting pickup); also the bound on
/// tombstones of cancelled ids.
pub const TASKS_MAX: usize = 10_000;
/// Finished tasks whose results nobody fetched, and tombstones, are dropped after this long.
pub const FINISHED_TASK_RETENTION_MS: u64 = 60_000;

/// What a finished task hands back: generated rows (the synthetic engine) or Arrow IPC pages (the
/// SQL engine), kept until its coordinator fetches them.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOutput {
    Rows(Vec<Vec<serde_json::Value>>),
    Pages(Vec<bytes::Bytes>),
}

impl TaskOutput {
    pub fn is_empty(&self) -> bool {
        match self {
            TaskOutput::Rows(rows) => rows.is_empty(),
            TaskOutput::Pages(pages) => pages.is_empty(),
        }
    }
}

impl Default for TaskOutput {
    fn default() -> Self {
        TaskOutput::Rows(Vec::new())
    }
}

/// What the driver must do after an input, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// The task's engine may proceed (memory granted) or must stop (the task ended): wake it.
    Wake { task_id: String },
    /// The task's state or memory changed: answer its long-polled status requests.
    Changed { task_id: String },
    /// Tell the oracle (simulation only; the table queues these only when asked to record).
    Record(Event),
    /// The task ended because its coordinator stopped polling it (worth a warning in the log).
    Abandoned { task_id: String, query_id: String },
    /// The task left the table: drop what the driver keeps for it (after the effects above).
    Removed { task_id: String },
}

/// A create that was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new task: the driver must start an engine for it.
    New(TaskStatus),
    /// The task exists already (a retried create): nothing to start.
    Existing(TaskStatus),
}

/// Why a create was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateRefused {
    /// Its query was cancelled here first (the id is tombstoned).
    Cancelled,
    /// The worker holds [`TASKS_MAX`] tasks.
    Full,
    /// The request contradicts itself.
    BadRequest(&'static str),
    /// The query would pass the per-node memory limit here (Presto's
    /// `EXCEEDED_LOCAL_MEMORY_LIMIT`).
    LocalMemoryLimit(TaskRejection),
}

/// The answer to an engine asking for more memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grow {
    Granted,
    /// Queued in the pool: the task is `BLOCKED` until a release grants it.
    Waiting,
    /// The task has a request waiting already; wait for that one first.
    Busy,
    /// The task ended (before, or now: the request passed the per-node limit). Stop.
    Ended,
}

/// Whether an engine may run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proceed {
    Go,
    /// The task waits for memory: sleep until woken.
    Wait,
    /// The task ended (or is unknown). Stop.
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultsRefused {
    NotFinished,
    NotFound,
}

/// Counts a heartbeat and a graceful shutdown need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub running: u32,
    pub blocked: u32,
    /// Running, blocked, or finished with rows not yet fetched: what a graceful shutdown waits for.
    pub unfinished: usize,
}

#[derive(Debug)]
struct Task {
    query_id: String,
    state: TaskState,
    error: Option<TaskRejection>,
    output: TaskOutput,
    last_poll_ms: u64,
    ended_ms: Option<u64>,
    /// Whether its engine got going (the oracle's `TaskStarted` is recorded once, then).
    started: bool,
}

#[derive(Debug)]
pub struct TaskTable {
    node_id: String,
    client_timeout_ms: u64,
    /// Whether [`Effect::Record`]s are queued (the simulator listens; production does not, so it
    /// does not pay for building them).
    record_events: bool,
    pool: MemoryPool,
    tasks: BTreeMap<String, Task>,
    /// Tasks cancelled here (id → when). Bounded by [`TASKS_MAX`] and
    /// [`FINISHED_TASK_RETENTION_MS`].
    cancelled: BTreeMap<String, u64>,
    effects: Vec<Effect>,
}

impl TaskTable {
    /// A table over `pool` for worker `node_id`, abandoning tasks unpolled for
    /// `client_timeout_ms` (`task.client.timeout`).
    pub fn new(node_id: &str, pool: MemoryPool, client_timeout_ms: u64, record_events: bool) -> Self {
        TaskTable {
            node_id: node_id.to_string(),
            client_timeout_ms,
            record_events,
            pool,
            tasks: BTreeMap::new(),
            cancelled: BTreeMap::new(),
            effects: Vec::new(),
        }
    }

    /// The effects queued by the inputs since the last call. The driver must carry them out, in
    /// order.
    #[must_use]
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn pool(&self) -> &MemoryPool {
        &self.pool
    }

    pub fn contains(&self, task_id: &str) -> bool {
        self.tasks.contains_key(task_id)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn status(&self, task_id: &str) -> Option<TaskStatus> {
        let task = self.tasks.get(task_id)?;
        Some(TaskStatus {
            task_id: task_id.to_string(),
            worker_id: self.node_id.clone(),
            state: task.state,
            memory_bytes: self.pool.task_bytes(task_id),
            error: task.error.clone(),
        })
    }

    /// Whether the task ended (or is unknown): its engine must stop.
    pub fn is_ended(&self, task_id: &str) -> bool {
        self.tasks.get(task_id).is_none_or(|task| task.state.is_done())
    }

    pub fn counts(&self) -> TaskCounts {
        let mut counts = TaskCounts::default();
        for task in self.tasks.values() {
            match task.state {
                TaskState::Running => counts.running += 1,
                TaskState::Blocked => counts.blocked += 1,
                _ => {}
            }
            if matches!(task.state, TaskState::Blocked | TaskState::Running | TaskState::Finished) {
                counts.unfinished += 1;
            }
        }
        counts
    }

    /// The pool as a heartbeat reports it.
    pub fn memory_info(&self) -> MemoryInfo {
        MemoryInfo {
            pool_bytes: self.pool.capacity_bytes(),
            reserved_bytes: self.pool.reserved_bytes(),
            blocked: self.pool.is_blocked(),
            query_reservations: self.pool.query_reservations(),
        }
    }

    /// A coordinator creates `task_id`. Idempotent: a retried create only counts as a poll.
    pub fn create(&mut self, now_ms: u64, task_id: &str, request: &TaskRequest) -> Result<Created, CreateRefused> {
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.last_poll_ms = now_ms;
            return Ok(Created::Existing(self.status(task_id).unwrap_or_else(|| unreachable_status(task_id))));
        }
        if self.cancelled.contains_key(task_id) {
            return Err(CreateRefused::Cancelled);
        }
        if self.tasks.len() >= TASKS_MAX {
            return Err(CreateRefused::Full);
        }
        // The coordinator's limits on a synthetic statement, checked again here: the worker does
        // not trust its caller to have checked them (rows are held in memory until fetched).
        if request.row_count > crate::sql::synthetic::ROWS_MAX {
            return Err(CreateRefused::BadRequest("row_count is over synthetic()'s limit of 1000000 rows"));
        }
        if request.run_time_ms > crate::sql::synthetic::RUN_TIME_MS_MAX {
            return Err(CreateRefused::BadRequest("run_time_ms is over synthetic()'s limit of 24 h"));
        }
        if request.peak_memory_bytes != 0 && request.peak_memory_bytes < request.memory_bytes {
            return Err(CreateRefused::BadRequest("peak_memory_bytes must be at least memory_bytes (or 0 for no growth)"));
        }
        let state = match self.pool.reserve(task_id, &request.query_id, request.memory_bytes) {
            Reserve::Granted => TaskState::Running,
            Reserve::Waiting => TaskState::Blocked,
            refused @ (Reserve::ExceedsQueryLimit { .. } | Reserve::TooLarge) => {
                return Err(CreateRefused::LocalMemoryLimit(local_limit_error(&self.pool, &refused, request.memory_bytes)));
            }
        };
        let task = Task {
            query_id: request.query_id.clone(),
            state,
            error: None,
            output: TaskOutput::default(),
            last_poll_ms: now_ms,
            ended_ms: None,
            started: false,
        };
        self.tasks.insert(task_id.to_string(), task);
        self.record_memory(task_id);
        Ok(Created::New(self.status(task_id).unwrap_or_else(|| unreachable_status(task_id))))
    }

    /// Its coordinator asks for the task's status, which keeps the task alive.
    pub fn poll(&mut self, now_ms: u64, task_id: &str) -> Option<TaskStatus> {
        self.tasks.get_mut(task_id)?.last_poll_ms = now_ms;
        self.status(task_id)
    }

    /// The task's engine asks for `bytes` more memory.
    pub fn grow(&mut self, now_ms: u64, task_id: &str, bytes: u64) -> Grow {
        let Some(task) = self.tasks.get_mut(task_id).filter(|task| !task.state.is_done()) else { return Grow::Ended };
        if self.pool.is_waiting(task_id) {
            return Grow::Busy;
        }
        let query_id = task.query_id.clone();
        let grow = match self.pool.reserve(task_id, &query_id, bytes) {
            Reserve::Granted => Grow::Granted,
            Reserve::Waiting => {
                task.state = TaskState::Blocked;
                Grow::Waiting
            }
            refused @ (Reserve::ExceedsQueryLimit { .. } | Reserve::TooLarge) => {
                let error = local_limit_error(&self.pool, &refused, bytes);
                self.fail(now_ms, task_id, error);
                return Grow::Ended;
            }
        };
        self.effects.push(Effect::Changed { task_id: task_id.to_string() });
        self.record_memory(task_id);
        grow
    }

    /// The task's engine asks whether it may run: it may once it holds all it asked for.
    pub fn proceed(&mut self, task_id: &str) -> Proceed {
        let waiting = self.pool.is_waiting(task_id);
        let Some(task) = self.tasks.get_mut(task_id).filter(|task| !task.state.is_done()) else { return Proceed::Stop };
        if waiting {
            return Proceed::Wait;
        }
        if !task.started {
            task.started = true;
            let query_id = task.query_id.clone();
            self.record(|table| Event::TaskStarted { task_id: task_id.to_string(), query_id, worker: table.node_id.clone() });
        }
        Proceed::Go
    }

    /// The task's engine is done and produced `output`. Ignored if the task ended meanwhile.
    pub fn finish(&mut self, now_ms: u64, task_id: &str, output: TaskOutput) {
        let Some(task) = self.tasks.get_mut(task_id).filter(|task| !task.state.is_done()) else { return };
        task.output = output;
        self.end(now_ms, task_id, TaskState::Finished);
    }

    /// The task failed with `error` (its engine's, or the per-node limit). Ignored if it ended.
    pub fn fail(&mut self, now_ms: u64, task_id: &str, error: TaskRejection) {
        let Some(task) = self.tasks.get_mut(task_id).filter(|task| !task.state.is_done()) else { return };
        task.error = Some(error);
        self.end(now_ms, task_id, TaskState::Failed);
    }

    /// Its coordinator cancels the task (`DELETE`): it stops, frees its memory, leaves the table,
    /// and its id is refused from now on.
    pub fn cancel(&mut self, now_ms: u64, task_id: &str) {
        if self.cancelled.len() >= TASKS_MAX {
            // Full of tombstones (they expire after FINISHED_TASK_RETENTION_MS): forget one. Which
            // one hardly matters, any create that old has long reached the worker.
            self.cancelled.pop_first();
        }
        self.cancelled.insert(task_id.to_string(), now_ms);
        self.end(now_ms, task_id, TaskState::Canceled);
        self.release_output(task_id);
        if self.tasks.remove(task_id).is_some() {
            self.effects.push(Effect::Removed { task_id: task_id.to_string() });
        }
    }

    /// Its coordinator fetches a finished task's rows (which also counts as a poll).
    pub fn results(&mut self, now_ms: u64, task_id: &str) -> Result<TaskOutput, ResultsRefused> {
        match self.tasks.get_mut(task_id) {
            Some(task) if task.state == TaskState::Finished => {
                task.last_poll_ms = now_ms;
                Ok(task.output.clone())
            }
            Some(_) => Err(ResultsRefused::NotFinished),
            None => Err(ResultsRefused::NotFound),
        }
    }

    /// The reaper's timer: abandons tasks nobody polled for `task.client.timeout`, forgets
    /// finished tasks and tombstones older than [`FINISHED_TASK_RETENTION_MS`].
    pub fn tick(&mut self, now_ms: u64) {
        let abandoned: Vec<(String, String)> = self
            .tasks
            .iter()
            .filter(|(_, task)| !task.state.is_done() && now_ms.saturating_sub(task.last_poll_ms) > self.client_timeout_ms)
            .map(|(task_id, task)| (task_id.clone(), task.query_id.clone()))
            .collect();
        for (task_id, query_id) in abandoned {
            self.effects.push(Effect::Abandoned { task_id: task_id.clone(), query_id });
            self.end(now_ms, &task_id, TaskState::Abandoned);
        }
        self.cancelled.retain(|_, cancelled_ms| now_ms.saturating_sub(*cancelled_ms) < FINISHED_TASK_RETENTION_MS);
        let expired: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, task)| task.ended_ms.is_some_and(|ended_ms| now_ms.saturating_sub(ended_ms) >= FINISHED_TASK_RETENTION_MS))
            .map(|(task_id, _)| task_id.clone())
            .collect();
        for task_id in expired {
            self.release_output(&task_id);
            self.tasks.remove(&task_id);
            self.effects.push(Effect::Removed { task_id });
        }
    }

    /// Ends a task that has not ended: frees its memory and wakes its engine so it stops.
    fn end(&mut self, now_ms: u64, task_id: &str, end_state: TaskState) {
        let Some(task) = self.tasks.get_mut(task_id).filter(|task| !task.state.is_done()) else { return };
        task.state = end_state;
        task.ended_ms = Some(now_ms);
        let query_id = task.query_id.clone();
        let keeps_memory = holds_output(task);
        self.effects.push(Effect::Wake { task_id: task_id.to_string() });
        self.effects.push(Effect::Changed { task_id: task_id.to_string() });
        self.record(|table| Event::TaskEnded {
            task_id: task_id.to_string(),
            query_id,
            worker: table.node_id.clone(),
            state: end_state.name().to_string(),
        });
        // A SQL task's output pages are memory until its coordinator fetched and released them:
        // they stay reserved (a synthetic task's few rows do not count).
        if !keeps_memory {
            self.release_memory(task_id);
        }
    }

    /// Frees a finished SQL task's output pages (when it leaves the table).
    fn release_output(&mut self, task_id: &str) {
        if self.tasks.get(task_id).is_some_and(holds_output) {
            self.release_memory(task_id);
        }
    }

    /// Frees everything `task_id` holds or waits for; the tasks granted as a result run again.
    fn release_memory(&mut self, task_id: &str) {
        let granted = self.pool.release(task_id);
        self.record_memory(task_id);
        for granted in granted {
            let Some(task) = self.tasks.get_mut(&granted) else { continue };
            // Only a blocked task waits in the pool; now it holds what it asked for.
            task.state = TaskState::Running;
            self.effects.push(Effect::Wake { task_id: granted.clone() });
            self.effects.push(Effect::Changed { task_id: granted.clone() });
            self.record_memory(&granted);
        }
    }

    /// Tells the oracle what `task_id` holds now.
    fn record_memory(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get(task_id) else { return };
        let query_id = task.query_id.clone();
        self.record(|table| Event::TaskMemory {
            task_id: task_id.to_string(),
            query_id,
            worker: table.node_id.clone(),
            task_bytes: table.pool.task_bytes(task_id),
            blocked: table.pool.is_blocked(),
        });
    }

    fn record(&mut self, make: impl FnOnce(&TaskTable) -> Event) {
        if self.record_events {
            let event = make(self);
            self.effects.push(Effect::Record(event));
        }
    }

    /// The invariants that concern one task, after an input that touched it: cheap (a lookup and
    /// a scan of the pool's wait queue) so the driver can check them after every input.
    pub fn check_task(&self, task_id: &str) -> Result<(), String> {
        self.check_bounds()?;
        self.check_one(task_id, self.pool.is_waiting(task_id))
    }

    /// Every invariant of the table and its pool, for the timer tick and for tests:
    /// O((tasks + reservations + waiting) · log). The pool's memory belongs to live tasks only, so
    /// `reserved == Σ` what live tasks hold, and finished tasks for their output pages.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()?;
        self.check_bounds()?;
        let waiting: BTreeSet<&str> = self.pool.waiting_task_ids().collect();
        if let Some(task_id) = waiting.iter().find(|task_id| !self.tasks.contains_key(**task_id)) {
            return Err(format!("task {task_id} waits in the pool but is not in the table"));
        }
        let mut live_bytes = 0u64;
        for (task_id, task) in &self.tasks {
            self.check_one(task_id, waiting.contains(task_id.as_str()))?;
            if !task.state.is_done() || holds_output(task) {
                live_bytes += self.pool.task_bytes(task_id);
            }
        }
        if live_bytes != self.pool.reserved_bytes() {
            return Err(format!("live tasks hold {live_bytes} bytes but the pool reserved {}", self.pool.reserved_bytes()));
        }
        Ok(())
    }

    fn check_bounds(&self) -> Result<(), String> {
        if self.tasks.len() > TASKS_MAX || self.cancelled.len() > TASKS_MAX {
            return Err(format!("{} tasks and {} tombstones, over {TASKS_MAX}", self.tasks.len(), self.cancelled.len()));
        }
        if self.pool.reserved_bytes() > self.pool.capacity_bytes() {
            return Err(format!("pool over-committed: {} of {} bytes", self.pool.reserved_bytes(), self.pool.capacity_bytes()));
        }
        Ok(())
    }

    /// One task's invariants, given whether it waits in the pool.
    fn check_one(&self, task_id: &str, waiting: bool) -> Result<(), String> {
        let held_bytes = self.pool.task_bytes(task_id);
        let Some(task) = self.tasks.get(task_id) else {
            if waiting || held_bytes > 0 {
                return Err(format!("task {task_id} is gone but holds {held_bytes} bytes (waiting: {waiting})"));
            }
            return Ok(());
        };
        if self.cancelled.contains_key(task_id) {
            return Err(format!("task {task_id} is both live and cancelled"));
        }
        if task.state.is_done() != task.ended_ms.is_some() {
            return Err(format!("task {task_id} is {:?} with end time {:?}", task.state, task.ended_ms));
        }
        if task.error.is_some() && task.state != TaskState::Failed {
            return Err(format!("task {task_id} is {:?} with an error", task.state));
        }
        if !task.output.is_empty() && task.state != TaskState::Finished {
            return Err(format!("task {task_id} is {:?} with rows", task.state));
        }
        match task.state {
            TaskState::Blocked if !waiting => Err(format!("task {task_id} is BLOCKED but waits for nothing")),
            TaskState::Running if waiting => Err(format!("task {task_id} is RUNNING but waits for memory")),
            _ if holds_output(task) && waiting => Err(format!("task {task_id} finished but waits for memory")),
            _ if holds_output(task) => Ok(()),
            state if state.is_done() && (waiting || held_bytes > 0) => {
                Err(format!("task {task_id} is {state:?} but holds {held_bytes} bytes (waiting: {waiting})"))
            }
            _ => Ok(()),
        }
    }
}

/// A finished SQL task keeps its output pages, and their reservation, until they are released.
fn holds_output(task: &Task) -> bool {
    task.state == TaskState::Finished && matches!(task.output, TaskOutput::Pages(_))
}

/// Never happens: called right after the task was found or inserted. A status for an empty task
/// rather than a panic keeps the node answering.
fn unreachable_status(task_id: &str) -> TaskStatus {
    TaskStatus { task_id: task_id.to_string(), worker_id: String::new(), state: TaskState::Failed, memory_bytes: 0, error: None }
}

/// Presto's per-node limit error for a refused reservation of `bytes`.
fn local_limit_error(pool: &MemoryPool, refused: &Reserve, bytes: u64) -> TaskRejection {
    let (limit_bytes, held_bytes) = match refused {
        Reserve::ExceedsQueryLimit { limit_bytes, held_bytes } => (*limit_bytes, *held_bytes),
        _ => (pool.capacity_bytes().min(pool.query_limit_bytes()), 0),
    };
    TaskRejection {
        error_name: "EXCEEDED_LOCAL_MEMORY_LIMIT".into(),
        message: format!(
            "Query exceeded per-node user memory limit of {} [Allocated: {}, Delta: {}]",
            format_data_size(limit_bytes),
            format_data_size(held_bytes),
            format_data_size(bytes)
        ),
    }
}

#[cfg(test)]
mod tests;
