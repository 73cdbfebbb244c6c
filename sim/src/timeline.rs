//! Applies a scenario's faults at their times and lifts them when they end.
//!
//! Network clogs are reference-counted per node and per link, so overlapping faults compose: a
//! link cut by two partitions heals only when both have ended.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration as StdDuration;

use fireball::config::Role;
use fireball::runtime::http_client::{HttpClient, Request, RequestSigner};
use fireball::runtime::Clock;
use fireball::security::internal::InternalAuth;
use std::sync::Arc;
use fireball::runtime::sim_hooks::MessageKind;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};

use crate::cluster::SimCluster;
use crate::faults::{Action, Glob, MessageFaults, Rule};
use crate::scenario::{Fault, FaultKind};
use crate::trace::{HarnessEvent, Trace};

/// The operator's `PUT /v1/info/state`: a short timeout, a few retries (an operator retries a
/// request that got lost; the node treats a repeated request as one).
const SHUTDOWN_REQUEST_TIMEOUT_MS: u64 = 5_000;
const SHUTDOWN_REQUEST_RETRIES_MAX: u32 = 3;

pub struct Timeline {
    cluster: Rc<SimCluster>,
    /// The client host `shutdown` requests come from.
    operator: NodeHandle,
    messages: MessageFaults,
    trace: Trace,
    faults: Vec<Fault>,
    clogged_nodes: Rc<RefCell<BTreeMap<String, u32>>>,
    clogged_links: Rc<RefCell<BTreeMap<(String, String), u32>>>,
}

/// Something to do at a time: start or end fault `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    End(usize),
    Start(usize),
}

impl Timeline {
    pub fn new(cluster: Rc<SimCluster>, operator: NodeHandle, messages: MessageFaults, trace: Trace, faults: Vec<Fault>) -> Self {
        Timeline {
            cluster,
            operator,
            messages,
            trace,
            faults,
            clogged_nodes: Rc::new(RefCell::new(BTreeMap::new())),
            clogged_links: Rc::new(RefCell::new(BTreeMap::new())),
        }
    }

    pub async fn run(self) {
        let mut steps: Vec<(u64, Step)> = Vec::new();
        for (index, fault) in self.faults.iter().enumerate() {
            steps.push((fault.at.0, Step::Start(index)));
            let lasts = fault.duration.is_some() || fault.restart_after.is_some();
            if lasts {
                steps.push((fault.end_ms(u64::MAX), Step::End(index)));
            }
        }
        steps.sort();
        let mut undo: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for (at_ms, step) in steps {
            let now_ms = self.trace.now_ms();
            if at_ms > now_ms {
                madsim::time::sleep(StdDuration::from_millis(at_ms - now_ms)).await;
            }
            match step {
                Step::Start(index) => {
                    let fault = &self.faults[index];
                    self.trace.record_harness(HarnessEvent::FaultStarted { index, description: describe(fault) });
                    let rules = self.start(fault);
                    undo.insert(index, rules);
                }
                Step::End(index) => {
                    self.end(&self.faults[index], undo.remove(&index).unwrap_or_default());
                    self.trace.record_harness(HarnessEvent::FaultEnded { index });
                }
            }
        }
    }

    fn names(&self, patterns: &[String]) -> Vec<String> {
        let mut names = BTreeSet::new();
        for pattern in patterns {
            let glob = Glob(pattern.clone());
            names.extend(self.cluster.nodes().filter(|node| glob.matches(&node.name)).map(|node| node.name.clone()));
        }
        names.into_iter().collect()
    }

    fn rm_names(&self, fault: &Fault) -> Vec<String> {
        if fault.nodes.is_empty() {
            self.cluster.nodes().filter(|node| node.role == Role::ResourceManager).map(|node| node.name.clone()).collect()
        } else {
            self.names(&fault.nodes)
        }
    }

