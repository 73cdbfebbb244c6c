//! Reports of a run, for people (text) and for tools (JSON).

use serde_json::json;

use crate::run::RunResult;

/// Simulated seconds per wall-clock second.
pub fn speed(result: &RunResult) -> f64 {
    result.simulated_ms as f64 / result.wall_ms.max(1) as f64
}

pub fn text(result: &RunResult) -> String {
    let report = &result.report;
    let mut out = format!(
        "== {} seed {}: {:.0} s simulated in {:.2} s ({:.0}x real time)\n",
        result.scenario,
        result.seed,
        result.simulated_ms as f64 / 1_000.0,
        result.wall_ms as f64 / 1_000.0,
        speed(result)
    );
    out.push_str(&format!(
        "  {:<28} {:>6} {:>12} {:>10} {:>12} {:>9} {:>10}\n",
        "group", "limit", "max running", "overshoot", "overshoot s", "maxQueued", "max queued"
    ));
    for (name, group) in &report.groups {
        out.push_str(&format!(
            "  {:<28} {:>6} {:>12} {:>10} {:>12.1} {:>9} {:>10}\n",
            name,
            group.hard_concurrency_limit,
            group.max_running,
            group.overshoot_max,
            group.overshoot_seconds,
            group.max_queued_limit,
            group.max_queued
        ));
    }
    let queue = &report.queue_time;
    out.push_str(&format!(
        "  queue time ms: p50 {} p90 {} p99 {} max {} (n={})\n",
        queue.p50_ms, queue.p90_ms, queue.p99_ms, queue.max_ms, queue.count
    ));
    let failed: Vec<String> = report.failed_by_error.iter().map(|(name, count)| format!("{name} {count}")).collect();
    out.push_str(&format!(
        "  created {} admitted {} finished {} failed [{}]\n",
        report.created,
        report.admitted,
        report.finished,
        failed.join(", ")
    ));
    out.push_str(&format!(
        "  lost {} died with their coordinator {} duplicate executions {}\n",
        report.lost_queries.len(),
        report.died_with_coordinator,
        report.duplicate_executions.len()
    ));
    let clients: Vec<String> = result.clients.iter().map(|(outcome, count)| format!("{outcome} {count}")).collect();
    out.push_str(&format!("  clients saw: {}\n", clients.join(", ")));
    for shutdown in &report.shutdowns.shutdowns {
        out.push_str(&format!("  {}\n", describe_shutdown(shutdown)));
    }
    let memory = &report.memory;
    if memory.oom_episodes > 0 || memory.kills > 0 || !memory.leaked.is_empty() {
        out.push_str(&format!(
            "  memory: {} out-of-memory episodes ({} ms in all, longest {} ms); kills {} (per episode {:?}, max {}), {} while not out of memory, {} overlapping; peak reserved {} MB; left behind {}\n",
            memory.oom_episodes,
            memory.oom_ms_total,
            memory.oom_ms_max,
            memory.kills,
            memory.kills_per_episode,
            memory.kills_per_episode_max,
            memory.kills_while_not_oom,
            memory.overlapping_kills,
            memory.peak_reserved_bytes >> 20,
            memory.leaked.len()
        ));
    }
    match (report.last_fault_end_ms, report.drain_ms) {
        (Some(end_ms), Some(drain_ms)) => out.push_str(&format!("  drained {drain_ms} ms after the last fault ended (at {end_ms} ms)\n")),
        (Some(end_ms), None) => out.push_str(&format!("  queues never drained after the last fault ended (at {end_ms} ms)\n")),
        _ => {}
    }
    for fault in &result.faults {
        out.push_str(&format!("  fault: {}\n", crate::timeline::describe(fault)));
    }
    let messages: Vec<String> = result.messages.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
    out.push_str(&format!("  messages: {}\n", messages.join(", ")));
    out.push_str(&format!("  trace digest {:016x}\n", result.digest));
    if report.violations.is_empty() {
        out.push_str("  PASS\n");
    } else {
        for violation in &report.violations {
            out.push_str(&format!("  VIOLATION: {violation}\n"));
        }
    }
    out
}

/// `shutdown of worker-2 at 40000 ms: accepted after 3 ms; exited after 6210 ms; held 3 queries
/// (3 ended), refused 2 new; held 2 tasks (2 finished)`.
fn describe_shutdown(shutdown: &crate::shutdown_oracle::NodeShutdown) -> String {
    let mut text = format!("shutdown of {} at {} ms: ", shutdown.node, shutdown.sent_ms);
    match (&shutdown.request_failed, shutdown.accepted_ms) {
        (Some(reason), _) => text.push_str(&format!("request failed ({reason})")),
        (None, Some(accepted_ms)) => text.push_str(&format!("accepted after {} ms", accepted_ms.saturating_sub(shutdown.sent_ms))),
        (None, None) => text.push_str("no answer"),
    }
    match (shutdown.exit_after_ms(), shutdown.crashed_ms) {
        (Some(after_ms), _) => text.push_str(&format!("; exited after {after_ms} ms")),
        (None, Some(crashed_ms)) => text.push_str(&format!("; crashed at {crashed_ms} ms")),
        (None, None) => text.push_str("; never exited"),
    }
    text.push_str(&format!(
        "; held {} queries ({} ended), refused {} new; held {} tasks ({} finished)",
        shutdown.queries_held, shutdown.queries_ended, shutdown.queries_refused, shutdown.tasks_held, shutdown.tasks_finished
    ));
    text
}

pub fn json(result: &RunResult) -> String {
    json!({
        "scenario": result.scenario,
        "seed": result.seed,
        "simulated_ms": result.simulated_ms,
        "wall_ms": result.wall_ms,
        "speed": speed(result),
        "digest": format!("{:016x}", result.digest),
        "report": result.report,
        "passed": result.report.violations.is_empty(),
        "messages": result.messages,
        "clients": result.clients,
    })
    .to_string()
}
