//! Presto's file resource-group manager configuration (`etc/resource-groups.json`), parsed and
//! validated up front.
//!
//! Presto's `ManagerSpec` / `ResourceGroupSpec` / `SelectorSpec` reject some mistakes when the
//! file loads and only notice others when a query first reaches the group (an unknown selector
//! group, a policy that contradicts a `query_priority` parent). Here every check runs at load,
//! and every error names the field path, because a coordinator that refuses to start with
//! `rootGroups[1].subGroups[0].softConcurrencyLimit: 12 is above hardConcurrencyLimit 10` is
//! cheaper than one that fails queries at 3am.

use regex::Regex;
use serde_json::Value;

use super::json::Object;
use super::template::{IdTemplate, NameTemplate};
use crate::sql::QueryType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulingPolicy {
    Fair,
    Weighted,
    WeightedFair,
    QueryPriority,
}

impl SchedulingPolicy {
    /// Case-insensitive, as Presto's `SchedulingPolicy.valueOf(value.toUpperCase())`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "fair" => Some(SchedulingPolicy::Fair),
            "weighted" => Some(SchedulingPolicy::Weighted),
            "weighted_fair" => Some(SchedulingPolicy::WeightedFair),
            "query_priority" => Some(SchedulingPolicy::QueryPriority),
            _ => None,
        }
    }

    /// The enum name Presto's JSON uses (`ResourceGroupInfo.schedulingPolicy`).
    pub fn presto_name(self) -> &'static str {
        match self {
            SchedulingPolicy::Fair => "FAIR",
            SchedulingPolicy::Weighted => "WEIGHTED",
            SchedulingPolicy::WeightedFair => "WEIGHTED_FAIR",
            SchedulingPolicy::QueryPriority => "QUERY_PRIORITY",
        }
    }
}

/// `softMemoryLimit`: absolute, or a fraction of the cluster's general pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryLimit {
    Bytes(u64),
    Fraction(f64),
}

impl MemoryLimit {
    pub fn resolve_bytes(self, cluster_memory_bytes: u64) -> u64 {
        match self {
            MemoryLimit::Bytes(bytes) => bytes,
            // Presto multiplies the pool size as a double and truncates.
            MemoryLimit::Fraction(fraction) => (cluster_memory_bytes as f64 * fraction) as u64,
        }
    }
}

/// `perQueryLimits`: kill limits for each query of the group (not inherited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerQueryLimits {
    pub execution_time_limit_ms: Option<u64>,
    pub total_memory_limit_bytes: Option<u64>,
    pub cpu_time_limit_ms: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: NameTemplate,
    pub max_queued: u32,
    pub hard_concurrency_limit: u32,
    pub soft_concurrency_limit: Option<u32>,
    pub soft_memory_limit: MemoryLimit,
    pub scheduling_policy: Option<SchedulingPolicy>,
    pub scheduling_weight: Option<u32>,
    pub jmx_export: bool,
    pub per_query_limits: PerQueryLimits,
    /// 0 means no requirement.
    pub workers_per_query_limit: u32,
    pub soft_cpu_limit_ms: Option<u64>,
    pub hard_cpu_limit_ms: Option<u64>,
    pub sub_groups: Vec<GroupSpec>,
}

