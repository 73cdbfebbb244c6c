//! The worker: runs tasks, owns a memory pool, heartbeats memory and cpu to every RM, and drops
//! tasks whose coordinator stopped polling them (`task.client.timeout`), so a crashed or
//! partitioned coordinator cannot pin a worker's memory forever.
//!
//! - [`tasks`]: the task table, a pure state machine (create, memory, status, results, cancel,
//!   abandonment, expiry, invariants) that owns the memory pool;
//! - [`shell`]: the driver around it: one lock, the clock, the wake-ups, the invariant reports;
//! - [`executor`]: the one interface engines run tasks through;
//! - [`synthetic`]: the synthetic engine (run time, memory growth, generated rows);
//! - [`http`]: the task API handlers;
//! - this file: wiring, heartbeats, and the reaper's timer.

pub mod executor;
mod http;
pub mod shell;
pub mod synthetic;
pub mod tasks;

use std::sync::Arc;

use axum::Router;

use crate::config::{NodeConfig, Role};
use crate::discovery::announcer::ResourceManagers;
use crate::memory::pool::MemoryPool;
use crate::snapshot_sender::SnapshotSender;
use crate::runtime::http_client::HttpClient;
use crate::runtime::sim_hooks::MessageKind;
use crate::wire::{paths, CpuInfo, NodeHeartbeat};
use executor::Executor;
use shell::TaskShell;
use tasks::TaskTable;

pub use synthetic::GROWTH_STEPS;

const REAPER_INTERVAL_MS: u64 = 1_000;

#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    client: HttpClient,
    resource_managers: ResourceManagers,
    metrics: crate::metrics::Metrics,
    tasks: TaskShell,
    executor: Arc<dyn Executor>,
}

impl Worker {
    /// A worker running the synthetic engine.
    pub fn new(context: crate::context::NodeContext, resource_managers: ResourceManagers) -> Self {
        Worker::with_executor(context, resource_managers, Arc::new(synthetic::SyntheticExecutor))
    }

    /// A worker running its tasks on `executor`.
    pub fn with_executor(context: crate::context::NodeContext, resource_managers: ResourceManagers, executor: Arc<dyn Executor>) -> Self {
        let crate::context::NodeContext { config, clock, client, metrics, .. } = context;
        let pool = MemoryPool::new(config.memory_pool_bytes, config.query_max_memory_per_node_bytes);
        let table = TaskTable::new(&config.node_id, pool, config.task_client_timeout_ms, crate::runtime::is_simulation());
        let tasks = TaskShell::new(&config.node_id, clock, table);
        Worker { inner: Arc::new(Inner { config, client, resource_managers, metrics, tasks, executor }) }
    }

    pub fn router(&self) -> Router {
        http::router(self.inner.tasks.clone(), self.inner.executor.clone())
    }

    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        vec![crate::runtime::spawn(run_heartbeats(self.clone())), crate::runtime::spawn(run_reaper(self.inner.tasks.clone()))]
    }

    /// Tasks a graceful shutdown waits for: running, waiting for memory, or finished with rows
    /// their coordinator has not fetched yet.
    pub fn unfinished_tasks(&self) -> usize {
        self.inner.tasks.counts().unfinished
    }

    fn heartbeat(&self) -> NodeHeartbeat {
        let (memory, counts) = self.inner.tasks.load();
        NodeHeartbeat {
            node_id: self.inner.config.node_id.clone(),
            role: Role::Worker,
            uri: self.inner.config.self_uri(),
            memory,
            cpu: CpuInfo {
                processors: crate::runtime::available_processors(),
                running_tasks: counts.running,
                blocked_tasks: counts.blocked,
            },
        }
    }
}

async fn run_heartbeats(worker: Worker) {
    let interval_ms = worker.inner.config.node_heartbeat_interval_ms;
    let timeout_ms = worker.inner.config.request_timeout_ms.min(interval_ms.max(1_000));
    let mut fan_out = SnapshotSender::new(paths::NODE_HEARTBEAT, MessageKind::NodeHeartbeat).with_metrics(&worker.inner.metrics);
    loop {
        let heartbeat = Arc::new(worker.heartbeat());
        let uris = worker.inner.resource_managers.all();
        fan_out.send(&worker.inner.client, uris, heartbeat, timeout_ms);
        crate::runtime::sleep_ms(interval_ms).await;
    }
}

/// The table's timer: abandons tasks nobody polls, forgets finished tasks nobody fetched.
async fn run_reaper(tasks: TaskShell) {
    loop {
        crate::runtime::sleep_ms(REAPER_INTERVAL_MS).await;
        tasks.tick();
    }
}

// Not under madsim: these tests drive the router directly on real tokio.
#[cfg(all(test, not(madsim)))]
mod tests;
