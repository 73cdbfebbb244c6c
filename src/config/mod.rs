//! Node configuration from Presto-style `etc/` files, with Presto's property names and defaults.
//!
//! A node reads `node.properties` and `config.properties`. Every key must be understood: like
//! Presto (which fails on "Configuration property 'x' was not used"), an unknown key stops the node
//! with the file and line, because a misspelt limit silently ignored is worse than no start.

pub mod client_security;
pub mod low_memory_killer;
pub mod properties;
pub mod units;

use client_security::{ClientAuthentication, HttpsConfig, PasswordFile};
use low_memory_killer::{KillerConfig, KillerPolicy, KillerScope};
use properties::{Origin, Properties};
use std::collections::BTreeSet;
use std::path::Path;

pub use units::{format_data_size, format_duration, parse_data_size_bytes, parse_duration_ms};

/// The version every node reports (`/v1/info`, `fireball_node_info`): the build's, not a setting,
/// but kept here, below every module that reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ResourceManager,
    Coordinator,
    Worker,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::ResourceManager => "resource_manager",
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
        }
    }
}

/// Everything a node needs to start. Built from properties by [`NodeConfig::from_properties`];
/// `fireball server`, `fireball local` and the simulator all go through that one function.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub role: Role,
    pub environment: String,
    pub node_id: String,
    /// Host other nodes and clients use to reach this node (goes into every URI it hands out).
    pub internal_address: String,
    pub http_port: u16,
    pub bind_address: String,
    /// RMs to announce to and bootstrap from (`discovery.uri`, comma-separated).
    pub discovery_uris: Vec<String>,
    /// Other RMs this RM replicates its discovery store to (`discovery-server.peers`).
    pub discovery_peers: Vec<String>,
    pub discovery_max_age_ms: u64,
    pub discovery_replication_interval_ms: u64,
    pub announce_interval_ms: u64,
    pub query_heartbeat_interval_ms: u64,
    pub query_heartbeat_coalesce_ms: u64,
    pub node_heartbeat_interval_ms: u64,
    pub query_expiration_timeout_ms: u64,
    pub node_status_timeout_ms: u64,
    pub completed_query_expiration_ms: u64,
    pub max_completed_queries: u32,
    pub runtimeinfo_refresh_interval_ms: u64,
    pub concurrency_threshold: f64,
    pub max_concurrent_queries: u32,
    pub max_queued_queries: u32,
    pub query_max_history: u32,
    pub query_min_expire_age_ms: u64,
    pub query_client_timeout_ms: u64,
    pub task_status_interval_ms: u64,
    pub task_status_max_wait_ms: u64,
    pub memory_pool_fetch_interval_ms: u64,
    pub task_client_timeout_ms: u64,
    /// `shutdown.grace-period`: how long a node asked to shut down (signal or
    /// `PUT /v1/info/state`) may spend finishing its work before it stops anyway.
    pub shutdown_grace_period_ms: u64,
    pub remote_task_max_error_duration_ms: u64,
    pub required_workers_max_wait_ms: u64,
    pub memory_pool_bytes: u64,
    /// `query.max-memory-per-node` (default: the whole pool).
    pub query_max_memory_per_node_bytes: u64,
    /// `experimental.spill-enabled`: SQL operators over their memory limit spill to disk (the OS
    /// temp directory) instead of failing the query.
    pub spill_enabled: bool,
    /// `query.max-memory`: what one query may hold across the cluster.
    pub query_max_memory_bytes: u64,
    /// `query.max-total-memory` (default twice `query.max-memory`, as in Presto).
    pub query_max_total_memory_bytes: u64,
    pub low_memory_killer: KillerConfig,
    pub request_timeout_ms: u64,
    pub request_retries_max: u32,
    /// `internal-communication.shared-secret`: signs and checks every request between nodes.
    /// Without it the cluster's internal endpoints are open to anyone who can reach them.
    pub shared_secret: Option<SharedSecret>,
    /// `presto` (Presto's policy, the default) or `naive` (deliberately weakened: admits on stale
    /// counts without the freshness gate; exists to prove the simulation oracle catches it).
    pub admission_policy: AdmissionPolicyName,
    /// The resource-groups JSON (Presto's file-manager format) and where it came from, if any.
    pub resource_groups: Option<JsonFileSource>,
    /// The access-control rules JSON (Trino's file-based access control), if any.
    pub access_rules: Option<JsonFileSource>,
        /// `http-server.https.enabled=true`: the HTTPS listener, next to the HTTP one.
    pub https: Option<HttpsConfig>,
    /// `http-server.authentication.type` (client requests only; nodes use the shared secret).
    pub client_authentication: ClientAuthentication,
    /// The users of `etc/password-authenticator.properties`' file, when PASSWORD is configured.
    pub password_file: Option<PasswordFile>,
}

