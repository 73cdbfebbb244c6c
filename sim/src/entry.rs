//! What the run's trace holds: an event a node recorded through the seam, or something the
//! harness did (a fault, a crash, a shutdown request, a node's exit). Its own module, below both halves of the oracle
//! ([`crate::oracle`] and [`crate::memory_oracle`]) that replay it.

use fireball::runtime::sim_hooks::Event;
use serde::Serialize;

/// What the harness itself did, recorded beside the nodes' events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "harness", rename_all = "snake_case")]
pub enum HarnessEvent {
    FaultStarted { index: usize, description: String },
    FaultEnded { index: usize },
    NodeCrashed { node: String },
    NodeRestarted { node: String },
    /// The harness sent `PUT /v1/info/state "SHUTTING_DOWN"` to the node (a `shutdown` fault)…
    ShutdownSent { node: String },
    /// …and the node answered 200: it is SHUTTING_DOWN from here on…
    ShutdownAccepted { node: String },
    /// …or the request did not get through.
    ShutdownFailed { node: String, reason: String },
    /// The node's `node::run` returned (it stopped by itself); madsim then ends its process.
    NodeExited { node: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Node(Event),
    Harness(HarnessEvent),
}
