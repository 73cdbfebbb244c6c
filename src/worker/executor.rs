//! The one interface through which an engine runs a task.
//!
//! The worker hands an [`Executor`] each new task's [`TaskRequest`] and a [`TaskHandle`]. Through
//! the handle the engine asks for memory (and waits while the pool blocks it), works for a while,
//! and learns that the task ended under it (cancelled, abandoned, failed on the per-node limit).
//! It ends by returning an [`Outcome`], which the worker reports to the task table — so an engine
//! cannot forget to report, and a dropped engine (its node killed) reports nothing.
//!
//! The synthetic engine (`synthetic.rs`) is one implementation; the SQL engine will be another.
//! The table never knows which one runs a task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::shell::{Signals, TaskShell};
use super::tasks::{Grow, Proceed, TaskOutput};
use crate::wire::{TaskRejection, TaskRequest};

/// How an engine's run ended.
#[derive(Debug)]
pub enum Outcome {
    Finished(TaskOutput),
    Failed(TaskRejection),
    /// The task ended under the engine (the handle said so): nothing to report.
    Ended,
}

/// A boxed engine run, so that executors can be chosen at run time (`Arc<dyn Executor>`).
pub type Run = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// An engine that runs tasks.
pub trait Executor: Send + Sync + 'static {
    /// Runs one task to its end. The task was created holding (or waiting for) the request's
    /// initial memory; the engine must [`TaskHandle::wait_for_memory`] before it starts working.
    fn run(&self, request: TaskRequest, task: TaskHandle) -> Run;
}

/// Starts `executor` on a task the table just created, and reports its outcome.
pub fn start(executor: Arc<dyn Executor>, shell: TaskShell, task_id: String, request: TaskRequest) {
    let Some(signals) = shell.signals(&task_id) else { return };
    let span = tracing::info_span!("task", query_id = %request.query_id, task_id = %task_id);
    let handle = TaskHandle { shell: shell.clone(), task_id: task_id.clone(), signals };
    let run = executor.run(request, handle);
    crate::runtime::spawn(tracing::Instrument::instrument(
        async move {
            match run.await {
                Outcome::Finished(output) => shell.finish(&task_id, output),
                Outcome::Failed(error) => shell.fail(&task_id, error),
                Outcome::Ended => {}
            }
        },
        span,
    ));
}

/// An engine's view of its task.
pub struct TaskHandle {
    shell: TaskShell,
    task_id: String,
    signals: Arc<Signals>,
}

impl TaskHandle {
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The worker running the task.
    pub fn node_id(&self) -> &str {
        self.shell.node_id()
    }

    /// `query.max-memory-per-node` on this worker: a bound for the engine's own working memory.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.shell.query_limit_bytes()
    }

    /// Whether the task ended (cancelled, abandoned, failed): the engine should stop.
    pub fn is_ended(&self) -> bool {
        self.shell.is_ended(&self.task_id)
    }

    /// Waits until the task holds everything it asked for; `false` if it ended meanwhile.
    pub async fn wait_for_memory(&self) -> bool {
        loop {
            match self.shell.proceed(&self.task_id) {
                Proceed::Go => return true,
                Proceed::Stop => return false,
                // A grant (or the end) between the answer and this wait is not lost: `wake` is
                // notified with `notify_one`, which keeps a permit for the next waiter.
                Proceed::Wait => self.signals.wake.notified().await,
            }
        }
    }

    /// Asks for `bytes` more and waits until they are granted; `false` if the task ended
    /// (including: the request would pass the per-node limit, which fails the task).
    pub async fn reserve(&self, bytes: u64) -> bool {
        loop {
            match self.shell.grow(&self.task_id, bytes) {
                Grow::Granted | Grow::Waiting => return self.wait_for_memory().await,
                Grow::Ended => return false,
                // An earlier request still waits (an engine reserving from two places at once).
                Grow::Busy => {
                    if !self.wait_for_memory().await {
                        return false;
                    }
                }
            }
        }
    }

    /// Works (in the synthetic engine: sleeps) for `duration_ms` unless the task ends first;
    /// `false` if it did.
    pub async fn work_for_ms(&self, duration_ms: u64) -> bool {
        let deadline_ms = self.shell.now_ms().saturating_add(duration_ms);
        loop {
            let remaining_ms = deadline_ms.saturating_sub(self.shell.now_ms());
            if remaining_ms == 0 {
                return true;
            }
            tokio::select! {
                biased;
                _ = crate::runtime::sleep_ms(remaining_ms) => return true,
                // The task ended — or a leftover grant wake-up, after which the work goes on.
                _ = self.signals.wake.notified() => {
                    if self.is_ended() {
                        return false;
                    }
                }
            }
        }
    }
}
