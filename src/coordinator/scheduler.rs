//! Task placement: which active workers run a query's tasks. Pure.
//!
//! Tasks go round-robin over the workers in the RM view, starting from a cursor the coordinator
//! advances per query, so consecutive queries start on different workers. Workers reported as
//! blocked (tasks waiting for memory) are used only when every worker is blocked.

use crate::wire::WorkerView;

/// For each task index, the workers to try in order (the first is the placement; the rest are
/// fallbacks if creating the task there fails).
pub fn place(workers: &[WorkerView], tasks: u32, cursor: u64, fallbacks_max: usize) -> Vec<Vec<WorkerView>> {
    assert!(!workers.is_empty(), "placement needs at least one worker");
    let unblocked: Vec<&WorkerView> = workers.iter().filter(|worker| !worker.memory.blocked).collect();
    let pool: Vec<&WorkerView> = if unblocked.is_empty() { workers.iter().collect() } else { unblocked };
    let count = pool.len() as u64;
    (0..u64::from(tasks))
        .map(|task| {
            let first = (cursor + task) % count;
            (0..count.min(fallbacks_max as u64 + 1))
                .map(|offset| pool[((first + offset) % count) as usize].clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MemoryInfo;

    fn worker(id: &str, blocked: bool) -> WorkerView {
        WorkerView {
            node_id: id.into(),
            uri: format!("http://{id}"),
            memory: MemoryInfo { blocked, ..Default::default() },
            cpu: Default::default(),
        }
    }

    #[test]
    fn round_robin_from_the_cursor_with_fallbacks() {
        let workers = vec![worker("a", false), worker("b", false), worker("c", false)];
        let placement = place(&workers, 4, 1, 1);
        let firsts: Vec<_> = placement.iter().map(|choices| choices[0].node_id.as_str()).collect();
        assert_eq!(firsts, ["b", "c", "a", "b"]);
        assert_eq!(placement[0][1].node_id, "c", "fallback is the next worker");
        assert!(placement.iter().all(|choices| choices.len() == 2));
    }

    #[test]
    fn blocked_workers_are_avoided_unless_all_are_blocked() {
        let workers = vec![worker("a", true), worker("b", false)];
        assert!(place(&workers, 3, 0, 0).iter().all(|choices| choices[0].node_id == "b"));
        let all_blocked = vec![worker("a", true), worker("b", true)];
        assert_eq!(place(&all_blocked, 2, 0, 0).len(), 2);
    }
}
