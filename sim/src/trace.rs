//! The run's event trace: every event the nodes record through the seam, stamped with simulated
//! time. Feeds the checks in tests, and a digest that two runs of one seed must share.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Instant;

use fireball::runtime::sim_hooks::{self, Event};

#[derive(Clone)]
pub struct Trace {
    events: Rc<RefCell<Vec<(u64, Event)>>>,
}

impl Trace {
    /// Installs the recorder for this simulation (thread) and starts recording.
    pub fn install() -> Trace {
        let events: Rc<RefCell<Vec<(u64, Event)>>> = Rc::new(RefCell::new(Vec::new()));
        let sink = events.clone();
        let origin = Instant::now(); // determinism: ok (madsim virtualises Instant)
        sim_hooks::install_recorder(Box::new(move |event| {
            let at_ms = origin.elapsed().as_millis() as u64;
            sink.borrow_mut().push((at_ms, event));
        }));
        Trace { events }
    }

    pub fn events(&self) -> Vec<(u64, Event)> {
        self.events.borrow().clone()
    }

    /// FNV-1a over every event and its time: equal digests mean equal traces.
    pub fn digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (at_ms, event) in self.events.borrow().iter() {
            let line = format!("{at_ms} {}", serde_json::to_string(event).unwrap_or_default());
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
        for (_, event) in self.events.borrow().iter() {
            match event {
                Event::QueryCreated { query_id, .. } => {
                    open.insert(query_id.clone());
                }
                Event::QueryFinished { query_id, .. } => {
                    open.remove(query_id);
                }
                _ => {}
            }
        }
        open
    }

    /// The true maximum number of queries running at once in `group`, across all coordinators.
    pub fn max_running(&self, group: &str) -> u32 {
        let mut running = BTreeSet::new();
        let mut groups = BTreeMap::new();
        let mut max = 0;
        for (_, event) in self.events.borrow().iter() {
            match event {
                Event::QueryStarted { query_id, group: started_group, .. } => {
                    groups.insert(query_id.clone(), started_group.clone());
                    if started_group == group {
                        running.insert(query_id.clone());
                        max = max.max(running.len() as u32);
                    }
                }
                Event::QueryFinished { query_id, .. } => {
                    running.remove(query_id);
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
        for (at_ms, event) in self.events.borrow().iter() {
            match event {
                Event::QueryCreated { query_id, .. } => {
                    created.insert(query_id.clone(), *at_ms);
                }
                Event::QueryStarted { query_id, .. } => {
                    waited += usize::from(created.get(query_id).is_some_and(|created_ms| at_ms > created_ms));
                }
                _ => {}
            }
        }
        waited
    }

    /// Tasks that started executing more than once (on any workers).
    pub fn tasks_started_twice(&self) -> Vec<String> {
        let mut seen = BTreeMap::new();
        for (_, event) in self.events.borrow().iter() {
            if let Event::TaskStarted { task_id, .. } = event {
                *seen.entry(task_id.clone()).or_insert(0u32) += 1;
            }
        }
        seen.into_iter().filter(|(_, count)| *count > 1).map(|(task_id, _)| task_id).collect()
    }
}
