//! What every role of a node is built from: its configuration and its handles on the runtime
//! seam. One value, built once per node by whoever starts it (`fireball server`, `fireball
//! local`, the simulator) and handed to `node::run`, instead of each role taking the same five
//! arguments (and each test building them again).

use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::runtime::http_client::HttpClient;
use crate::runtime::rng::NodeRng;
use crate::runtime::Clock;
use crate::security::access::AccessControl;
use crate::security::internal::InternalAuth;
use std::sync::Arc;

#[derive(Clone)]
pub struct NodeContext {
    pub config: NodeConfig,
    /// Monotonic and wall time (skewed per node in simulation).
    pub clock: Clock,
    /// The node's HTTP client: connection reuse, a timeout on every request, bounded retries.
    pub client: HttpClient,
    pub metrics: Metrics,
    /// Seeded by madsim in simulation, from the OS in production.
    pub rng: NodeRng,
    /// Signs this node's requests and checks its callers', when a shared secret is configured.
    pub auth: Option<Arc<InternalAuth>>,
    /// Who may run, see and kill which queries (`etc/access-control.properties`).
    pub access: Arc<AccessControl>,
}

impl NodeContext {
    /// The context a node runs with: a fresh client, registry and RNG for `config`. `Err` when
    /// its access-control rules do not parse (file, place and reason).
    pub fn new(config: NodeConfig, clock: Clock) -> Result<NodeContext, String> {
        let access = match &config.access_rules {
            Some(source) => AccessControl::parse(&source.json, &source.origin)?,
            None => AccessControl::default(),
        };
        let auth = config.shared_secret.as_ref().map(|secret| Arc::new(InternalAuth::new(secret, &config.node_id, clock.clone())));
        let signer = crate::security::internal::signer(&auth);
        let client = HttpClient::signed(config.node_id.clone(), config.request_timeout_ms, config.request_retries_max, signer);
        let metrics = Metrics::new(&config.node_id, config.role, clock.clone());
        Ok(NodeContext { config, clock, client, metrics, rng: NodeRng::from_entropy(), auth, access: Arc::new(access) })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }
}
