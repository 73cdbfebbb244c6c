//! Scenario files: a cluster, a workload, a timeline of faults and what must hold.
//! The schema is documented in `scenarios/README.md`; every key is checked (an unknown key is an
//! error) and errors name the file, line and reason.

#[cfg(test)]
mod fuzz_tests;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use units::{parse_signed_duration_ms, Bytes, Duration, Rate};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Simulated time the run lasts.
    pub duration: Duration,
    /// Default seed; the CLI can override it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub cluster: ClusterSpec,
    /// Presto property names applied to every node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_groups: Option<ResourceGroupsSpec>,
    #[serde(default, rename = "workload", skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Workload>,
    #[serde(default, rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Swarm mode: faults drawn at random over the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomFaults>,
    #[serde(default)]
    pub expect: Expect,
    /// The same scenario under several configurations (e.g. both low-memory killer scopes), each
    /// run on the same seeds and judged by its own `[expect]` overrides.
    #[serde(default, rename = "variant", skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Presto properties applied on top of the scenario's `[config]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, toml::Value>,
    /// Keys given here replace the scenario's `[expect]` keys.
    #[serde(default)]
    pub expect: Expect,
}

fn default_seed() -> u64 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub resource_managers: u32,
    pub coordinators: u32,
    pub workers: u32,
    #[serde(default = "default_worker_memory")]
    pub worker_memory: Bytes,
    /// Admission policy: `presto` (Presto's, the baseline) or `naive` (no freshness gate).
    #[serde(default = "default_policy")]
    pub policy: String,
}

fn default_worker_memory() -> Bytes {
    Bytes(8 << 30)
}

fn default_policy() -> String {
    "presto".into()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceGroupsSpec {
    /// A Presto resource-groups.json, relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Or the same JSON inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default = "default_user")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_tags: Vec<String>,
    /// Poisson arrivals at this rate between `start` and `stop`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// …or this many queries all at `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default = "Duration::zero")]
    pub start: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
    pub run_time: Distribution<Duration>,
    #[serde(default = "default_memory")]
    pub memory: Distribution<Bytes>,
    /// What each task's reservation grows to over its run time (never below `memory`); absent:
    /// no growth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory: Option<Distribution<Bytes>>,
    #[serde(default = "default_tasks")]
    pub tasks: u32,
    #[serde(default = "default_entry")]
    pub entry: String,
}

fn default_user() -> String {
    "user".into()
}
fn default_memory() -> Distribution<Bytes> {
    Distribution::Fixed(Bytes(0))
}
fn default_tasks() -> u32 {
    1
}
fn default_entry() -> String {
    "round-robin".into()
}

/// A value given as a constant, `{ mean = … }` (exponential) or `{ min = …, max = … }` (uniform).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Distribution<T> {
    Fixed(T),
    Exponential { mean: T },
    Uniform { min: T, max: T },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at: Duration,
    pub kind: FaultKind,
    /// How long the fault lasts (`for` in the file); absent means until the end of the run.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Nodes it applies to (globs: `rm-*`); each kind has a default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// crash: restart this long after the crash (absent: stays down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<Duration>,
    /// partition: node groups cut from each other; `*` is every node not named elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<String>>,
    /// partition: only the first group's outgoing messages are cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_way: bool,
    /// clog_link, heartbeat_loss, latency: sender and receiver globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// heartbeat_loss: fraction dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// heartbeat_loss: message kind (default: node and query heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// latency: added delay range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Duration>,
    /// clock_skew: offset (may be negative, e.g. "-30s") and drift in parts per million.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_ppm: Option<i64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    RmOutage,
    Crash,
    Pause,
    Partition,
    ClogLink,
    HeartbeatLoss,
    Latency,
    ClockSkew,
    /// `PUT /v1/info/state "SHUTTING_DOWN"` to each of `nodes`, from a client host, as an
    /// operator does: the node drains and exits (the oracle judges how).
    Shutdown,
}

/// Swarm mode: per fault kind, how often a random instance starts (`"1/10m"`), and how long
/// each lasts at most.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    #[serde(default = "default_random_duration_max")]
    pub duration_max: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rm_outage: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clog_link: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_loss: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<Rate>,
}