/// A secret that never shows in `Debug` output (configs are logged and printed in errors).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(String);

/// Shorter secrets are refused: the secret is the only thing between the network and the
/// cluster's internal endpoints.
pub const SHARED_SECRET_CHARS_MIN: usize = 16;

impl SharedSecret {
    pub fn new(secret: String) -> Result<SharedSecret, String> {
        if secret.chars().count() < SHARED_SECRET_CHARS_MIN {
            return Err(format!("must be at least {SHARED_SECRET_CHARS_MIN} characters"));
        }
        Ok(SharedSecret(secret))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SharedSecret(redacted)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionPolicyName {
    Presto,
    Naive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonFileSource {
    pub json: String,
    pub origin: String,
}

impl NodeConfig {
    /// Reads `DIR/node.properties` and `DIR/config.properties`.
    ///
    /// An optional `DIR/resource-groups.properties` selects a resource-groups file as in Presto
    /// (`resource-groups.configuration-manager=file`, `resource-groups.config-file=PATH`; a
    /// relative path is taken from the directory that holds `DIR`, Presto's install root).
    pub fn read_etc(dir: &Path) -> Result<NodeConfig, String> {
        let mut properties = Properties::read(&dir.join("node.properties"))?;
        properties.merge(Properties::read(&dir.join("config.properties"))?)?;
        let mut config = NodeConfig::from_properties(&properties)?;
        let groups_path = dir.join("resource-groups.properties");
        if groups_path.exists() {
            config.resource_groups =
                Some(read_json_file_properties(&groups_path, dir, "resource-groups.configuration-manager", "resource-groups.config-file")?);
        }
        let access_path = dir.join("access-control.properties");
        if access_path.exists() {
            config.access_rules = Some(read_json_file_properties(&access_path, dir, "access-control.name", "security.config-file")?);
        }
        // Relative paths are taken from the directory holding `etc/` (Presto's install root).
        let root = dir.parent().unwrap_or(Path::new("."));
        if let Some(https) = config.https.as_mut() {
            https.keystore_path = root.join(&https.keystore_path);
        }
        let authenticator_path = dir.join("password-authenticator.properties");
        if authenticator_path.exists() {
            config.password_file = Some(client_security::read_password_authenticator(&authenticator_path, root)?);
        }
        config.check_client_security()?;
        Ok(config)
    }

    pub fn from_properties(properties: &Properties) -> Result<NodeConfig, String> {
        let mut reader = Reader { properties, used: BTreeSet::new() };
        let is_resource_manager = reader.bool("resource-manager", false)?;
        let is_coordinator = reader.bool("coordinator", true)?;
        let role = match (is_resource_manager, is_coordinator) {
            (true, true) => {
                return Err(reader.error_at("coordinator", "a node cannot be both resource-manager=true and coordinator=true"))
            }
            (true, false) => Role::ResourceManager,
            (false, true) => Role::Coordinator,
            (false, false) => Role::Worker,
        };
        if !reader.bool("resource-manager-enabled", false)? {
            return Err("resource-manager-enabled=true is required: fireball always runs with resource managers \
                        (set it in config.properties on every node)"
                .to_string());
        }
        // Accepted for compatibility with existing Presto files; fireball's RMs always run discovery.
        reader.bool("discovery-server.enabled", role == Role::ResourceManager)?;
        reader.bool("node-scheduler.include-coordinator", false)?;
        reader.string_opt("node.data-dir");

        let http_port = reader.parse("http-server.http.port", 8080u16)?;
        let internal_address = reader.string_opt("node.internal-address").unwrap_or_else(|| "127.0.0.1".into());
        let environment = reader
            .string_opt("node.environment")
            .ok_or_else(|| "node.environment is required (in node.properties)".to_string())?;
        if environment.is_empty() || !environment.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(reader.error_at("node.environment", "must be lowercase letters, digits and underscores"));
        }
        let node_id = reader.string_opt("node.id").unwrap_or_else(|| format!("{internal_address}:{http_port}"));
        let discovery_uris = reader.uri_list("discovery.uri")?;
        let discovery_peers = reader.uri_list("discovery-server.peers")?;
        if role != Role::ResourceManager && discovery_uris.is_empty() {
            return Err("discovery.uri is required: the URL of one or more resource managers, comma-separated".into());
        }

        let memory_pool_bytes = reader.data_size("memory.pool-size", "8GB")?;
        let query_max_memory_per_node_bytes = match reader.string_opt("query.max-memory-per-node") {
            None => memory_pool_bytes,
            Some(_) => reader.data_size("query.max-memory-per-node", "0B")?,
        };
        if query_max_memory_per_node_bytes > memory_pool_bytes {
            return Err(reader.error_at("query.max-memory-per-node", "must not be larger than memory.pool-size"));
        }
        let query_max_memory_bytes = reader.data_size("query.max-memory", "20GB")?;
        let query_max_total_memory_bytes = match reader.string_opt("query.max-total-memory") {
            None => query_max_memory_bytes.saturating_mul(2),
            Some(_) => reader.data_size("query.max-total-memory", "0B")?,
        };
        let low_memory_killer = low_memory_killer_config(&mut reader)?;
        let shared_secret = match reader.string_opt("internal-communication.shared-secret") {
            None => None,
            Some(secret) => Some(
                SharedSecret::new(secret).map_err(|reason| reader.error_at("internal-communication.shared-secret", &reason))?,
            ),
        };
        let https = https_config(&mut reader, http_port)?;
        let client_authentication = client_security::parse_authentication_type(
            reader.string_opt("http-server.authentication.type").as_deref(),
        )
        .map_err(|reason| reader.error_at("http-server.authentication.type", &reason))?;
        let mut config = NodeConfig {
            role,
            environment,
            node_id,
            internal_address,
            http_port,
            bind_address: reader.string_opt("http-server.bind-address").unwrap_or_else(|| "0.0.0.0".into()),
            discovery_uris,
            discovery_peers,
            discovery_max_age_ms: reader.duration("discovery.max-age", "30s")?,
            discovery_replication_interval_ms: reader.duration("discovery-server.replication-interval", "2s")?,
            announce_interval_ms: reader.duration("discovery.announce-interval", "5s")?,
            query_heartbeat_interval_ms: reader.duration("resource-manager.query-heartbeat-interval", "1s")?,
            query_heartbeat_coalesce_ms: reader.duration("resource-manager.query-heartbeat-coalesce-interval", "10ms")?,
            node_heartbeat_interval_ms: reader.duration("resource-manager.node-heartbeat-interval", "1s")?,
            query_expiration_timeout_ms: reader.duration("resource-manager.query-expiration-timeout", "10s")?,
            node_status_timeout_ms: reader.duration("resource-manager.node-status-timeout", "30s")?,
            completed_query_expiration_ms: reader.duration("resource-manager.completed-query-expiration-timeout", "10m")?,
            max_completed_queries: reader.parse("resource-manager.max-completed-queries", 100u32)?,
            runtimeinfo_refresh_interval_ms: reader.duration("resource-group-runtimeinfo-refresh-interval", "100ms")?,
            concurrency_threshold: reader.parse("concurrency-threshold-to-enable-resource-group-refresh", 1.0f64)?,
            max_concurrent_queries: reader.parse("query.max-concurrent-queries", 1000u32)?,
            max_queued_queries: reader.parse("query.max-queued-queries", 5000u32)?,
            query_max_history: reader.parse("query.max-history", 100u32)?,
            query_min_expire_age_ms: reader.duration("query.min-expire-age", "15m")?,
            query_client_timeout_ms: reader.duration("query.client.timeout", "5m")?,
            task_status_interval_ms: reader.duration("task.status-refresh-interval", "200ms")?,
            task_status_max_wait_ms: reader.duration("task.status-refresh-max-wait", "1s")?,
            memory_pool_fetch_interval_ms: reader.duration("resource-manager.memory-pool-fetch-interval", "1s")?,
            task_client_timeout_ms: reader.duration("task.client.timeout", "2m")?,
            shutdown_grace_period_ms: reader.duration("shutdown.grace-period", "2m")?,
            remote_task_max_error_duration_ms: reader.duration("query.remote-task.max-error-duration", "5m")?,
            required_workers_max_wait_ms: reader.duration("query-manager.required-workers-max-wait", "5m")?,
            memory_pool_bytes,
            query_max_memory_per_node_bytes,
            spill_enabled: reader.bool("experimental.spill-enabled", false)?,
            query_max_memory_bytes,
            query_max_total_memory_bytes,
            low_memory_killer,
            request_timeout_ms: reader.duration("internal-communication.request-timeout", "5s")?,
            request_retries_max: reader.parse("internal-communication.max-retries", 2u32)?,
            shared_secret,
            admission_policy: match reader.string_opt("resource-group-admission-policy").as_deref() {
                None | Some("presto") => AdmissionPolicyName::Presto,
                Some("naive") => AdmissionPolicyName::Naive,
                Some(other) => {
                    return Err(reader.error_at(
                        "resource-group-admission-policy",
                        &format!("unknown policy {other:?} (presto or naive)"),
                    ))
                }
            },
            resource_groups: None,
            access_rules: None,
            https,
            client_authentication,
            password_file: None,
        };
        // Trino's `access-control.config-files` names the access-control properties file from
        // config.properties (also how `fireball local --property` sets one for every node).
        if let Some(files) = reader.string_opt("access-control.config-files") {
            let files: Vec<&str> = files.split(',').map(str::trim).filter(|file| !file.is_empty()).collect();
            let [file] = files[..] else {
                return Err(reader.error_at("access-control.config-files", "name exactly one file (fireball has one access control)"));
            };
            let path = Path::new(file);
            config.access_rules = Some(read_json_file_properties(path, path.parent().unwrap_or(Path::new(".")), "access-control.name", "security.config-file")?);
        }
        reader.refuse_unknown()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("resource-manager.query-heartbeat-interval", self.query_heartbeat_interval_ms),
            ("resource-manager.node-heartbeat-interval", self.node_heartbeat_interval_ms),
            ("resource-group-runtimeinfo-refresh-interval", self.runtimeinfo_refresh_interval_ms),
            ("discovery.announce-interval", self.announce_interval_ms),
            ("discovery-server.replication-interval", self.discovery_replication_interval_ms),
            ("task.status-refresh-interval", self.task_status_interval_ms),
            ("internal-communication.request-timeout", self.request_timeout_ms),
        ];
        for (name, value_ms) in positive {
            if value_ms == 0 {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        if !(0.0..=1.0).contains(&self.concurrency_threshold) {
            return Err(format!(
                "concurrency-threshold-to-enable-resource-group-refresh must be between 0 and 1, not {}",
                self.concurrency_threshold
            ));
        }
        if self.discovery_max_age_ms <= self.announce_interval_ms {
            return Err("discovery.max-age must be longer than discovery.announce-interval, or nodes would \
                        expire between announcements"
                .into());
        }
        if self.request_retries_max > 10 {
            return Err("internal-communication.max-retries must be at most 10".into());
        }
        Ok(())
    }

    /// The URI other nodes and clients use for this node.
    pub fn self_uri(&self) -> String {
        format!("http://{}:{}", self.internal_address, self.http_port)
    }

    /// The URI clients that came over HTTPS use for this node, if it serves HTTPS.
    pub fn self_https_uri(&self) -> Option<String> {
        self.https.as_ref().map(|https| format!("https://{}:{}", self.internal_address, https.port))
    }

    /// PASSWORD authentication needs HTTPS (a password never travels in clear), the shared
    /// secret (nodes' own calls to client endpoints, such as proxied `/v1/query` hops, are
    /// told apart by it) and a password file. Checked again when a node starts, because
    /// `fireball local` builds configs without an `etc/` directory.
    pub fn check_client_security(&self) -> Result<(), String> {
        if self.client_authentication != ClientAuthentication::Password {
            if self.password_file.is_some() {
                return Err("etc/password-authenticator.properties is present but http-server.authentication.type is not PASSWORD".into());
            }
            return Ok(());
        }
        if self.https.is_none() {
            return Err("http-server.authentication.type=PASSWORD needs http-server.https.enabled=true: \
                        passwords are only accepted over HTTPS"
                .into());
        }
        if self.shared_secret.is_none() {
            return Err("http-server.authentication.type=PASSWORD needs internal-communication.shared-secret \
                        (nodes authenticate with it, users with their password)"
                .into());
        }
        if self.password_file.is_none() {
            return Err("http-server.authentication.type=PASSWORD needs etc/password-authenticator.properties \
                        (password-authenticator.name=file, file.password-file=PATH)"
                .into());
        }
        Ok(())
    }
}

/// `http-server.https.enabled`, `.port` and `.keystore.path` (one PEM file: certificate chain
/// and unencrypted private key). `.keystore.key` is the keystore's password in Presto and
/// Trino; encrypted keys are not supported, so it is refused rather than ignored.
fn https_config(reader: &mut Reader, http_port: u16) -> Result<Option<HttpsConfig>, String> {
    let enabled = reader.bool("http-server.https.enabled", false)?;
    let port = reader.parse("http-server.https.port", client_security::HTTPS_PORT_DEFAULT)?;
    let keystore_path = reader.string_opt("http-server.https.keystore.path");
    if reader.string_opt("http-server.https.keystore.key").is_some() {
        return Err(reader.error_at(
            "http-server.https.keystore.key",
            "encrypted keystores are not supported: put the certificate chain and an unencrypted private key \
             in one PEM file named by http-server.https.keystore.path",
        ));
    }
    if !enabled {
        return Ok(None);
    }
    let Some(keystore_path) = keystore_path.filter(|path| !path.trim().is_empty()) else {
        return Err(reader.error_at(
            "http-server.https.enabled",
            "HTTPS needs http-server.https.keystore.path (a PEM file with the certificate chain and private key)",
        ));
    };
    if port == http_port && port != 0 {
        return Err(reader.error_at("http-server.https.port", "must differ from http-server.http.port"));
    }
    Ok(Some(HttpsConfig { port, keystore_path: keystore_path.trim().into() }))
}

/// `query.low-memory-killer.policy` and `.delay` (Presto's names and defaults) and fireball's
/// `query.low-memory-killer.scope`: `cluster` (one victim cluster-wide, the default) or
/// `coordinator` (Presto's behaviour: each coordinator kills among its own queries).
fn low_memory_killer_config(reader: &mut Reader) -> Result<KillerConfig, String> {
    let policy_text = reader.string_opt("query.low-memory-killer.policy").unwrap_or_else(|| "total-reservation-on-blocked-nodes".into());
    let policy = KillerPolicy::parse(&policy_text).ok_or_else(|| {
        reader.error_at(
            "query.low-memory-killer.policy",
            &format!("unknown policy {policy_text:?} (none, total-reservation or total-reservation-on-blocked-nodes)"),
        )
    })?;
    let scope_text = reader.string_opt("query.low-memory-killer.scope").unwrap_or_else(|| "cluster".into());
    let scope = KillerScope::parse(&scope_text)
        .ok_or_else(|| reader.error_at("query.low-memory-killer.scope", &format!("unknown scope {scope_text:?} (cluster or coordinator)")))?;
    let delay_ms = reader.duration("query.low-memory-killer.delay", "5m")?;
    // Long enough for every worker to heartbeat a release and a coordinator to fetch it.
    let settle_ms = reader.duration("resource-manager.node-heartbeat-interval", "1s")?
        + reader.duration("resource-manager.memory-pool-fetch-interval", "1s")?;
    Ok(KillerConfig { policy, scope, delay_ms, settle_ms })
}

/// A plugin properties file that selects the `file` implementation and names its JSON file
/// (`resource-groups.properties`, `access-control.properties`): the JSON, read.
fn read_json_file_properties(path: &Path, etc_dir: &Path, name_key: &str, file_key: &str) -> Result<JsonFileSource, String> {
    let properties = Properties::read(path)?;
    let mut reader = Reader { properties: &properties, used: BTreeSet::new() };
    match reader.string_opt(name_key).as_deref() {
        Some("file") => {}
        Some(other) => return Err(reader.error_at(name_key, &format!("{other:?} is not supported (only \"file\")"))),
        None => return Err(format!("{}: {name_key} is required", path.display())),
    }
    let file = reader.string_opt(file_key).ok_or_else(|| format!("{}: {file_key} is required", path.display()))?;
    reader.refuse_unknown()?;
    let root = etc_dir.parent().unwrap_or(Path::new("."));
    let resolved = if Path::new(&file).is_absolute() { Path::new(&file).to_path_buf() } else { root.join(&file) };
    let json = std::fs::read_to_string(&resolved).map_err(|error| format!("cannot read {}: {error}", resolved.display()))?;
    Ok(JsonFileSource { json, origin: resolved.display().to_string() })
}

/// Reads typed values and remembers which keys were used, so leftovers can be refused.
struct Reader<'a> {
    properties: &'a Properties,
    used: BTreeSet<String>,
}

impl Reader<'_> {
    fn raw(&mut self, key: &str) -> Option<(String, Origin)> {
        self.used.insert(key.to_string());
        self.properties.get(key).map(|(value, origin)| (value.to_string(), origin.clone()))
    }

    fn error_at(&self, key: &str, reason: &str) -> String {
        match self.properties.get(key) {
            Some((_, origin)) => format!("{origin}: {key}: {reason}"),
            None => format!("{key}: {reason}"),
        }
    }

    fn string_opt(&mut self, key: &str) -> Option<String> {
        self.raw(key).map(|(value, _)| value)
    }

    fn bool(&mut self, key: &str, default: bool) -> Result<bool, String> {
        match self.raw(key) {
            None => Ok(default),
            Some((value, origin)) => match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("{origin}: {key}: expected true or false, found {value:?}")),
            },
        }
    }

    fn parse<T: std::str::FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        match self.raw(key) {
            None => Ok(default),
            Some((value, origin)) => value
                .parse()
                .map_err(|_| format!("{origin}: {key}: cannot read {value:?} as a {}", std::any::type_name::<T>())),
        }
    }

    fn duration(&mut self, key: &str, default: &str) -> Result<u64, String> {
        match self.raw(key) {
            None => parse_duration_ms(default),
            Some((value, origin)) => parse_duration_ms(&value).map_err(|reason| format!("{origin}: {key}: {reason}")),
        }
    }

    fn data_size(&mut self, key: &str, default: &str) -> Result<u64, String> {
        match self.raw(key) {
            None => parse_data_size_bytes(default),
            Some((value, origin)) => {
                parse_data_size_bytes(&value).map_err(|reason| format!("{origin}: {key}: {reason}"))
            }
        }
    }

    fn uri_list(&mut self, key: &str) -> Result<Vec<String>, String> {
        let Some((value, origin)) = self.raw(key) else { return Ok(Vec::new()) };
        let mut uris = Vec::new();
        for part in value.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let uri = part.trim_end_matches('/');
            let parsed: Result<hyper::Uri, _> = uri.parse();
            match parsed {
                Ok(parsed) if parsed.scheme_str() == Some("http") && parsed.authority().is_some() => {
                    uris.push(uri.to_string())
                }
                _ => return Err(format!("{origin}: {key}: {part:?} is not an http://host:port URL")),
            }
        }
        Ok(uris)
    }

    fn refuse_unknown(&self) -> Result<(), String> {
        for (key, origin) in self.properties.keys() {
            if !self.used.contains(key) {
                return Err(format!("{origin}: unknown configuration property {key:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<NodeConfig, String> {
        NodeConfig::from_properties(&Properties::parse(text, "config.properties").unwrap())
    }

    const BASE: &str = "node.environment=test\nresource-manager-enabled=true\ndiscovery.uri=http://127.0.0.1:8090\n";

    #[test]
    fn presto_defaults() {
        let config = config(BASE).unwrap();
        assert_eq!(config.role, Role::Coordinator);
        assert_eq!(config.http_port, 8080);
        assert_eq!(config.query_heartbeat_interval_ms, 1_000);
        assert_eq!(config.runtimeinfo_refresh_interval_ms, 100);
        assert_eq!(config.concurrency_threshold, 1.0);
        assert_eq!(config.max_concurrent_queries, 1000);
        assert_eq!(config.max_queued_queries, 5000);
        assert_eq!(config.node_status_timeout_ms, 30_000);
        assert_eq!(config.shutdown_grace_period_ms, 120_000, "Presto's shutdown.grace-period default");
        assert_eq!(self::config(&format!("{BASE}shutdown.grace-period=30s\n")).unwrap().shutdown_grace_period_ms, 30_000);
    }

    #[test]
    fn roles() {
        assert_eq!(config(&format!("{BASE}coordinator=false\n")).unwrap().role, Role::Worker);
        let rm = config(&format!("{BASE}coordinator=false\nresource-manager=true\n")).unwrap();
        assert_eq!(rm.role, Role::ResourceManager);
        let both = config(&format!("{BASE}resource-manager=true\n")).unwrap_err();
        assert!(both.contains("both"), "{both}");
    }

    #[test]
    fn reads_the_resource_groups_file_named_in_etc() {
        let root = std::env::temp_dir().join(format!("fireball-etc-{}", std::process::id()));
        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("node.properties"), "node.id=coordinator-1\n").unwrap();
        std::fs::write(etc.join("config.properties"), BASE).unwrap();
        std::fs::write(root.join("groups.json"), "{}").unwrap();
        std::fs::write(
            etc.join("resource-groups.properties"),
            "resource-groups.configuration-manager=file\nresource-groups.config-file=groups.json\n",
        )
        .unwrap();
        let config = NodeConfig::read_etc(&etc).unwrap();
        assert_eq!(config.resource_groups.unwrap().json, "{}");
        std::fs::write(etc.join("resource-groups.properties"), "resource-groups.configuration-manager=db\n").unwrap();
        let error = NodeConfig::read_etc(&etc).unwrap_err();
        assert!(error.contains("resource-groups.properties:1") && error.contains("db"), "{error}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_unknown_and_malformed_keys_with_location() {
        let unknown = config(&format!("{BASE}query.max-concurent-queries=5\n")).unwrap_err();
        assert_eq!(unknown, "config.properties:4: unknown configuration property \"query.max-concurent-queries\"");
        let malformed = config(&format!("{BASE}resource-manager.query-heartbeat-interval=often\n")).unwrap_err();
        assert!(malformed.starts_with("config.properties:4: resource-manager.query-heartbeat-interval"), "{malformed}");
        let threshold = config(&format!("{BASE}concurrency-threshold-to-enable-resource-group-refresh=1.5\n")).unwrap_err();
        assert!(threshold.contains("between 0 and 1"), "{threshold}");
        assert!(config("node.environment=test\n").unwrap_err().contains("resource-manager-enabled"));
        let bad_uri = config("node.environment=test\nresource-manager-enabled=true\ndiscovery.uri=ftp://x\n").unwrap_err();
        assert!(bad_uri.contains("config.properties:3"), "{bad_uri}");
    }

    #[test]
    fn https_and_password_settings_are_checked_where_they_are_written() {
        let https = config(&format!("{BASE}http-server.https.enabled=true\nhttp-server.https.port=8443\nhttp-server.https.keystore.path=/etc/server.pem\n")).unwrap();
        assert_eq!(https.https.as_ref().map(|https| https.port), Some(8443));
        assert_eq!(https.self_https_uri().as_deref(), Some("https://127.0.0.1:8443"));
        assert_eq!(config(BASE).unwrap().https, None);
        let no_keystore = config(&format!("{BASE}http-server.https.enabled=true\n")).unwrap_err();
        assert!(no_keystore.starts_with("config.properties:4: http-server.https.enabled") && no_keystore.contains("keystore.path"), "{no_keystore}");
        let bad_port = config(&format!("{BASE}http-server.https.port=99999\n")).unwrap_err();
        assert!(bad_port.starts_with("config.properties:4: http-server.https.port"), "{bad_port}");
        let key = config(&format!("{BASE}http-server.https.keystore.key=changeit\n")).unwrap_err();
        assert!(key.contains("config.properties:4") && key.contains("encrypted keystores"), "{key}");
        let kerberos = config(&format!("{BASE}http-server.authentication.type=KERBEROS\n")).unwrap_err();
        assert!(kerberos.starts_with("config.properties:4: http-server.authentication.type"), "{kerberos}");
        let password = config(&format!("{BASE}http-server.authentication.type=PASSWORD\n")).unwrap();
        assert!(password.check_client_security().unwrap_err().contains("https.enabled"));
    }
}
