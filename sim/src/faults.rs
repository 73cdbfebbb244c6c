//! Message-level faults: rules that drop or delay requests by sender, receiver and message kind,
//! installed as the seam's fault filter for one simulation. Random choices come from madsim's
//! seeded RNG, so a seed replays the same drops.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use fireball::runtime::sim_hooks::{self, FaultFilter, MessageKind, Verdict};
use madsim::rand::Rng;

/// Node-name pattern: an exact name, `*`, or a prefix ending in `*` (`worker-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(pub String);

impl Glob {
    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Drop with this probability (1.0 drops everything).
    Drop { probability: f64 },
    /// Hold back for a delay drawn uniformly from `[min_ms, max_ms]`.
    Delay { min_ms: u64, max_ms: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub from: Glob,
    pub to: Glob,
    /// `None` matches every kind.
    pub kind: Option<MessageKind>,
    pub action: Action,
}

/// What the filter did, per (sender, receiver, kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub delivered: u64,
    pub dropped: u64,
    pub delayed: u64,
}

#[derive(Default)]
struct State {
    rules: BTreeMap<u64, Rule>,
    next_rule_id: u64,
    tallies: BTreeMap<(String, String, MessageKind), Tally>,
}

/// The installed filter; clone it to add and remove rules while the simulation runs.
#[derive(Clone)]
pub struct MessageFaults {
    state: Rc<RefCell<State>>,
    /// Receiver authority (`ip:port`) to node name.
    names: Rc<BTreeMap<String, String>>,
}

struct Installed(MessageFaults);

impl FaultFilter for Installed {
    fn verdict(&self, from_node: &str, to_authority: &str, kind: MessageKind) -> Verdict {
        self.0.decide(from_node, to_authority, kind)
    }
}

impl MessageFaults {
    /// Installs an empty filter for this simulation. `names` maps `ip:port` to node names.
    pub fn install(names: BTreeMap<String, String>) -> MessageFaults {
        let faults = MessageFaults { state: Rc::new(RefCell::new(State::default())), names: Rc::new(names) };
        sim_hooks::install_fault_filter(Rc::new(Installed(faults.clone())));
        faults
    }

    /// Adds a rule; returns its id for [`MessageFaults::remove`].
    pub fn add(&self, rule: Rule) -> u64 {
        let mut state = self.state.borrow_mut();
        state.next_rule_id += 1;
        let id = state.next_rule_id;
        state.rules.insert(id, rule);
        id
    }

    pub fn remove(&self, rule_id: u64) {
        self.state.borrow_mut().rules.remove(&rule_id);
    }

    /// Counts for messages from nodes matching `from` to nodes matching `to` of `kind`.
    pub fn tally(&self, from: &Glob, to: &Glob, kind: MessageKind) -> Tally {
        let state = self.state.borrow();
        let mut total = Tally::default();
        for ((sender, receiver, message_kind), tally) in &state.tallies {
            if *message_kind == kind && from.matches(sender) && to.matches(receiver) {
                total.delivered += tally.delivered;
                total.dropped += tally.dropped;
                total.delayed += tally.delayed;
            }
        }
        total
    }

    /// Messages attempted per kind over the whole run.
    pub fn totals_by_kind(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for ((_, _, kind), tally) in &self.state.borrow().tallies {
            *totals.entry(kind.name().to_string()).or_insert(0) += tally.delivered + tally.dropped;
        }
        totals
    }

    fn decide(&self, from_node: &str, to_authority: &str, kind: MessageKind) -> Verdict {
        let to_node = self.names.get(to_authority).map(String::as_str).unwrap_or(to_authority);
        let mut state = self.state.borrow_mut();
        let mut verdict = Verdict::Deliver;
        for rule in state.rules.values() {
            if !(rule.from.matches(from_node) && rule.to.matches(to_node) && rule.kind.is_none_or(|k| k == kind)) {
                continue;
            }
            match rule.action {
                Action::Drop { probability } => {
                    // madsim::rand is the simulation's own seeded RNG, so this is deterministic.
                    let dropped = probability >= 1.0 || madsim::rand::thread_rng().gen_bool(probability.clamp(0.0, 1.0)); // determinism: ok
                    if dropped {
                        verdict = Verdict::Drop;
                        break;
                    }
                }
                Action::Delay { min_ms, max_ms } => {
                    let delay_ms = madsim::rand::thread_rng().gen_range(min_ms..=max_ms.max(min_ms)); // determinism: ok
                    let delay_ms = match verdict {
                        Verdict::Delay { delay_ms: earlier } => earlier + delay_ms,
                        _ => delay_ms,
                    };
                    verdict = Verdict::Delay { delay_ms };
                }
            }
        }
        let tally = state.tallies.entry((from_node.to_string(), to_node.to_string(), kind)).or_default();
        match verdict {
            Verdict::Deliver => tally.delivered += 1,
            Verdict::Drop => tally.dropped += 1,
            Verdict::Delay { .. } => {
                tally.delivered += 1;
                tally.delayed += 1;
            }
        }
        verdict
    }
}
