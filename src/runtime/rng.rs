//! Seeded randomness.
//!
//! Every random choice a node makes (which RM to poll, query-id suffixes, jitter) comes from a
//! `NodeRng` seeded once at node start. In production the seed comes from the OS; under madsim
//! getrandom is intercepted, so the seed — and therefore every choice — follows the simulation seed.
//! rand 0.9 / getrandom 0.3 are used because getrandom 0.2 issues a raw syscall madsim cannot see.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct NodeRng {
    inner: Arc<Mutex<SmallRng>>,
}

impl std::fmt::Debug for NodeRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeRng")
    }
}

impl NodeRng {
    /// Seeded from the OS in production, from the simulation seed under madsim.
    pub fn from_entropy() -> Self {
        #[allow(clippy::disallowed_methods, reason = "the seam: the one seed per node (madsim's seed in simulation)")]
        let rng = SmallRng::from_os_rng();
        NodeRng { inner: Arc::new(Mutex::new(rng)) }
    }

    pub fn from_seed(seed: u64) -> Self {
        NodeRng { inner: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))) }
    }

    /// A uniformly random index below `len`; `len` must be positive.
    pub fn index(&self, len: usize) -> usize {
        assert!(len > 0, "index() needs a non-empty range");
        self.with(|rng| rng.random_range(0..len))
    }

    pub fn next_u64(&self) -> u64 {
        self.with(|rng| rng.random())
    }

    /// A uniformly random value in `[low, high]`.
    pub fn between(&self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        self.with(|rng| rng.random_range(low..=high))
    }

    fn with<T>(&self, f: impl FnOnce(&mut SmallRng) -> T) -> T {
        // A poisoned lock only means another task panicked mid-draw; the generator state is still
        // a valid generator state, so keep going rather than spreading the panic.
        let mut guard = crate::runtime::lock(&self.inner);
        f(&mut guard)
    }
}