    /// Applies `fault`; returns message-rule ids to remove at its end.
    fn start(&self, fault: &Fault) -> Vec<u64> {
        let handle = Handle::current();
        match fault.kind {
            FaultKind::RmOutage => self.rm_names(fault).iter().for_each(|name| self.clog_node(name, true)),
            FaultKind::Crash => {
                for name in self.names(&fault.nodes) {
                    self.cluster.kill(&name);
                    self.trace.record_harness(HarnessEvent::NodeCrashed { node: name });
                }
            }
            FaultKind::Pause => self.names(&fault.nodes).iter().for_each(|name| handle.pause(self.cluster.node(name).id)),
            FaultKind::Shutdown => self.names(&fault.nodes).into_iter().for_each(|name| self.request_shutdown(name)),
            FaultKind::Partition | FaultKind::ClogLink => {
                for (from, to) in self.links(fault) {
                    self.clog_link(&from, &to, true);
                }
            }
            FaultKind::HeartbeatLoss => {
                let kinds = match fault.message.as_deref().and_then(MessageKind::parse) {
                    Some(kind) => vec![kind],
                    None => vec![MessageKind::NodeHeartbeat, MessageKind::QueryHeartbeat],
                };
                return kinds
                    .into_iter()
                    .map(|kind| {
                        self.messages.add(Rule {
                            from: Glob(fault.from.clone().unwrap_or_else(|| "*".into())),
                            to: Glob(fault.to.clone().unwrap_or_else(|| "*".into())),
                            kind: Some(kind),
                            action: Action::Drop { probability: fault.probability.unwrap_or(1.0) },
                        })
                    })
                    .collect();
            }
            FaultKind::Latency => {
                return vec![self.messages.add(Rule {
                    from: Glob(fault.from.clone().unwrap_or_else(|| "*".into())),
                    to: Glob(fault.to.clone().unwrap_or_else(|| "*".into())),
                    kind: fault.message.as_deref().and_then(MessageKind::parse),
                    action: Action::Delay {
                        min_ms: fault.min.map(|d| d.0).unwrap_or(0),
                        max_ms: fault.max.map(|d| d.0).unwrap_or(0),
                    },
                })];
            }
            FaultKind::ClockSkew => {
                let offset_ms = fault.offset.as_deref().map(crate::scenario::parse_signed_duration_ms).and_then(Result::ok).unwrap_or(0);
                for name in self.names(&fault.nodes) {
                    let clock = &self.cluster.node(&name).clock;
                    clock.set_offset_ms(offset_ms);
                    clock.set_drift_ppm(fault.drift_ppm.unwrap_or(0));
                }
            }
        }
        Vec::new()
    }

    fn end(&self, fault: &Fault, rules: Vec<u64>) {
        let handle = Handle::current();
        for rule in rules {
            self.messages.remove(rule);
        }
        match fault.kind {
            FaultKind::RmOutage => self.rm_names(fault).iter().for_each(|name| self.clog_node(name, false)),
            FaultKind::Crash => {
                for name in self.names(&fault.nodes) {
                    self.cluster.restart(&name);
                    self.trace.record_harness(HarnessEvent::NodeRestarted { node: name });
                }
            }
            FaultKind::Pause => self.names(&fault.nodes).iter().for_each(|name| handle.resume(self.cluster.node(name).id)),
            FaultKind::Partition | FaultKind::ClogLink => {
                for (from, to) in self.links(fault) {
                    self.clog_link(&from, &to, false);
                }
            }
            FaultKind::HeartbeatLoss | FaultKind::Latency | FaultKind::Shutdown => {}
            FaultKind::ClockSkew => {
                for name in self.names(&fault.nodes) {
                    let clock = &self.cluster.node(&name).clock;
                    clock.set_offset_ms(0);
                    clock.set_drift_ppm(0);
                }
            }
        }
    }

