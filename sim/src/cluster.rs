//! A fireball cluster on simulated hosts, with named helpers to hurt it.
//!
//! | role        | names               | addresses     |
//! |-------------|---------------------|---------------|
//! | RM          | `rm-1`…             | `10.0.1.N:8080` |
//! | coordinator | `coordinator-1`…    | `10.0.2.N:8080` |
//! | worker      | `worker-1`…         | `10.0.3.N:8080` |
//! | client      | `client-1`…         | `10.0.9.N`      |

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::rc::Rc;

use fireball::config::Role;
use fireball::context::NodeContext;
use fireball::local::ClusterLayout;
use fireball::runtime::Clock;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;

pub const NODE_PORT: u16 = 8080;
type ExitListener = Box<dyn Fn(&str)>;

/// Nodes that exited by themselves, and who wants to hear of it.
#[derive(Default)]
struct Exits {
    exited: RefCell<Vec<String>>,
    listener: RefCell<Option<ExitListener>>,
}

thread_local! {
    /// The current cluster's [`Exits`]. A simulation runs on one OS thread, so a node reaches it
    /// as the seam's event recorder is reached: directly, from its own task, at the moment
    /// `node::run` returns. (A harness task waiting for exits would itself change madsim's
    /// scheduling draws, and with them the run every seed gives.)
    static EXITS: RefCell<Option<Rc<Exits>>> = const { RefCell::new(None) };
}

/// Called by a node whose `node::run` returned; madsim then ends the node's process (its init
/// task is done), as the real process exits.
fn node_exited(name: &str) {
    let Some(exits) = EXITS.with(|slot| slot.borrow().clone()) else { return };
    exits.exited.borrow_mut().push(name.to_string());
    let listener = exits.listener.borrow();
    if let Some(listener) = listener.as_ref() {
        listener(name);
    }
}

pub struct SimNode {
    pub name: String,
    pub role: Role,
    pub uri: String,
    pub ip: IpAddr,
    pub id: NodeId,
    /// The node's clock, shared with the node so simulation can skew it.
    pub clock: Clock,
}

pub struct SimCluster {
    pub layout: ClusterLayout,
    nodes: BTreeMap<String, SimNode>,
    clients: Vec<NodeHandle>,
    /// Nodes whose `node::run` returned (they were asked to shut down), in the order they did.
    exits: Rc<Exits>,
}

fn role_octet(role: Role) -> u8 {
    match role {
        Role::ResourceManager => 1,
        Role::Coordinator => 2,
        Role::Worker => 3,
    }
}

fn node_ip(role: Role, index: u32) -> IpAddr {
    IpAddr::from([10, 0, role_octet(role), index as u8])
}

impl SimCluster {
    /// Creates every node; they start running at once. Call inside a madsim runtime.
    pub fn start(layout: ClusterLayout) -> Result<SimCluster, String> {
        assert!(layout.resource_managers.max(layout.coordinators).max(layout.workers) < 255);
        let configs = layout.node_configs(|role, index| (node_ip(role, index).to_string(), NODE_PORT))?;
        let handle = Handle::current();
        let mut nodes = BTreeMap::new();
        let exits = Rc::new(Exits::default());
        EXITS.with(|slot| *slot.borrow_mut() = Some(exits.clone()));
        for config in configs {
            let ip: IpAddr = config.internal_address.parse().map_err(|_| "layout produced a non-IP address".to_string())?;
            let clock = Clock::new();
            let name = config.node_id.clone();
            let (node_config, node_clock) = (config.clone(), clock.clone());
            let node = handle
                .create_node()
                .name(name.clone())
                .ip(ip)
                .init(move || {
                    let config = node_config.clone();
                    let clock = node_clock.clone();
                    async move {
                        let name = config.node_id.clone();
                        // Bind first, then build the context (which draws the node's seed): the
                        // order nodes always started in, so every seed keeps its run.
                        let listener = match fireball::node::bind(&config).await {
                            Ok(listener) => listener,
                            Err(error) => panic!("node failed to start: {error}"),
                        };
                        let context = match NodeContext::new(config, clock) {
                            Ok(context) => context,
                            Err(error) => panic!("node failed to start: {error}"),
                        };
                        // madsim's ctrl-c is the simulated process's signal ([`SimCluster::signal`]).
                        let signal = async {
                            let _ = tokio::signal::ctrl_c().await;
                        };
                        match fireball::node::run_on(listener, context, signal, |_| {}).await {
                            // The node stopped by itself (asked to shut down): tell the harness;
                            // returning ends the simulated process, as the real one would end.
                            Ok(()) => node_exited(&name),
                            // A node that cannot start is a harness bug: say so loudly.
                            Err(error) => panic!("node failed to start: {error}"),
                        }
                    }
                })
                .build();
            let sim_node = SimNode { name: name.clone(), role: config.role, uri: config.self_uri(), ip, id: node.id(), clock };
            nodes.insert(name, sim_node);
        }
        Ok(SimCluster { layout, nodes, clients: Vec::new(), exits })
    }

