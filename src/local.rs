//! A whole cluster's configuration from a few counts: used by `fireball local` (loopback ports)
//! and by the simulator (one IP per node), so both start nodes from the same properties a person
//! would write in `etc/`.

use crate::config::properties::Properties;
use crate::config::{NodeConfig, Role, SharedSecret};

/// The property that holds the cluster's internal secret.
pub const SHARED_SECRET_PROPERTY: &str = "internal-communication.shared-secret";

#[derive(Clone, Debug)]
pub struct ClusterLayout {
    pub resource_managers: u32,
    pub coordinators: u32,
    pub workers: u32,
    pub environment: String,
    /// Extra properties applied to every node (Presto names), e.g. from a scenario's `[config]`.
    pub properties: Vec<(String, String)>,
    /// A resource-groups JSON every coordinator uses (otherwise the legacy single group).
    pub resource_groups_json: Option<String>,
}

/// Per-role maximum, so that port ranges in `fireball local` never overlap.
pub const NODES_PER_ROLE_MAX: u32 = 100;

impl ClusterLayout {
    pub fn new(resource_managers: u32, coordinators: u32, workers: u32) -> Self {
        ClusterLayout {
            resource_managers,
            coordinators,
            workers,
            environment: "fireball".into(),
            properties: Vec::new(),
            resource_groups_json: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, count) in [
            ("resource managers", self.resource_managers),
            ("coordinators", self.coordinators),
            ("workers", self.workers),
        ] {
            if count == 0 || count > NODES_PER_ROLE_MAX {
                return Err(format!("{name}: need between 1 and {NODES_PER_ROLE_MAX}, not {count}"));
            }
        }
        Ok(())
    }

    /// The secret every node is given (`internal-communication.shared-secret`), if any.
    pub fn shared_secret(&self) -> Option<SharedSecret> {
        let (_, secret) = self.properties.iter().rev().find(|(key, _)| key == SHARED_SECRET_PROPERTY)?;
        SharedSecret::new(secret.clone()).ok()
    }

    /// Gives every node the secret `make` returns, unless the properties already set one: a
    /// local or simulated cluster authenticates its internal traffic as a production one should.
    pub fn ensure_shared_secret(&mut self, make: impl FnOnce() -> String) {
        if !self.properties.iter().any(|(key, _)| key == SHARED_SECRET_PROPERTY) {
            self.properties.push((SHARED_SECRET_PROPERTY.to_string(), make()));
        }
    }

    /// `rm-1`, `coordinator-2`, `worker-3`: the names scenarios and logs use.
    pub fn node_names(&self) -> Vec<(Role, String)> {
        let mut names = Vec::new();
        for index in 1..=self.resource_managers {
            names.push((Role::ResourceManager, format!("rm-{index}")));
        }
        for index in 1..=self.coordinators {
            names.push((Role::Coordinator, format!("coordinator-{index}")));
        }
        for index in 1..=self.workers {
            names.push((Role::Worker, format!("worker-{index}")));
        }
        names
    }

    /// Every node's config; `address` gives each node's host and port.
    pub fn node_configs(&self, address: impl Fn(Role, u32) -> (String, u16)) -> Result<Vec<NodeConfig>, String> {
        self.validate()?;
        let index_of = |name: &str| -> u32 { name.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0) };
        let rm_uris: Vec<String> = (1..=self.resource_managers)
            .map(|index| {
                let (host, port) = address(Role::ResourceManager, index);
                format!("http://{host}:{port}")
            })
            .collect();
        let mut configs = Vec::new();
        for (role, name) in self.node_names() {
            let (host, port) = address(role, index_of(&name));
            let mut properties = Properties::new();
            let origin = "cluster layout";
            properties.set("node.environment", self.environment.clone(), origin);
            properties.set("node.id", name.clone(), origin);
            properties.set("node.internal-address", host.clone(), origin);
            properties.set("http-server.http.port", port.to_string(), origin);
            properties.set("resource-manager-enabled", "true", origin);
            match role {
                Role::ResourceManager => {
                    properties.set("resource-manager", "true", origin);
                    properties.set("coordinator", "false", origin);
                    properties.set("discovery-server.enabled", "true", origin);
                    properties.set("discovery-server.peers", rm_uris.join(","), origin);
                }
                Role::Coordinator => properties.set("coordinator", "true", origin),
                Role::Worker => properties.set("coordinator", "false", origin),
            }
            if role != Role::ResourceManager {
                properties.set("discovery.uri", rm_uris.join(","), origin);
            }
            for (key, value) in &self.properties {
                properties.set(key, value.clone(), "extra properties");
            }
            let mut config = NodeConfig::from_properties(&properties).map_err(|error| format!("{name}: {error}"))?;
            config.resource_groups = self.resource_groups_json.as_ref().map(|json| crate::config::JsonFileSource {
                json: json.clone(),
                origin: "cluster layout".into(),
            });
            configs.push(config);
        }
        Ok(configs)
    }
}