fn default_random_duration_max() -> Duration {
    Duration(30_000)
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Allowed overshoot over any group's hard concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_overadmission: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_queries: Option<u32>,
    /// After the last fault ends, every queue empties within this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_within: Option<Duration>,
    /// Queries executed twice (a task started twice): allowed count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_executions: Option<u32>,
    /// At least this many queries finish successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_finished: Option<u32>,
    /// Queue-bound violations (a group holding more queued than its maxQueued) allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_violations: Option<u32>,
    /// After `duration`, no new queries arrive and the run goes on (at most this long) until every
    /// open query has ended; only what is still open then counts as lost. Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Duration>,
    /// Queries killed (CLUSTER_OUT_OF_MEMORY) within one out-of-memory episode, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_kills_per_episode: Option<u32>,
    /// Kills made while no worker was blocked, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kills_while_not_oom: Option<u32>,
    /// Kills made while an earlier victim still held memory, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlapping_kills: Option<u32>,
    /// The workload must really run the cluster out of memory this many times at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_oom_episodes: Option<u32>,
    /// Reservations still held at the end by queries that had ended (default 0, always checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_reservations: Option<u32>,
    /// A node asked to shut down (`shutdown` fault) exits within this of the request. Whether
    /// its queries and tasks were finished, and new ones refused, is always checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_exit_within: Option<Duration>,
}

impl Expect {
    /// `self` with every key `other` gives replaced by `other`'s.
    pub fn overridden_by(&self, other: &Expect) -> Expect {
        Expect {
            max_overadmission: other.max_overadmission.or(self.max_overadmission),
            lost_queries: other.lost_queries.or(self.lost_queries),
            drain_within: other.drain_within.or(self.drain_within),
            duplicate_executions: other.duplicate_executions.or(self.duplicate_executions),
            min_finished: other.min_finished.or(self.min_finished),
            queue_violations: other.queue_violations.or(self.queue_violations),
            settle: other.settle.or(self.settle),
            max_kills_per_episode: other.max_kills_per_episode.or(self.max_kills_per_episode),
            kills_while_not_oom: other.kills_while_not_oom.or(self.kills_while_not_oom),
            overlapping_kills: other.overlapping_kills.or(self.overlapping_kills),
            min_oom_episodes: other.min_oom_episodes.or(self.min_oom_episodes),
            leaked_reservations: other.leaked_reservations.or(self.leaked_reservations),
            shutdown_exit_within: other.shutdown_exit_within.or(self.shutdown_exit_within),
        }
    }
}

/// A scenario with where it came from (to resolve relative paths and name errors).
#[derive(Clone, Debug)]
pub struct LoadedScenario {
    pub path: PathBuf,
    pub scenario: Scenario,
    /// The resource-groups JSON text, if the scenario names one.
    pub resource_groups_json: Option<String>,
    /// Which `[[variant]]` this is, once expanded.
    pub variant: Option<String>,
}

impl LoadedScenario {
    pub fn load(path: &Path) -> Result<LoadedScenario, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
        LoadedScenario::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<LoadedScenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| {
            let (line, column) = error.span().map(|span| line_column(text, span.start)).unwrap_or((1, 1));
            format!("{}:{line}:{column}: {}", path.display(), error.message().trim())
        })?;
        scenario.validate().map_err(|reason| format!("{}: {reason}", path.display()))?;
        let resource_groups_json = match &scenario.resource_groups {
            None => None,
            Some(ResourceGroupsSpec { inline: Some(json), file: None }) => Some(json.clone()),
            Some(ResourceGroupsSpec { file: Some(file), inline: None }) => {
                let resolved = path.parent().unwrap_or(Path::new(".")).join(file);
                Some(std::fs::read_to_string(&resolved).map_err(|error| {
                    format!("{}: resource_groups.file {}: {error}", path.display(), resolved.display())
                })?)
            }
            Some(_) => return Err(format!("{}: [resource_groups] needs exactly one of file or inline", path.display())),
        };
        Ok(LoadedScenario { path: path.to_path_buf(), scenario, resource_groups_json, variant: None })
    }

    /// One scenario per `[[variant]]` (named `name[variant]`), or just this one without variants.
    pub fn expand(self) -> Vec<LoadedScenario> {
        if self.scenario.variants.is_empty() {
            return vec![self];
        }
        self.scenario
            .variants
            .iter()
            .map(|variant| {
                let mut scenario = self.scenario.clone();
                scenario.name = format!("{}[{}]", self.scenario.name, variant.name);
                scenario.config.extend(variant.config.clone());
                scenario.expect = self.scenario.expect.overridden_by(&variant.expect);
                scenario.variants = Vec::new();
                LoadedScenario { path: self.path.clone(), scenario, resource_groups_json: self.resource_groups_json.clone(), variant: Some(variant.name.clone()) }
            })
            .collect()
    }

    /// The variant called `name` (`None`: the scenario itself, which must then have no variants).
    pub fn select(self, name: Option<&str>) -> Result<LoadedScenario, String> {
        let names: Vec<String> = self.scenario.variants.iter().map(|variant| variant.name.clone()).collect();
        let path = self.path.display().to_string();
        match name {
            None if names.is_empty() => Ok(self),
            None => Err(format!("{path} has variants {names:?}: choose one with --variant")),
            Some(name) => self
                .expand()
                .into_iter()
                .find(|loaded| loaded.variant.as_deref() == Some(name))
                .ok_or_else(|| format!("{path} has no variant {name:?} (it has {names:?})")),
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|last| last.chars().count() + 1).unwrap_or(1);
    (line, column)
}

