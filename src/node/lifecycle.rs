//! A node's lifecycle: ACTIVE until someone asks it to shut down (`PUT /v1/info/state` with
//! `"SHUTTING_DOWN"`), then SHUTTING_DOWN until the process exits. What "shutting down" means is
//! up to the role (a coordinator refuses new queries, a worker new tasks); the role registers a
//! hook that runs synchronously with the state change, so no request slips in between.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::wire::NodeState;

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    state: watch::Sender<NodeState>,
    hooks: Mutex<Vec<Hook>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        let (state, _) = watch::channel(NodeState::Active);
        Lifecycle { inner: Arc::new(Inner { state, hooks: Mutex::new(Vec::new()) }) }
    }

    pub fn state(&self) -> NodeState {
        *self.inner.state.borrow()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.state() == NodeState::ShuttingDown
    }

    /// Follows state changes (the announcer tells discovery about them).
    pub fn subscribe(&self) -> watch::Receiver<NodeState> {
        self.inner.state.subscribe()
    }

    /// Runs `hook` when the shutdown begins (at once if it already has).
    pub fn on_shutdown(&self, hook: impl Fn() + Send + Sync + 'static) {
        if self.is_shutting_down() {
            hook();
            return;
        }
        crate::runtime::lock(&self.inner.hooks).push(Box::new(hook));
    }

    /// Enters SHUTTING_DOWN; false if it already had (shutting down twice is harmless).
    pub fn begin_shutdown(&self) -> bool {
        let changed = self.inner.state.send_if_modified(|state| {
            let was_active = *state == NodeState::Active;
            *state = NodeState::ShuttingDown;
            was_active
        });
        if changed {
            let hooks = std::mem::take(&mut *crate::runtime::lock(&self.inner.hooks));
            for hook in hooks {
                hook();
            }
        }
        changed
    }

    /// Returns once a shutdown was asked for. Waits through a hook and a `Notify`, not the state
    /// `watch`: a watch spreads its waiters over 8 notifiers picked with real tokio's thread RNG
    /// (not madsim's), so with the announcer also waiting, two runs of one seed would wake them
    /// in different orders. (Each call adds a hook; `node::run` calls it once.)
    pub async fn shutdown_requested(&self) {
        let requested = Arc::new(tokio::sync::Notify::new());
        let hook = requested.clone();
        // `notify_one` keeps a permit when nobody waits yet, so a hook run at once is not missed.
        self.on_shutdown(move || hook.notify_one());
        requested.notified().await;
    }
}

/// What a `PUT /v1/info/state` asks for, once checked.
#[derive(Debug, PartialEq, Eq)]
pub enum StateRequest {
    Shutdown,
    /// "ACTIVE" on an active node: nothing to do.
    StayActive,
}

/// Reads a `PUT /v1/info/state` body: a JSON string naming a state. Like Presto, a node never
/// goes back from SHUTTING_DOWN, and INACTIVE is not something one can ask for.
pub fn parse_state_request(body: &[u8], current: NodeState) -> Result<StateRequest, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?.trim();
    if text.is_empty() {
        return Err("the body is empty; send a JSON string: \"SHUTTING_DOWN\"".into());
    }
    let requested: String = serde_json::from_str(text)
        .map_err(|_| format!("the body must be a JSON string such as \"SHUTTING_DOWN\", not {}", truncate(text, 100)))?;
    match (requested.as_str(), current) {
        ("SHUTTING_DOWN", _) => Ok(StateRequest::Shutdown),
        ("ACTIVE", NodeState::Active) => Ok(StateRequest::StayActive),
        ("ACTIVE" | "INACTIVE", _) => Err(format!("Invalid state transition to {requested}: the node is {}", current.name())),
        (other, _) => Err(format!("Invalid state {other:?}: expected \"SHUTTING_DOWN\" (or \"ACTIVE\")")),
    }
}

fn truncate(text: &str, chars_max: usize) -> String {
    let mut shown: String = text.chars().take(chars_max).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_requests_are_checked() {
        use NodeState::*;
        assert_eq!(parse_state_request(b"\"SHUTTING_DOWN\"", Active), Ok(StateRequest::Shutdown));
        assert_eq!(parse_state_request(b" \"SHUTTING_DOWN\"\n", ShuttingDown), Ok(StateRequest::Shutdown));
        assert_eq!(parse_state_request(b"\"ACTIVE\"", Active), Ok(StateRequest::StayActive));
        let back = parse_state_request(b"\"ACTIVE\"", ShuttingDown).unwrap_err();
        assert!(back.contains("Invalid state transition to ACTIVE"), "{back}");
        assert!(parse_state_request(b"\"INACTIVE\"", Active).unwrap_err().contains("INACTIVE"));
        assert!(parse_state_request(b"SHUTTING_DOWN", Active).unwrap_err().contains("JSON string"));
        assert!(parse_state_request(b"\"shutdown\"", Active).unwrap_err().contains("\"shutdown\""));
        assert!(parse_state_request(b"", Active).unwrap_err().contains("empty"));
        assert!(parse_state_request(&[0xff, 0xfe], Active).unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn hooks_run_once_when_the_shutdown_begins() {
        let lifecycle = Lifecycle::new();
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = calls.clone();
        lifecycle.on_shutdown(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(lifecycle.begin_shutdown());
        assert!(!lifecycle.begin_shutdown());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(lifecycle.is_shutting_down());
    }
}