/// The resource-groups file `fireball local` starts with: Presto's usual shape, a root `global`
/// with one leaf per user, sized from the legacy limits so `--property query.max-concurrent-queries`
/// keeps its meaning for the whole cluster.
pub fn default_resource_groups(max_running: u32, max_queued: u32) -> String {
    let per_user_queued = max_queued.max(1);
    format!(
        r#"{{
  "rootGroups": [{{
    "name": "global", "softMemoryLimit": "100%", "hardConcurrencyLimit": {max_running}, "maxQueued": {max_queued},
    "schedulingPolicy": "fair",
    "subGroups": [
      {{ "name": "${{USER}}", "softMemoryLimit": "100%", "hardConcurrencyLimit": {max_running}, "maxQueued": {per_user_queued} }}
    ]
  }}],
  "selectors": [{{ "group": "global.${{USER}}" }}]
}}"#
    )
}

/// Loopback ports for `fireball local`: coordinators from `base`, RMs from `base + 100`,
/// workers from `base + 200`.
pub fn loopback_address(base_port: u16, role: Role, index: u32) -> (String, u16) {
    let offset = match role {
        Role::Coordinator => 0,
        Role::ResourceManager => 100,
        Role::Worker => 200,
    };
    ("127.0.0.1".into(), base_port + offset + index as u16 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_produces_valid_configs_for_every_role() {
        let layout = ClusterLayout::new(2, 2, 3);
        let configs = layout.node_configs(|role, index| loopback_address(8080, role, index)).unwrap();
        assert_eq!(configs.len(), 7);
        let rm = &configs[0];
        assert_eq!((rm.role, rm.node_id.as_str(), rm.http_port), (Role::ResourceManager, "rm-1", 8180));
        assert_eq!(rm.discovery_peers.len(), 2);
        let worker = configs.last().unwrap();
        assert_eq!((worker.role, worker.node_id.as_str(), worker.http_port), (Role::Worker, "worker-3", 8282));
        assert_eq!(worker.discovery_uris, vec!["http://127.0.0.1:8180", "http://127.0.0.1:8181"]);
        assert!(ClusterLayout::new(0, 1, 1).validate().is_err());
    }

    #[test]
    fn the_default_resource_groups_file_is_valid_and_keeps_the_legacy_limit() {
        let json = default_resource_groups(4, 50);
        let spec = crate::resource_groups::parse_resource_groups(&json, "default").unwrap();
        let manager = crate::resource_groups::ResourceGroupManager::new(
            spec,
            crate::resource_groups::AdmissionPolicy::Presto,
            1.0,
            1,
            0,
        );
        let context = crate::resource_groups::SelectionContext { user: "alice".into(), ..Default::default() };
        let group = manager.select(&context).unwrap();
        assert_eq!(group, "global.alice");
        assert_eq!(manager.hard_concurrency_limit("global"), Some(4));
    }

    #[test]
    fn extra_properties_are_checked_like_files() {
        let mut layout = ClusterLayout::new(1, 1, 1);
        layout.properties.push(("query.max-concurrent-queries".into(), "7".into()));
        let configs = layout.node_configs(|role, index| loopback_address(9000, role, index)).unwrap();
        assert!(configs.iter().all(|config| config.max_concurrent_queries == 7));
        layout.properties.push(("no.such.property".into(), "1".into()));
        let error = layout.node_configs(|role, index| loopback_address(9000, role, index)).unwrap_err();
        assert!(error.contains("no.such.property"), "{error}");
    }
}