/// A `user` or `source` selector regex. `full` decides the match (Java's `matches()`); named
/// captures are read from the first `search` hit (Java's `find()`), as Presto's `StaticSelector`.
#[derive(Clone, Debug)]
pub struct SelectorRegex {
    pub(crate) full: Regex,
    pub(crate) search: Regex,
    pub(crate) variables: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SelectorSpec {
    pub user: Option<SelectorRegex>,
    pub source: Option<SelectorRegex>,
    pub query_type: Option<QueryType>,
    pub client_tags: Vec<String>,
    pub group: IdTemplate,
    /// Which spec each segment names: `rootGroups[path[0]].subGroups[path[1]]...`.
    pub(crate) spec_path: Vec<usize>,
}

/// A validated configuration. Built only by [`parse_resource_groups`] or [`ManagerSpec::legacy`],
/// so a manager never sees an unchecked one.
#[derive(Clone, Debug)]
pub struct ManagerSpec {
    pub(crate) root_groups: Vec<GroupSpec>,
    pub(crate) selectors: Vec<SelectorSpec>,
    pub(crate) cpu_quota_period_ms: Option<u64>,
}

impl ManagerSpec {
    /// Presto's legacy manager: one root `global`, every query selected into it.
    pub fn legacy(max_running: u32, max_queued: u32) -> Self {
        let root = GroupSpec {
            name: NameTemplate::parse("global").expect("static name"),
            max_queued,
            hard_concurrency_limit: max_running,
            soft_concurrency_limit: None,
            soft_memory_limit: MemoryLimit::Fraction(1.0),
            scheduling_policy: None,
            scheduling_weight: None,
            jmx_export: false,
            per_query_limits: PerQueryLimits::default(),
            workers_per_query_limit: 0,
            soft_cpu_limit_ms: None,
            hard_cpu_limit_ms: None,
            sub_groups: Vec::new(),
        };
        let selector = SelectorSpec {
            user: None,
            source: None,
            query_type: None,
            client_tags: Vec::new(),
            group: IdTemplate::parse("global").expect("static id"),
            spec_path: vec![0],
        };
        ManagerSpec { root_groups: vec![root], selectors: vec![selector], cpu_quota_period_ms: None }
    }

    pub fn root_groups(&self) -> &[GroupSpec] {
        &self.root_groups
    }

    pub fn selectors(&self) -> &[SelectorSpec] {
        &self.selectors
    }

    pub fn cpu_quota_period_ms(&self) -> Option<u64> {
        self.cpu_quota_period_ms
    }
}

const MANAGER_FIELDS: &[&str] = &["rootGroups", "selectors", "cpuQuotaPeriod"];
const GROUP_FIELDS: &[&str] = &[
    "name",
    "maxQueued",
    "hardConcurrencyLimit",
    "maxRunning",
    "softConcurrencyLimit",
    "softMemoryLimit",
    "schedulingPolicy",
    "schedulingWeight",
    "jmxExport",
    "perQueryLimits",
    "workersPerQueryLimit",
    "softCpuLimit",
    "hardCpuLimit",
    "subGroups",
];
const GROUP_HINTS: &[&str] = &["queuedTimeLimit", "runningTimeLimit", "workerPerQueryLimit", "targetRunning"];
const LIMIT_FIELDS: &[&str] = &["executionTimeLimit", "totalMemoryLimit", "cpuTimeLimit"];
const SELECTOR_FIELDS: &[&str] = &["group", "user", "source", "queryType", "clientTags"];
const SELECTOR_HINTS: &[&str] = &["selectorResourceEstimate", "clientInfo", "principal", "schema"];

/// Parses and validates a `resource-groups.json`. `origin` (a file name) prefixes every error.
pub fn parse_resource_groups(text: &str, origin: &str) -> Result<ManagerSpec, String> {
    let value: Value = super::json::parse_strict(text).map_err(|error| format!("{origin}: invalid JSON: {error}"))?;
    parse_manager(&value).map_err(|error| format!("{origin}: {error}"))
}

fn parse_manager(value: &Value) -> Result<ManagerSpec, String> {
    let object = Object::new(value, "", MANAGER_FIELDS, &[])?;
    let cpu_quota_period_ms = object.duration_ms("cpuQuotaPeriod")?;
    if cpu_quota_period_ms == Some(0) {
        return Err("cpuQuotaPeriod: must be longer than 0ms".to_string());
    }
    let roots = object.required("rootGroups", object.array("rootGroups")?)?;
    let mut root_groups = Vec::with_capacity(roots.len());
    for (index, root) in roots.iter().enumerate() {
        root_groups.push(parse_group(root, &format!("rootGroups[{index}]"), None, cpu_quota_period_ms)?);
    }
    check_unique_names(&root_groups, "rootGroups")?;
    let items = object.required("selectors", object.array("selectors")?)?;
    let mut selectors = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        selectors.push(parse_selector(item, &format!("selectors[{index}]"), &root_groups)?);
    }
    Ok(ManagerSpec { root_groups, selectors, cpu_quota_period_ms })
}

