//! The run's event trace: every event the nodes record through the seam, plus what the harness
//! did (faults, crashes), stamped with simulated time. The oracle reads it; its digest must be the
//! same for two runs of one seed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Instant;

use fireball::runtime::sim_hooks::{self, Event};

pub use crate::oracle::{Entry, HarnessEvent};

#[derive(Clone)]
pub struct Trace {
    entries: Rc<RefCell<Vec<(u64, Entry)>>>,
    origin: Instant,
}

impl Trace {
    /// Installs the recorder for this simulation (thread) and starts recording.
    pub fn install() -> Trace {
        let entries: Rc<RefCell<Vec<(u64, Entry)>>> = Rc::new(RefCell::new(Vec::new()));
        #[allow(clippy::disallowed_methods, reason = "inside the simulation: madsim virtualises std's Instant")]
        let origin = Instant::now(); // determinism: ok (madsim virtualises Instant)
        let trace = Trace { entries, origin };
        let sink = trace.clone();
        sim_hooks::install_recorder(Box::new(move |event| sink.push(Entry::Node(event))));
        trace
    }

    /// Simulated milliseconds since the trace started.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn push(&self, entry: Entry) {
        let at_ms = self.now_ms();
        self.entries.borrow_mut().push((at_ms, entry));
    }

    pub fn record_harness(&self, event: HarnessEvent) {
        self.push(Entry::Harness(event));
    }

    pub fn entries(&self) -> Vec<(u64, Entry)> {
        self.entries.borrow().clone()
    }

    /// Node events only.
    pub fn events(&self) -> Vec<(u64, Event)> {
        self.entries
            .borrow()
            .iter()
            .filter_map(|(at_ms, entry)| match entry {
                Entry::Node(event) => Some((*at_ms, event.clone())),
                Entry::Harness(_) => None,
            })
            .collect()
    }

    /// One JSON object per line: `{"at_ms": …, …event fields}`.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for (at_ms, entry) in self.entries.borrow().iter() {
            let mut value = serde_json::to_value(entry).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("at_ms".into(), serde_json::Value::from(*at_ms));
            }
            out.push_str(&value.to_string());
            out.push('\n');
        }
        out
    }

    /// FNV-1a over every entry and its time: equal digests mean equal traces.
    pub fn digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for line in self.to_jsonl().lines() {
            for byte in line.bytes().chain([b'\n']) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// Query ids a client was given that never reached a final state.
    pub fn unfinished_queries(&self) -> BTreeSet<String> {
        let mut open = BTreeSet::new();
        for (_, event) in self.events() {
            match event {
                Event::QueryCreated { query_id, .. } => {
                    open.insert(query_id);
                }
                Event::QueryFinished { query_id, .. } => {
                    open.remove(&query_id);
                }
                _ => {}
            }
        }
        open
    }

    /// The true maximum number of queries running at once in `group`, across all coordinators.
    pub fn max_running(&self, group: &str) -> u32 {
        let mut running = BTreeSet::new();
        let mut max = 0;
        for (_, event) in self.events() {
            match event {
                Event::QueryStarted { query_id, limits, .. } if limits.iter().any(|(name, _)| name == group) => {
                    running.insert(query_id);
                    max = max.max(running.len() as u32);
                }
                Event::QueryFinished { query_id, .. } => {
                    running.remove(&query_id);
                }
                _ => {}
            }
        }
        max
    }

    /// Queries that were admitted later than they were created (they waited in a queue).
    pub fn queries_that_waited(&self) -> usize {
        let mut created = BTreeMap::new();
        let mut waited = 0;
        for (at_ms, event) in self.events() {
            match event {
                Event::QueryCreated { query_id, .. } => {
                    created.insert(query_id, at_ms);
                }
                Event::QueryStarted { query_id, .. } => {
                    waited += usize::from(created.get(&query_id).is_some_and(|created_ms| at_ms > *created_ms));
                }
                _ => {}
            }
        }
        waited
    }

    /// Tasks that started executing more than once (on any workers).
    pub fn tasks_started_twice(&self) -> Vec<String> {
        let mut seen = BTreeMap::new();
        for (_, event) in self.events() {
            if let Event::TaskStarted { task_id, .. } = event {
                *seen.entry(task_id).or_insert(0u32) += 1;
            }
        }
        seen.into_iter().filter(|(_, count)| *count > 1).map(|(task_id, _)| task_id).collect()
    }
}
