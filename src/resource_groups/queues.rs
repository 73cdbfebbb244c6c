//! The queues a resource group chooses from: a seeded RNG, an ordered queue (FIFO or priority
//! with FIFO ties) and a weighted sampler (lottery scheduling).
//!
//! These play the roles of Presto's `FifoQueue`, `IndexedPriorityQueue` and
//! `StochasticPriorityQueue`, but every choice is reproducible: the only randomness is [`Rng`],
//! seeded by the caller, and ties are broken by insertion tickets, never by hash order.

use std::cmp::Reverse;
use std::collections::BTreeMap;

/// xorshift64* seeded through splitmix64. Tiny, fast, and owned by the manager so that a run is
/// a pure function of its seed (the simulator replays seeds; `thread_rng` would defeat that).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // splitmix64 spreads nearby seeds apart and never yields the all-zero xorshift state
        // except for one input, which we map to a fixed odd constant.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng { state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z } }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..bound` (multiply-shift; the bias is below 2^-64 per draw).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty range");
        let value = ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64;
        debug_assert!(value < bound);
        value
    }
}

/// Position of an element: higher priority first, then lower ticket (insertion order).
type Slot = (Reverse<i64>, u64);

/// A priority queue with FIFO ties and O(log n) update/remove, like Presto's
/// `IndexedPriorityQueue`. With every priority equal it is Presto's `FifoQueue`: re-adding an
/// element that is already queued keeps its place, and one that was polled goes to the back.
#[derive(Clone, Debug)]
pub(crate) struct OrderedQueue<K: Ord + Clone> {
    order: BTreeMap<Slot, K>,
    slot_of: BTreeMap<K, Slot>,
    next_ticket: u64,
}

impl<K: Ord + Clone> OrderedQueue<K> {
    pub(crate) fn new() -> Self {
        OrderedQueue { order: BTreeMap::new(), slot_of: BTreeMap::new(), next_ticket: 0 }
    }

    /// Adds `key`, or moves it to `priority` keeping its ticket (so an update never loses its
    /// place among equals). Returns true when the key was new.
    pub(crate) fn add_or_update(&mut self, key: K, priority: i64) -> bool {
        if let Some(slot) = self.slot_of.get(&key).copied() {
            if slot.0 .0 != priority {
                let removed = self.order.remove(&slot);
                debug_assert!(removed.is_some());
                let moved = (Reverse(priority), slot.1);
                self.order.insert(moved, key.clone());
                self.slot_of.insert(key, moved);
            }
            return false;
        }
        let slot = (Reverse(priority), self.next_ticket);
        self.next_ticket += 1;
        self.order.insert(slot, key.clone());
        self.slot_of.insert(key, slot);
        debug_assert_eq!(self.order.len(), self.slot_of.len());
        true
    }

    pub(crate) fn remove(&mut self, key: &K) -> bool {
        let Some(slot) = self.slot_of.remove(key) else { return false };
        let removed = self.order.remove(&slot);
        debug_assert!(removed.is_some());
        true
    }

    pub(crate) fn pop_first(&mut self) -> Option<K> {
        let (_, key) = self.order.pop_first()?;
        let removed = self.slot_of.remove(&key);
        debug_assert!(removed.is_some());
        Some(key)
    }

    pub(crate) fn first_priority(&self) -> Option<i64> {
        self.order.first_key_value().map(|(slot, _)| slot.0 .0)
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.slot_of.contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Elements in queue order with their ticket (insertion order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &K)> {
        self.order.iter().map(|(slot, key)| (slot.1, key))
    }
}

/// Draws an element with probability proportional to its weight, in O(log n), like Presto's
/// `StochasticPriorityQueue` (a Fenwick tree here instead of Presto's balanced binary tree).
#[derive(Clone, Debug)]
pub(crate) struct WeightedSampler<K: Ord + Clone> {
    slot_of: BTreeMap<K, usize>,
    keys: Vec<Option<K>>,
    weights: Vec<u64>,
    /// 1-based Fenwick tree over `weights`; its length is the slot capacity plus one.
    fenwick: Vec<u64>,
    /// Freed slots, reused last-in first-out so the layout depends only on the operation order.
    free: Vec<usize>,
    total: u64,
}

impl<K: Ord + Clone> WeightedSampler<K> {
    pub(crate) fn new() -> Self {
        WeightedSampler {
            slot_of: BTreeMap::new(),
            keys: Vec::new(),
            weights: Vec::new(),
            fenwick: vec![0],
            free: Vec::new(),
            total: 0,
        }
    }