fn check_unique_names(groups: &[GroupSpec], list_path: &str) -> Result<(), String> {
    for (index, group) in groups.iter().enumerate() {
        if let Some(first) = groups[..index].iter().position(|earlier| earlier.name == group.name) {
            return Err(format!(
                "{list_path}[{index}].name: duplicate name {:?} (also {list_path}[{first}])",
                group.name.as_str()
            ));
        }
    }
    Ok(())
}

fn parse_group(
    value: &Value,
    path: &str,
    parent_policy: Option<SchedulingPolicy>,
    cpu_quota_period_ms: Option<u64>,
) -> Result<GroupSpec, String> {
    let object = Object::new(value, path, GROUP_FIELDS, GROUP_HINTS)?;
    let name_text = object.required("name", object.string("name")?)?;
    let name = NameTemplate::parse(name_text).map_err(|error| format!("{}: {error}", object.path_of("name")))?;
    let max_queued = object.required("maxQueued", object.count("maxQueued")?)?;
    let hard_concurrency_limit = match (object.count("hardConcurrencyLimit")?, object.count("maxRunning")?) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{}: set hardConcurrencyLimit or its old name maxRunning, not both",
                object.path_of("maxRunning")
            ))
        }
        (hard, legacy) => object.required("hardConcurrencyLimit", hard.or(legacy))?,
    };
    let soft_concurrency_limit = object.count("softConcurrencyLimit")?;
    if let Some(soft) = soft_concurrency_limit.filter(|soft| *soft > hard_concurrency_limit) {
        return Err(format!(
            "{}: {soft} is above hardConcurrencyLimit {hard_concurrency_limit}",
            object.path_of("softConcurrencyLimit")
        ));
    }
    let memory_text = object.required("softMemoryLimit", object.string("softMemoryLimit")?)?;
    let soft_memory_limit =
        parse_memory_limit(memory_text).map_err(|error| format!("{}: {error}", object.path_of("softMemoryLimit")))?;
    let scheduling_policy = parse_policy(&object, parent_policy)?;
    let scheduling_weight = match object.int("schedulingWeight")? {
        Some(weight) if weight <= 0 => {
            return Err(format!("{}: {weight} must be above 0", object.path_of("schedulingWeight")))
        }
        weight => weight.map(|weight| weight as u32),
    };
    let (soft_cpu_limit_ms, hard_cpu_limit_ms) = parse_cpu_limits(&object, cpu_quota_period_ms)?;
    let per_query_limits = match object.get("perQueryLimits") {
        None => PerQueryLimits::default(),
        Some(limits) => {
            let limits = Object::new(limits, &object.path_of("perQueryLimits"), LIMIT_FIELDS, &[])?;
            PerQueryLimits {
                execution_time_limit_ms: limits.duration_ms("executionTimeLimit")?,
                total_memory_limit_bytes: limits.data_size_bytes("totalMemoryLimit")?,
                cpu_time_limit_ms: limits.duration_ms("cpuTimeLimit")?,
            }
        }
    };
    let effective_policy =
        scheduling_policy.or(parent_policy.filter(|policy| *policy == SchedulingPolicy::QueryPriority));
    let mut sub_groups = Vec::new();
    for (index, child) in object.array("subGroups")?.into_iter().flatten().enumerate() {
        let child_path = format!("{path}.subGroups[{index}]");
        sub_groups.push(parse_group(child, &child_path, effective_policy, cpu_quota_period_ms)?);
    }
    check_unique_names(&sub_groups, &format!("{path}.subGroups"))?;
    Ok(GroupSpec {
        name,
        max_queued,
        hard_concurrency_limit,
        soft_concurrency_limit,
        soft_memory_limit,
        scheduling_policy,
        scheduling_weight,
        jmx_export: object.boolean("jmxExport")?.unwrap_or(false),
        per_query_limits,
        workers_per_query_limit: object.count("workersPerQueryLimit")?.unwrap_or(0),
        soft_cpu_limit_ms,
        hard_cpu_limit_ms,
        sub_groups,
    })
}