    /// Sends `PUT /v1/info/state "SHUTTING_DOWN"` to `name` from the operator's host, over the
    /// simulated network, and records when it was sent and how it was answered. The node's exit
    /// is recorded by the cluster ([`SimCluster::on_exit`]).
    fn request_shutdown(&self, name: String) {
        let url = format!("{}/v1/info/state", self.cluster.node(&name).uri);
        self.trace.record_harness(HarnessEvent::ShutdownSent { node: name.clone() });
        // The operator holds the cluster's secret, as an admin's tooling would: stopping a node
        // is an internal request.
        let secret = self.cluster.layout.shared_secret();
        let answer = self.operator.spawn(async move {
            let signer = secret.map(|secret| {
                Arc::new(InternalAuth::new(&secret, "operator", Clock::new())) as Arc<dyn RequestSigner>
            });
            let client = HttpClient::signed("operator", SHUTDOWN_REQUEST_TIMEOUT_MS, SHUTDOWN_REQUEST_RETRIES_MAX, signer);
            let request = Request::new(hyper::Method::PUT, url, MessageKind::Other)
                .header("content-type", "application/json")
                .text("\"SHUTTING_DOWN\"");
            match client.send(request).await {
                Ok(response) if response.status == 200 => Ok(()),
                Ok(response) => Err(format!("answered {}: {}", response.status, String::from_utf8_lossy(&response.body))),
                Err(error) => Err(error.to_string()),
            }
        });
        let trace = self.trace.clone();
        madsim::task::spawn_local(async move {
            let event = match answer.await {
                Ok(Ok(())) => HarnessEvent::ShutdownAccepted { node: name },
                Ok(Err(reason)) => HarnessEvent::ShutdownFailed { node: name, reason },
                Err(error) => HarnessEvent::ShutdownFailed { node: name, reason: format!("the request task ended: {error}") },
            };
            trace.record_harness(event);
        });
    }

    /// Directed links a partition or link clog cuts.
    fn links(&self, fault: &Fault) -> Vec<(String, String)> {
        if fault.kind == FaultKind::ClogLink {
            let from = self.names(&[fault.from.clone().unwrap_or_default()]);
            let to = self.names(&[fault.to.clone().unwrap_or_default()]);
            return from.iter().flat_map(|a| to.iter().map(move |b| (a.clone(), b.clone()))).filter(|(a, b)| a != b).collect();
        }
        let named: BTreeSet<String> =
            fault.groups.iter().flatten().filter(|pattern| *pattern != "*").flat_map(|pattern| self.names(std::slice::from_ref(pattern))).collect();
        let groups: Vec<Vec<String>> = fault
            .groups
            .iter()
            .map(|group| {
                if group.iter().any(|pattern| pattern == "*") {
                    self.cluster.nodes().map(|node| node.name.clone()).filter(|name| !named.contains(name)).collect()
                } else {
                    self.names(group)
                }
            })
            .collect();
        let mut links = Vec::new();
        for (i, left) in groups.iter().enumerate() {
            for (j, right) in groups.iter().enumerate() {
                if i == j || (fault.one_way && i != 0) {
                    continue;
                }
                links.extend(left.iter().flat_map(|a| right.iter().map(move |b| (a.clone(), b.clone()))));
            }
        }
        links
    }

    fn clog_node(&self, name: &str, clog: bool) {
        let id = self.cluster.node(name).id;
        if count_holders(&mut self.clogged_nodes.borrow_mut(), name.to_string(), clog) {
            if clog {
                NetSim::current().clog_node(id);
            } else {
                NetSim::current().unclog_node(id);
            }
        }
    }

    fn clog_link(&self, from: &str, to: &str, clog: bool) {
        let (a, b) = (self.cluster.node(from).id, self.cluster.node(to).id);
        if count_holders(&mut self.clogged_links.borrow_mut(), (from.to_string(), to.to_string()), clog) {
            if clog {
                NetSim::current().clog_link(a, b);
            } else {
                NetSim::current().unclog_link(a, b);
            }
        }
    }
}

/// One more (or one fewer) fault holds `key` cut; true when the network itself must change
/// (the first fault cuts it, the last one to end heals it).
fn count_holders<K: Ord>(holders: &mut BTreeMap<K, u32>, key: K, clog: bool) -> bool {
    let count = holders.entry(key).or_insert(0);
    if clog {
        *count += 1;
        *count == 1
    } else if *count > 0 {
        *count -= 1;
        *count == 0
    } else {
        false
    }
}

pub fn describe(fault: &Fault) -> String {
    let mut text = format!("{:?} at {} ms", fault.kind, fault.at.0);
    if let Some(duration) = fault.duration {
        text.push_str(&format!(" for {} ms", duration.0));
    }
    if !fault.nodes.is_empty() {
        text.push_str(&format!(" on {:?}", fault.nodes));
    }
    if !fault.groups.is_empty() {
        text.push_str(&format!(" groups {:?}", fault.groups));
    }
    if let (Some(from), Some(to)) = (&fault.from, &fault.to) {
        text.push_str(&format!(" {from} -> {to}"));
    }
    text
}
