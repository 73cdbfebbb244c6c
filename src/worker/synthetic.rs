//! The synthetic engine: a task that takes `run_time_ms`, holds memory, and returns generated
//! rows. What the simulation runs, and what builds memory pressure the way real queries do.
//!
//! A task runs on the reservation made at creation and, if its query asked for growth
//! (`peak_memory_bytes > memory_bytes`), reserves more in [`GROWTH_STEPS`] even steps over its run
//! time. While the pool blocks it the task makes no progress: its run time does not advance.

use super::executor::{Executor, Outcome, Run, TaskHandle};
use crate::wire::TaskRequest;

/// A growing task's run time is cut into this many steps, each reserving an equal share more.
pub const GROWTH_STEPS: u64 = 10;

#[derive(Clone, Copy, Debug, Default)]
pub struct SyntheticExecutor;

impl Executor for SyntheticExecutor {
    fn run(&self, request: TaskRequest, task: TaskHandle) -> Run {
        Box::pin(run(request, task))
    }
}

async fn run(request: TaskRequest, task: TaskHandle) -> Outcome {
    let growth_bytes = request.peak_memory_bytes.saturating_sub(request.memory_bytes);
    let steps = if growth_bytes > 0 { GROWTH_STEPS } else { 1 };
    for step in 0..steps {
        // Step 0 runs on the reservation made at creation; each later step first asks for its
        // share of the growth (the last share takes the remainder, so the peak is exact).
        let ready = if step == 0 { task.wait_for_memory().await } else { task.reserve(growth_share(growth_bytes, steps, step)).await };
        if !ready {
            return Outcome::Ended;
        }
        if !task.work_for_ms(step_ms(request.run_time_ms, steps, step)).await {
            return Outcome::Ended;
        }
    }
    let rows = crate::sql::synthetic::generate_rows(request.task_index, request.first_row, request.row_count, task.node_id());
    Outcome::Finished(super::tasks::TaskOutput::Rows(rows))
}

/// What step `step` (≥ 1) of `steps` reserves of `growth_bytes`.
fn growth_share(growth_bytes: u64, steps: u64, step: u64) -> u64 {
    let points = steps - 1;
    growth_bytes / points + if step == points { growth_bytes % points } else { 0 }
}

/// How long step `step` of `steps` works.
fn step_ms(run_time_ms: u64, steps: u64, step: u64) -> u64 {
    run_time_ms / steps + if step == steps - 1 { run_time_ms % steps } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_steps_add_up_exactly() {
        for (growth_bytes, run_time_ms) in [(0u64, 0u64), (1, 1), (9, 10), (1_000_003, 12_345)] {
            let total_growth: u64 = (1..GROWTH_STEPS).map(|step| growth_share(growth_bytes, GROWTH_STEPS, step)).sum();
            assert_eq!(total_growth, growth_bytes);
            let total_ms: u64 = (0..GROWTH_STEPS).map(|step| step_ms(run_time_ms, GROWTH_STEPS, step)).sum();
            assert_eq!(total_ms, run_time_ms);
        }
        assert_eq!(step_ms(1_234, 1, 0), 1_234, "a task without growth works in one step");
    }
}
