//! The runtime seam: the one module that knows fireball runs in two worlds.
//!
//! Built normally, `tokio` is real tokio and everything here touches the real clock, real sockets
//! and real threads. Built with `--cfg madsim`, `tokio` is madsim-tokio: time, tasks, TCP and
//! randomness are simulated and deterministic per seed. Every other module is written once against
//! the small surface below:
//!
//! - [`http_server`]: our own accept loop serving an axum `Router` with hyper (never `axum::serve`,
//!   which calls real tokio and panics in simulation), bounded connections, graceful shutdown.
//! - [`http_client`]: HTTP/1.1 + JSON client with connection reuse, a timeout on every request and
//!   bounded retries.
//! - [`clock`]: monotonic milliseconds and wall-clock time, with a per-node offset simulation sets.
//! - [`rng`]: seeded randomness (seeded from madsim's RNG in simulation).
//! - [`spawn`]: task spawning.
//! - [`sim_hooks`]: the message-level fault filter and the oracle's event recorder; both compile to
//!   nothing in production.
//!
//! Rules for code outside the seam, so that one seed always gives one run: no `std::thread`, no
//! clock but [`Clock`], no randomness but [`rng::NodeRng`], `BTreeMap` where iteration order
//! matters, and every `tokio::select!` starts with `biased;` (madsim-tokio re-exports real tokio's
//! macro, whose unbiased form draws from an RNG madsim does not control). `ci/test` checks the last.

pub mod clock;
pub mod connections;
pub mod http_client;
pub mod http_server;
mod hyper_rt;
pub mod rng;
pub mod sim_hooks;
mod stream;
#[cfg(not(madsim))]
pub mod tls;

pub use clock::Clock;

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

/// Locks a node's state even if a task panicked while holding it. State is only ever changed by
/// short, non-panicking sections (cores assert their invariants after each input), so the data
/// behind a poisoned lock is as consistent as the last completed change; refusing it would turn
/// one bug into a node that never answers again.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Spawns a task on the current runtime (a simulated node's runtime under madsim).
///
/// Tasks must never panic on input from the network: under madsim a panic in any task aborts the
/// whole simulation.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

/// Spawns CPU-bound work (the SQL engine's operators, which compute inside `poll`) on the
/// engine's own runtime, so it never holds the threads that serve the node's HTTP, heartbeats and
/// task polls: on one shared runtime a busy worker stopped answering task creates within the
/// request timeout. The engine runtime has [`available_processors`] threads and lives as long as
/// the process. Production builds only: the simulation has no SQL engine.
#[cfg(not(madsim))]
pub fn spawn_engine<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static ENGINE: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let threads = usize::try_from(available_processors()).unwrap_or(1).max(1);
        let built = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name("fireball-engine").enable_all().build();
        built.map_err(|error| tracing::error!(%error, "cannot start the engine runtime; SQL runs on the node's")).ok()
    });
    match engine {
        Some(runtime) => runtime.spawn(future),
        None => tokio::spawn(future),
    }
}

/// Sleeps for `duration_ms` of (possibly simulated) time.
pub async fn sleep_ms(duration_ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(duration_ms)).await;
}

/// Runs `future` with a deadline of `timeout_ms`; `None` when it ran out.
pub async fn timeout_ms<F: Future>(timeout_ms: u64, future: F) -> Option<F::Output> {
    tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), future).await.ok()
}

/// Processors this host offers, as workers report them in heartbeats. Read from the host once
/// (the read goes through cgroup files, far too slow for every heartbeat); a fixed
/// [`SIMULATED_PROCESSORS`] in simulation, so a simulated heartbeat never carries the real host.
pub fn available_processors() -> u32 {
    if cfg!(madsim) {
        return SIMULATED_PROCESSORS;
    }
    static PROCESSORS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PROCESSORS.get_or_init(|| {
        #[allow(clippy::disallowed_methods, reason = "the seam: read once per process, never in simulation")]
        let processors = std::thread::available_parallelism();
        processors.map_or(1, |count| u32::try_from(count.get()).unwrap_or(u32::MAX))
    })
}

/// What [`available_processors`] answers in simulation.
pub const SIMULATED_PROCESSORS: u32 = 8;

/// True when this build is the deterministic simulation.
pub const fn is_simulation() -> bool {
    cfg!(madsim)
}
