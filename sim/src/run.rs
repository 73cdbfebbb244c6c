//! Runs one scenario with one seed under madsim: starts the cluster from the scenario, replays
//! the plan's arrivals through simulated Presto clients, applies the fault timeline, and hands
//! the trace to the oracle.
//!
//! Each run gets a fresh OS thread and a fresh madsim runtime: std seeds `HashMap` hashers from
//! per-thread keys, so reusing a thread would make the second run of a seed differ.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration as StdDuration;

use fireball::local::ClusterLayout;
use fireball::protocol::client::StatementClient;

use crate::cluster::SimCluster;
use crate::faults::MessageFaults;
use crate::oracle::{self, OracleReport};
use crate::plan::{self, Plan};
use crate::scenario::{Fault, LoadedScenario};
use crate::timeline::Timeline;
use crate::trace::{Entry, HarnessEvent, Trace};

/// Simulated client hosts the arrivals are spread over.
const CLIENT_HOSTS: usize = 8;
/// How long open queries may take to end after the run, unless `[expect] settle` says otherwise.
const SETTLE_MS_DEFAULT: u64 = 300_000;
const SETTLE_CHECK_MS: u64 = 1_000;

pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub report: OracleReport,
    pub digest: u64,
    pub simulated_ms: u64,
    pub wall_ms: u64,
    pub trace_jsonl: Option<String>,
    pub faults: Vec<Fault>,
    /// Requests sent per message kind (what the simulation spent its time on).
    pub messages: BTreeMap<String, u64>,
    /// How the workload's clients saw their queries end: `FINISHED`, `FAILED <error name>`,
    /// `LOST` (given an id, then gave up) or `UNREACHABLE` (never got an id: the coordinator was
    /// gone — crashed or exited after a shutdown — so nothing was lost that the oracle counts);
    /// `STILL TRYING`: clients still retrying when the run ended (typically an unreachable one).
    pub clients: BTreeMap<String, u32>,
}

/// Runs `loaded` with `seed` (optionally with `faults` instead of the planned ones).
pub fn run(loaded: &LoadedScenario, seed: u64, faults: Option<Vec<Fault>>, keep_trace: bool) -> Result<RunResult, String> {
    let mut plan = plan::plan(&loaded.scenario, seed)?;
    if let Some(faults) = faults {
        plan.faults = faults;
    }
    let layout = layout(loaded)?;
    let loaded = loaded.clone();
    #[allow(
        clippy::disallowed_methods,
        reason = "outside the simulation: one fresh OS thread per run, and its wall time measured"
    )]
    let thread = std::thread::Builder::new() // determinism: ok (one fresh thread per simulation)
        .name(format!("sim-{}-{seed}", loaded.scenario.name))
        .spawn(move || {
            let wall = std::time::Instant::now(); // determinism: ok (outside the simulation: measures it)
            let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            let outcome = runtime.block_on(simulate(loaded.clone(), layout, plan.clone(), keep_trace));
            fireball::runtime::sim_hooks::clear();
            outcome.map(|(report, digest, simulated_ms, trace_jsonl, messages, clients)| RunResult {
                scenario: loaded.scenario.name.clone(),
                seed,
                report,
                digest,
                simulated_ms,
                wall_ms: wall.elapsed().as_millis() as u64,
                trace_jsonl,
                faults: plan.faults,
                messages,
                clients,
            })
        })
        .map_err(|error| format!("cannot start a simulation thread: {error}"))?;
    thread.join().map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("the simulation panicked (seed {seed}): {message}")
    })?
}

/// The cluster a scenario asks for, with its `[config]` applied to every node.
fn layout(loaded: &LoadedScenario) -> Result<ClusterLayout, String> {
    let scenario = &loaded.scenario;
    let cluster = &scenario.cluster;
    let mut layout = ClusterLayout::new(cluster.resource_managers, cluster.coordinators, cluster.workers);
    layout.properties.push(("memory.pool-size".into(), format!("{}B", cluster.worker_memory.0)));
    layout.properties.push(("resource-group-admission-policy".into(), cluster.policy.clone()));
    for (key, value) in &scenario.config {
        let text = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            other => return Err(format!("config.{key:?}: {other} is not a string, number or boolean")),
        };
        layout.properties.retain(|(existing, _)| existing != key);
        layout.properties.push((key.clone(), text));
    }
    if let Some(json) = &loaded.resource_groups_json {
        layout.resource_groups_json = Some(json.clone());
    }
    // Simulated clusters authenticate their internal traffic as production ones should, so every
    // scenario runs the signing and checking code (a scenario's [config] may set its own secret).
    layout.ensure_shared_secret(|| "simulated-cluster-shared-secret".to_string());
    layout.node_configs(|_, _| ("10.0.0.1".into(), 8080)).map(|_| layout)
}

type Simulated = (OracleReport, u64, u64, Option<String>, BTreeMap<String, u64>, BTreeMap<String, u32>);