impl Scenario {
    /// Checks what serde cannot: ranges, names, and that each fault has what its kind needs.
    pub fn validate(&self) -> Result<(), String> {
        let cluster = &self.cluster;
        if !["presto", "naive"].contains(&cluster.policy.as_str()) {
            return Err(format!("cluster.policy: unknown policy {:?} (presto or naive)", cluster.policy));
        }
        for (name, count) in [("resource_managers", cluster.resource_managers), ("coordinators", cluster.coordinators), ("workers", cluster.workers)] {
            if count == 0 || count > 200 {
                return Err(format!("cluster.{name}: must be between 1 and 200, not {count}"));
            }
        }
        if self.duration.0 == 0 {
            return Err("duration: must be positive".into());
        }
        for (index, workload) in self.workloads.iter().enumerate() {
            let at = format!("workload[{index}]");
            match (&workload.rate, workload.burst) {
                (Some(_), Some(_)) | (None, None) => return Err(format!("{at}: give exactly one of rate or burst")),
                _ => {}
            }
            if !["round-robin", "random"].contains(&workload.entry.as_str()) {
                return Err(format!("{at}.entry: {:?} is not round-robin or random", workload.entry));
            }
            if workload.tasks == 0 || workload.tasks > 1024 {
                return Err(format!("{at}.tasks: must be between 1 and 1024"));
            }
            if let Some(Distribution::Uniform { min, max }) = &workload.peak_memory {
                if min.0 > max.0 {
                    return Err(format!("{at}.peak_memory: min is above max"));
                }
            }
            if let Distribution::Uniform { min, max } = &workload.run_time {
                if min.0 > max.0 {
                    return Err(format!("{at}.run_time: min is above max"));
                }
            }
        }
        let mut variant_names = std::collections::BTreeSet::new();
        for variant in &self.variants {
            if variant.name.is_empty() || !variant_names.insert(variant.name.as_str()) {
                return Err(format!("variant {:?}: names must be non-empty and distinct", variant.name));
            }
        }
        for (index, fault) in self.faults.iter().enumerate() {
            fault.validate().map_err(|reason| format!("fault[{index}] ({:?}): {reason}", fault.kind))?;
        }
        Ok(())
    }

    /// The simulated time the last fault ends (never-ending faults end with the run).
    pub fn last_fault_end_ms(&self) -> Option<u64> {
        self.faults.iter().map(|fault| fault.end_ms(self.duration.0)).max()
    }
}

impl Fault {
    pub fn end_ms(&self, run_ms: u64) -> u64 {
        let end = match (self.kind, &self.duration, &self.restart_after) {
            (FaultKind::Crash, _, Some(restart)) => self.at.0 + restart.0,
            (FaultKind::Crash, _, None) => run_ms,
            (FaultKind::ClockSkew, None, _) | (FaultKind::Shutdown, _, _) => self.at.0,
            (_, Some(duration), _) => self.at.0 + duration.0,
            (_, None, _) => run_ms,
        };
        end.min(run_ms)
    }

