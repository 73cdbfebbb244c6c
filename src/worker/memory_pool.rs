//! A worker's memory pool: tasks reserve before they run and release when they end. Pure.
//!
//! Reservations are granted first-come first-served: a task that does not fit waits, and later
//! tasks wait behind it even if they would fit, so a large task is never starved by small ones.
//! While any task waits the node counts as *blocked*, which is what the cluster's out-of-memory
//! detection reads.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
pub struct MemoryPool {
    capacity_bytes: u64,
    reserved_bytes: u64,
    reservations: BTreeMap<String, (String, u64)>,
    waiting: VecDeque<(String, String, u64)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reserve {
    Granted,
    Waiting,
    /// Larger than the whole pool: it could never run here.
    TooLarge,
}

impl MemoryPool {
    pub fn new(capacity_bytes: u64) -> Self {
        MemoryPool { capacity_bytes, reserved_bytes: 0, reservations: BTreeMap::new(), waiting: VecDeque::new() }
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    pub fn is_blocked(&self) -> bool {
        !self.waiting.is_empty()
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Asks for `bytes` for `task_id` (of `query_id`). A waiting task is granted later by
    /// [`MemoryPool::release`], which returns the tasks it unblocked.
    pub fn reserve(&mut self, task_id: &str, query_id: &str, bytes: u64) -> Reserve {
        assert!(!self.reservations.contains_key(task_id), "task {task_id} reserved twice");
        if bytes > self.capacity_bytes {
            return Reserve::TooLarge;
        }
        if self.waiting.is_empty() && self.fits(bytes) {
            self.grant(task_id.to_string(), query_id.to_string(), bytes);
            return Reserve::Granted;
        }
        self.waiting.push_back((task_id.to_string(), query_id.to_string(), bytes));
        Reserve::Waiting
    }

    fn fits(&self, bytes: u64) -> bool {
        self.reserved_bytes.saturating_add(bytes) <= self.capacity_bytes
    }

    fn grant(&mut self, task_id: String, query_id: String, bytes: u64) {
        self.reserved_bytes += bytes;
        self.reservations.insert(task_id, (query_id, bytes));
        assert!(self.reserved_bytes <= self.capacity_bytes, "pool over-committed");
    }

    pub fn is_granted(&self, task_id: &str) -> bool {
        self.reservations.contains_key(task_id)
    }

    /// Releases whatever `task_id` holds or waits for; returns tasks granted as a result.
    pub fn release(&mut self, task_id: &str) -> Vec<String> {
        if let Some((_, bytes)) = self.reservations.remove(task_id) {
            self.reserved_bytes = self.reserved_bytes.checked_sub(bytes).expect("released more than reserved");
        }
        self.waiting.retain(|(waiting_id, _, _)| waiting_id != task_id);
        let mut granted = Vec::new();
        while let Some((_, _, bytes)) = self.waiting.front() {
            if !self.fits(*bytes) {
                break;
            }
            if let Some((task_id, query_id, bytes)) = self.waiting.pop_front() {
                granted.push(task_id.clone());
                self.grant(task_id, query_id, bytes);
            }
        }
        granted
    }

    /// Bytes reserved per query, for heartbeats.
    pub fn query_reservations(&self) -> BTreeMap<String, u64> {
        let mut per_query = BTreeMap::new();
        for (query_id, bytes) in self.reservations.values() {
            *per_query.entry(query_id.clone()).or_insert(0) += bytes;
        }
        per_query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_grants_and_never_goes_negative() {
        let mut pool = MemoryPool::new(100);
        assert_eq!(pool.reserve("t1", "q1", 60), Reserve::Granted);
        assert_eq!(pool.reserve("t2", "q2", 50), Reserve::Waiting);
        assert_eq!(pool.reserve("t3", "q3", 10), Reserve::Waiting, "small tasks queue behind a big one");
        assert!(pool.is_blocked());
        assert_eq!(pool.reserve("t4", "q4", 101), Reserve::TooLarge);
        assert_eq!(pool.release("t1"), vec!["t2".to_string(), "t3".to_string()]);
        assert_eq!(pool.reserved_bytes(), 60);
        assert!(!pool.is_blocked());
        assert_eq!(pool.query_reservations().get("q2"), Some(&50));
        pool.release("t2");
        pool.release("t3");
        pool.release("t3");
        assert_eq!(pool.reserved_bytes(), 0);
    }

    #[test]
    fn releasing_a_waiting_task_forgets_it() {
        let mut pool = MemoryPool::new(10);
        pool.reserve("a", "q", 10);
        pool.reserve("b", "q", 5);
        assert!(pool.release("b").is_empty());
        assert!(!pool.is_blocked());
        assert_eq!(pool.release("a"), Vec::<String>::new());
        assert_eq!(pool.reserved_bytes(), 0);
    }
}