/// `10%`, `12.5%` (Presto: one to three digits, optional decimals) or an airlift data size.
fn parse_memory_limit(text: &str) -> Result<MemoryLimit, String> {
    let Some(number) = text.strip_suffix('%') else {
        return crate::config::parse_data_size_bytes(text).map(MemoryLimit::Bytes);
    };
    let (whole, decimals) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.len() > 3 || !digits(whole) || !digits(decimals) {
        return Err(format!("{text:?} is not a percentage like 10% or 12.5%"));
    }
    let percent: f64 = number.parse().map_err(|_| format!("{text:?} is not a percentage like 10% or 12.5%"))?;
    Ok(MemoryLimit::Fraction(percent / 100.0))
}

fn parse_policy(object: &Object, parent_policy: Option<SchedulingPolicy>) -> Result<Option<SchedulingPolicy>, String> {
    let Some(text) = object.string("schedulingPolicy")? else { return Ok(None) };
    let policy = SchedulingPolicy::parse(text).ok_or_else(|| {
        format!(
            "{}: unknown policy {text:?} (use fair, weighted, weighted_fair or query_priority)",
            object.path_of("schedulingPolicy")
        )
    })?;
    // Presto forces the sub-groups of a query_priority group to query_priority and throws when
    // one is configured otherwise (at the group's first query); here it is a load error.
    if parent_policy == Some(SchedulingPolicy::QueryPriority) && policy != SchedulingPolicy::QueryPriority {
        return Err(format!(
            "{}: {text:?} under a query_priority parent; its sub-groups must use query_priority too",
            object.path_of("schedulingPolicy")
        ));
    }
    Ok(Some(policy))
}

fn parse_cpu_limits(object: &Object, cpu_quota_period_ms: Option<u64>) -> Result<(Option<u64>, Option<u64>), String> {
    let soft = object.duration_ms("softCpuLimit")?;
    let hard = object.duration_ms("hardCpuLimit")?;
    if cpu_quota_period_ms.is_none() {
        for (key, limit) in [("softCpuLimit", soft), ("hardCpuLimit", hard)] {
            if limit.is_some() {
                return Err(format!("{}: cpu limits need the top-level cpuQuotaPeriod", object.path_of(key)));
            }
        }
    }
    match (soft, hard) {
        (Some(_), None) => Err(format!("{}: needs hardCpuLimit as well", object.path_of("softCpuLimit"))),
        (Some(soft_ms), Some(hard_ms)) if soft_ms > hard_ms => Err(format!(
            "{}: {} is above hardCpuLimit {}",
            object.path_of("softCpuLimit"),
            object.string("softCpuLimit")?.unwrap_or_default(),
            object.string("hardCpuLimit")?.unwrap_or_default()
        )),
        limits => Ok(limits),
    }
}