    /// Adds `key` with `weight` (> 0), or changes its weight. Returns true when the key was new.
    pub(crate) fn insert(&mut self, key: K, weight: u64) -> bool {
        assert!(weight > 0, "weights must be positive");
        if let Some(&slot) = self.slot_of.get(&key) {
            self.set_weight(slot, weight);
            return false;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.keys.len() == self.fenwick.len() - 1 {
                    self.grow();
                }
                self.keys.push(None);
                self.weights.push(0);
                self.keys.len() - 1
            }
        };
        debug_assert!(self.keys[slot].is_none() && self.weights[slot] == 0);
        self.keys[slot] = Some(key.clone());
        self.slot_of.insert(key, slot);
        self.set_weight(slot, weight);
        true
    }

    pub(crate) fn remove(&mut self, key: &K) -> bool {
        let Some(slot) = self.slot_of.remove(key) else { return false };
        self.set_weight(slot, 0);
        self.keys[slot] = None;
        self.free.push(slot);
        true
    }

    /// One weighted draw; the element stays in the sampler.
    pub(crate) fn sample(&self, rng: &mut Rng) -> Option<K> {
        if self.total == 0 {
            debug_assert!(self.slot_of.is_empty());
            return None;
        }
        let mut remaining = rng.below(self.total);
        let capacity = self.fenwick.len() - 1;
        let mut position = 0;
        let mut step = capacity.next_power_of_two();
        while step > 0 {
            let next = position + step;
            if next <= capacity && self.fenwick[next] <= remaining {
                position = next;
                remaining -= self.fenwick[next];
            }
            step >>= 1;
        }
        // `position` is the 0-based slot whose cumulative range holds the ticket.
        let key = self.keys[position].clone();
        debug_assert!(key.is_some() && self.weights[position] > remaining);
        key
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.slot_of.contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    fn set_weight(&mut self, slot: usize, weight: u64) {
        let old = self.weights[slot];
        self.weights[slot] = weight;
        self.total = self.total - old + weight;
        let mut index = slot + 1;
        while index < self.fenwick.len() {
            self.fenwick[index] = self.fenwick[index] - old + weight;
            index += index & index.wrapping_neg();
        }
    }

    /// Doubles the slot capacity and rebuilds the Fenwick tree in O(capacity).
    fn grow(&mut self) {
        let capacity = ((self.fenwick.len() - 1) * 2).max(4);
        let mut fenwick = vec![0u64; capacity + 1];
        for (slot, weight) in self.weights.iter().enumerate() {
            fenwick[slot + 1] += weight;
        }
        for index in 1..=capacity {
            let parent = index + (index & index.wrapping_neg());
            if parent <= capacity {
                fenwick[parent] += fenwick[index];
            }
        }
        self.fenwick = fenwick;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_queue_is_priority_then_fifo_and_updates_keep_their_ticket() {
        let mut queue = OrderedQueue::new();
        assert!(queue.add_or_update("a", 1));
        assert!(queue.add_or_update("b", 5));
        assert!(queue.add_or_update("c", 1));
        assert!(!queue.add_or_update("a", 1), "re-adding keeps the place");
        assert_eq!(queue.first_priority(), Some(5));
        assert!(!queue.add_or_update("c", 5), "an update keeps c's ticket, which is after b's");
        assert_eq!(queue.pop_first(), Some("b"));
        assert_eq!(queue.pop_first(), Some("c"));
        assert!(queue.remove(&"a"));
        assert!(!queue.remove(&"a"));
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.pop_first(), None);
    }

    #[test]
    fn sampler_draws_in_proportion_to_weight_and_forgets_removed_keys() {
        let mut sampler = WeightedSampler::new();
        let mut rng = Rng::new(7);
        for key in 0..10u32 {
            sampler.insert(key, 1);
        }
        for key in 1..10u32 {
            assert!(sampler.remove(&key));
        }
        sampler.insert(20, 3);
        let mut counts = BTreeMap::new();
        for _ in 0..40_000 {
            *counts.entry(sampler.sample(&mut rng).unwrap()).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 2, "only live keys are drawn: {counts:?}");
        let ratio = f64::from(counts[&20]) / f64::from(counts[&0]);
        assert!((2.7..3.3).contains(&ratio), "3:1 weights drew {ratio:.2}:1");
        assert_eq!(sampler.len(), 2);
    }

    #[test]
    fn same_seed_same_draws() {
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|_| rng.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        assert_ne!(draws(0), vec![0; 8]);
    }
}