    fn validate(&self) -> Result<(), String> {
        let require = |present: bool, what: &str| if present { Ok(()) } else { Err(format!("needs {what}")) };
        match self.kind {
            FaultKind::RmOutage | FaultKind::Pause => require(self.duration.is_some(), "`for`")?,
            FaultKind::Crash => require(!self.nodes.is_empty(), "nodes")?,
            FaultKind::Shutdown => {
                require(!self.nodes.is_empty(), "nodes")?;
                if self.duration.is_some() || self.restart_after.is_some() {
                    return Err("a shutdown is an instant: it takes no `for` or restart_after".into());
                }
            }
            FaultKind::Partition => {
                require(self.groups.len() >= 2, "groups (at least two)")?;
                require(self.duration.is_some(), "`for`")?;
            }
            FaultKind::ClogLink => {
                require(self.from.is_some() && self.to.is_some(), "from and to")?;
                require(self.duration.is_some(), "`for`")?;
            }
            FaultKind::HeartbeatLoss => {
                require(self.from.is_some() && self.to.is_some(), "from and to")?;
                let probability = self.probability.ok_or("needs probability")?;
                if !(0.0..=1.0).contains(&probability) {
                    return Err(format!("probability {probability} is not between 0 and 1"));
                }
                if let Some(message) = &self.message {
                    if fireball::runtime::sim_hooks::MessageKind::parse(message).is_none() {
                        return Err(format!("unknown message kind {message:?}"));
                    }
                }
            }
            FaultKind::Latency => {
                require(self.min.is_some() && self.max.is_some(), "min and max")?;
                if self.min.as_ref().map(|d| d.0) > self.max.as_ref().map(|d| d.0) {
                    return Err("min is above max".into());
                }
            }
            FaultKind::ClockSkew => {
                require(!self.nodes.is_empty(), "nodes")?;
                require(self.offset.is_some() || self.drift_ppm.is_some(), "offset or drift_ppm")?;
                if let Some(offset) = &self.offset {
                    units::parse_signed_duration_ms(offset)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = include_str!("../../../scenarios/examples/rm-outage-during-burst.toml");

    #[test]
    fn the_documented_example_is_accepted_as_written() {
        let path = Path::new("../scenarios/examples/rm-outage-during-burst.toml");
        let loaded = LoadedScenario::parse(ISSUE_EXAMPLE, path).unwrap();
        let scenario = loaded.scenario;
        assert_eq!(scenario.duration.0, 600_000);
        assert_eq!(scenario.cluster.workers, 20);
        assert_eq!(scenario.faults.len(), 3);
        assert_eq!(scenario.faults[2].probability, Some(0.5));
        assert_eq!(scenario.expect.drain_within.as_ref().map(|d| d.0), Some(120_000));
        assert!(loaded.resource_groups_json.is_some());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_reason() {
        let text = "name = \"x\"\nduration = \"1m\"\n[cluster]\nresource_managers = 1\ncoordinators = 1\nworkers = 1\nwrokers = 2\n";
        let error = LoadedScenario::parse(text, Path::new("s.toml")).unwrap_err();
        assert!(error.starts_with("s.toml:7:"), "{error}");
        assert!(error.contains("wrokers"), "{error}");
        let text = "name = \"x\"\nduration = \"soon\"\n";
        let error = LoadedScenario::parse(text, Path::new("s.toml")).unwrap_err();
        assert!(error.starts_with("s.toml:2:"), "{error}");
        let text = "name = \"x\"\nduration = \"1m\"\n[cluster]\nresource_managers = 1\ncoordinators = 1\nworkers = 1\n[[fault]]\nat = \"1s\"\nkind = \"meteor\"\n";
        let error = LoadedScenario::parse(text, Path::new("s.toml")).unwrap_err();
        assert!(error.starts_with("s.toml:9:") && error.contains("meteor"), "{error}");
        let text = "name = \"x\"\nduration = \"1m\"\n[cluster]\nresource_managers = 1\ncoordinators = 1\nworkers = 1\n[[fault]]\nat = \"1s\"\nkind = \"heartbeat_loss\"\nfrom = \"a\"\nto = \"b\"\n";
        let error = LoadedScenario::parse(text, Path::new("s.toml")).unwrap_err();
        assert!(error.contains("fault[0]") && error.contains("probability"), "{error}");
    }

    #[test]
    fn a_shutdown_names_its_nodes_and_is_an_instant() {
        let base = "name = \"x\"\nduration = \"1m\"\n[cluster]\nresource_managers = 1\ncoordinators = 1\nworkers = 1\n[[fault]]\nat = \"10s\"\nkind = \"shutdown\"\n";
        let loaded = LoadedScenario::parse(&format!("{base}nodes = [\"worker-1\"]\n[expect]\nshutdown_exit_within = \"30s\"\n"), Path::new("s.toml")).unwrap();
        let fault = &loaded.scenario.faults[0];
        assert_eq!((fault.kind, fault.end_ms(60_000)), (FaultKind::Shutdown, 10_000), "it ends where it starts");
        assert_eq!(loaded.scenario.expect.shutdown_exit_within, Some(Duration(30_000)));
        let error = LoadedScenario::parse(base, Path::new("s.toml")).unwrap_err();
        assert!(error.contains("fault[0] (Shutdown): needs nodes"), "{error}");
        let error = LoadedScenario::parse(&format!("{base}nodes = [\"worker-1\"]\nfor = \"5s\"\n"), Path::new("s.toml")).unwrap_err();
        assert!(error.contains("takes no `for`"), "{error}");
        let error = LoadedScenario::parse(&format!("{base}nodes = [\"worker-1\"]\n[expect]\nshutdown_exit_witin = \"1s\"\n"), Path::new("s.toml")).unwrap_err();
        assert!(error.starts_with("s.toml:12:") && error.contains("shutdown_exit_witin"), "{error}");
    }
}