fn parse_selector(value: &Value, path: &str, root_groups: &[GroupSpec]) -> Result<SelectorSpec, String> {
    let object = Object::new(value, path, SELECTOR_FIELDS, SELECTOR_HINTS)?;
    // USER and SOURCE are always defined; regex captures add to them (Presto's StaticSelector).
    let mut variables = vec!["USER".to_string(), "SOURCE".to_string()];
    let user = parse_selector_regex(&object, "user", &mut variables)?;
    let source = parse_selector_regex(&object, "source", &mut variables)?;
    let query_type = match object.string("queryType")? {
        None => None,
        Some(text) => Some(parse_query_type(text).ok_or_else(|| {
            format!(
                "{}: unknown query type {text:?} (use SELECT, EXPLAIN, DESCRIBE, INSERT, UPDATE, DELETE, ANALYZE or DATA_DEFINITION)",
                object.path_of("queryType")
            )
        })?),
    };
    let mut client_tags = Vec::new();
    for (index, tag) in object.array("clientTags")?.into_iter().flatten().enumerate() {
        match tag {
            Value::String(tag) => client_tags.push(tag.clone()),
            other => {
                return Err(format!("{}[{index}]: expected a string, found {other}", object.path_of("clientTags")))
            }
        }
    }
    let group_path = object.path_of("group");
    let group_text = object.required("group", object.string("group")?)?;
    let group = IdTemplate::parse(group_text).map_err(|error| format!("{group_path}: {error}"))?;
    if let Some(missing) = group.variables().into_iter().find(|name| !variables.iter().any(|known| known == name)) {
        return Err(format!(
            "{group_path}: unresolved variable ${{{missing}}} in {group_text:?} (available: {})",
            variables.iter().map(|name| format!("${{{name}}}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let spec_path = resolve_static_path(&group, root_groups).map_err(|error| format!("{group_path}: {error}"))?;
    Ok(SelectorSpec { user, source, query_type, client_tags, group, spec_path })
}

fn parse_selector_regex(
    object: &Object,
    key: &str,
    variables: &mut Vec<String>,
) -> Result<Option<SelectorRegex>, String> {
    let Some(pattern) = object.string(key)? else { return Ok(None) };
    let bad = |error: regex::Error| format!("{}: bad regex {pattern:?}: {error}", object.path_of(key));
    let full = Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(bad)?;
    let search = Regex::new(pattern).map_err(bad)?;
    let mut own = Vec::new();
    for name in search.capture_names().flatten() {
        if variables.iter().any(|known| known == name) {
            return Err(format!("{}: variable ${{{name}}} is defined more than once", object.path_of(key)));
        }
        variables.push(name.to_string());
        own.push(name.to_string());
    }
    Ok(Some(SelectorRegex { full, search, variables: own }))
}

/// Presto compares `queryType` case-insensitively; fireball refuses names Presto does not have.
fn parse_query_type(text: &str) -> Option<QueryType> {
    let query_type = match text.to_ascii_uppercase().as_str() {
        "SELECT" => QueryType::Select,
        "EXPLAIN" => QueryType::Explain,
        "DESCRIBE" => QueryType::Describe,
        "INSERT" => QueryType::Insert,
        "UPDATE" => QueryType::Update,
        "DELETE" => QueryType::Delete,
        "ANALYZE" => QueryType::Analyze,
        "DATA_DEFINITION" => QueryType::DataDefinition,
        _ => return None,
    };
    Some(query_type)
}

/// Walks the selector's segments down the spec tree by template text (`${USER}` names the group
/// spec called `${USER}`), as Presto's selector validation does; the end must be a leaf.
fn resolve_static_path(group: &IdTemplate, root_groups: &[GroupSpec]) -> Result<Vec<usize>, String> {
    let mut candidates = root_groups;
    let mut path = Vec::with_capacity(group.segments.len());
    let mut walked = Vec::new();
    let mut last: Option<&GroupSpec> = None;
    for segment in &group.segments {
        let Some(index) = candidates.iter().position(|spec| spec.name == *segment) else {
            let under = if walked.is_empty() {
                "among the root groups".to_string()
            } else {
                format!("under {}", walked.join("."))
            };
            return Err(format!(
                "{:?} names no configured group: no group {:?} {under}",
                group.to_dotted(),
                segment.as_str()
            ));
        };
        path.push(index);
        walked.push(segment.as_str());
        last = Some(&candidates[index]);
        candidates = &candidates[index].sub_groups;
    }
    match last {
        Some(spec) if !spec.sub_groups.is_empty() => {
            Err(format!("{:?} has sub-groups; a selector must name a leaf group, where queries run", group.to_dotted()))
        }
        Some(_) => Ok(path),
        None => Err("is empty".to_string()),
    }
}