async fn simulate(loaded: LoadedScenario, layout: ClusterLayout, plan: Plan, keep_trace: bool) -> Result<Simulated, String> {
    let scenario = &loaded.scenario;
    let trace = Trace::install();
    let mut cluster = SimCluster::start(layout)?;
    let message_faults: MessageFaults = cluster.install_message_faults();
    let message_counts = message_faults.clone();
    let coordinators = cluster.coordinator_uris();
    let clients: Vec<_> = (0..CLIENT_HOSTS).map(|_| cluster.client_node().clone()).collect();
    let exits = trace.clone();
    cluster.on_exit(move |node| exits.record_harness(HarnessEvent::NodeExited { node: node.to_string() }));
    let cluster = Rc::new(cluster);
    // The operator sends `shutdown` requests from the first client host.
    let timeline = Timeline::new(cluster.clone(), clients[0].clone(), message_faults, trace.clone(), plan.faults.clone());
    madsim::task::spawn_local(timeline.run());

    let outcomes = Rc::new(RefCell::new(BTreeMap::<String, u32>::new()));
    let run_ms = scenario.duration.0;
    let progress_every = plan.arrivals.len().div_ceil(10).max(1);
    let arrivals_total = plan.arrivals.len() as u32;
    for (index, arrival) in plan.arrivals.into_iter().enumerate() {
        let now_ms = trace.now_ms();
        if arrival.at_ms > now_ms {
            madsim::time::sleep(StdDuration::from_millis(arrival.at_ms - now_ms)).await;
        }
        let coordinator = coordinators[arrival.coordinator_index % coordinators.len()].clone();
        let outcomes = outcomes.clone();
        let host = &clients[index % clients.len()];
        let client_name = format!("client-{}", index % clients.len() + 1);
        // Client tasks run on client hosts; their outcomes only feed the summary.
        let handle = host.spawn(async move {
            let client = StatementClient::new(&client_name, &arrival.user);
            let outcome = client.run(&coordinator, &arrival.sql).await;
            match (outcome.state.as_str(), outcome.query_id) {
                ("FAILED", _) => format!("FAILED {}", outcome.error_name.unwrap_or_else(|| "UNKNOWN".into())),
                ("LOST", None) => "UNREACHABLE".to_string(),
                _ => outcome.state,
            }
        });
        madsim::task::spawn_local(async move {
            if let Ok(state) = handle.await {
                *outcomes.borrow_mut().entry(state).or_insert(0) += 1;
            }
        });
        // Long runs (10 simulated minutes or more) report progress by themselves.
        let show_progress = run_ms >= 600_000 || std::env::var_os("FIREBALL_SIM_PROGRESS").is_some();
        if index % progress_every == 0 && show_progress {
            eprintln!("  … {}: {index} arrivals at {} s simulated", scenario.name, trace.now_ms() / 1_000);
        }
    }
    let now_ms = trace.now_ms();
    if run_ms > now_ms {
        madsim::time::sleep(StdDuration::from_millis(run_ms - now_ms)).await;
    }
    // Settle: arrivals have stopped; let open queries end, ended ones release their memory and
    // nodes asked to shut down exit (bounded) before judging what is lost or left behind.
    let settle_ms = scenario.expect.settle.map(|settle| settle.0).unwrap_or(SETTLE_MS_DEFAULT);
    let settle_end_ms = run_ms + settle_ms;
    while trace.now_ms() < settle_end_ms && {
        let entries = trace.entries();
        oracle::open_queries(&entries) > 0 || crate::memory_oracle::memory_left_behind(&entries) || awaiting_exit(&entries)
    } {
        madsim::time::sleep(StdDuration::from_millis(SETTLE_CHECK_MS)).await;
    }
    let entries = trace.entries();
    let last_fault_end_ms = plan.faults.iter().map(|fault| fault.end_ms(run_ms)).max();
    let report = oracle::check(&entries, &scenario.expect, last_fault_end_ms, trace.now_ms());
    let jsonl = keep_trace.then(|| trace.to_jsonl());
    let mut clients = outcomes.borrow().clone();
    let answered: u32 = clients.values().sum();
    if arrivals_total > answered {
        clients.insert("STILL TRYING".into(), arrivals_total - answered);
    }
    Ok((report, trace.digest(), trace.now_ms(), jsonl, message_counts.totals_by_kind(), clients))
}

/// True while a node that accepted a shutdown has not exited (nor crashed) yet. (A node with
/// nothing to finish may exit before its acceptance reaches the operator: that one is done.)
fn awaiting_exit(entries: &[(u64, Entry)]) -> bool {
    let mut asked = std::collections::BTreeSet::new();
    let mut draining = std::collections::BTreeSet::new();
    for (_, entry) in entries {
        match entry {
            Entry::Harness(HarnessEvent::ShutdownSent { node }) => {
                asked.insert(node.as_str());
            }
            Entry::Harness(HarnessEvent::ShutdownAccepted { node }) if asked.contains(node.as_str()) => {
                draining.insert(node.as_str());
            }
            Entry::Harness(HarnessEvent::NodeExited { node } | HarnessEvent::NodeCrashed { node }) => {
                asked.remove(node.as_str());
                draining.remove(node.as_str());
            }
            _ => {}
        }
    }
    !draining.is_empty()
}