    /// Calls `listener` with the node's name each time a node exits by itself.
    pub fn on_exit(&self, listener: impl Fn(&str) + 'static) {
        *self.exits.listener.borrow_mut() = Some(Box::new(listener));
    }

    /// True once `name` has exited by itself (and not been restarted since).
    pub fn has_exited(&self, name: &str) -> bool {
        self.exits.exited.borrow().iter().any(|exited| exited == name) && Handle::current().is_exit(self.node(name).id)
    }

    /// Sends the node's process a signal (madsim's ctrl-c): it shuts down gracefully, as
    /// `fireball server` does on SIGTERM. Only once the node serves: before that, madsim kills it.
    pub fn signal(&self, name: &str) {
        Handle::current().send_ctrl_c(self.node(name).id);
    }

    pub fn node(&self, name: &str) -> &SimNode {
        self.nodes.get(name).unwrap_or_else(|| panic!("no node named {name}"))
    }

    pub fn nodes(&self) -> impl Iterator<Item = &SimNode> {
        self.nodes.values()
    }

    /// `ip:port` → node name, for every node (what the fault filter sees as the receiver).
    pub fn authority_names(&self) -> BTreeMap<String, String> {
        self.nodes.values().map(|node| (format!("{}:{NODE_PORT}", node.ip), node.name.clone())).collect()
    }

    /// Installs message-level fault injection for this cluster.
    pub fn install_message_faults(&self) -> crate::faults::MessageFaults {
        crate::faults::MessageFaults::install(self.authority_names())
    }

    pub fn coordinator_uris(&self) -> Vec<String> {
        self.nodes.values().filter(|node| node.role == Role::Coordinator).map(|node| node.uri.clone()).collect()
    }

    /// A host to run simulated clients on.
    pub fn client_node(&mut self) -> &NodeHandle {
        let index = self.clients.len() + 1;
        assert!(index < 255, "too many client hosts");
        let node = Handle::current()
            .create_node()
            .name(format!("client-{index}"))
            .ip(IpAddr::from([10, 0, 9, index as u8]))
            .build();
        self.clients.push(node);
        self.clients.last().expect("just pushed")
    }

    /// Cuts the node off the network in both directions.
    pub fn clog(&self, name: &str) {
        NetSim::current().clog_node(self.node(name).id);
    }

    pub fn unclog(&self, name: &str) {
        NetSim::current().unclog_node(self.node(name).id);
    }

    pub fn kill(&self, name: &str) {
        Handle::current().kill(self.node(name).id);
    }

    /// Restarts the node from its config with empty state. madsim's `restart` does not release
    /// the old incarnation's sockets (only `kill` does), so the port would still be taken.
    pub fn restart(&self, name: &str) {
        let handle = Handle::current();
        handle.kill(self.node(name).id);
        handle.restart(self.node(name).id);
    }
}
