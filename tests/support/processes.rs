//! A cluster of separate `fireball server --etc DIR` processes on loopback, as an operator runs
//! it: shared by the process tests (tests/cluster_processes.rs, tests/rest_processes.rs), which
//! include this file with `#[path = "support/processes.rs"] mod processes;`.
//!
//! Not a test target of its own: the root Cargo.toml sets `autotests = false` and lists each
//! test target explicitly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The real clock, for the process tests' bounded waits: they drive real processes on loopback,
/// outside any simulation, so nothing here is virtual.
#[allow(clippy::disallowed_methods, reason = "process tests run outside any simulation, on the real clock")]
pub fn wall_now() -> Instant {
    Instant::now()
}

/// The `internal-communication.shared-secret` every node of a process cluster is given.
pub const SHARED_SECRET: &str = "process-test-cluster-shared-secret";

/// A client that signs its requests as a node of the cluster would (the operator's tooling):
/// the internal endpoints (heartbeats, tasks, `PUT /v1/info/state`) refuse unsigned ones.
pub fn internal_client(name: &str, timeout_ms: u64) -> fireball::runtime::http_client::HttpClient {
    use std::sync::Arc;
    let secret = fireball::config::SharedSecret::new(SHARED_SECRET.into()).expect("long enough");
    let auth = fireball::security::internal::InternalAuth::new(&secret, name, fireball::runtime::Clock::new());
    fireball::runtime::http_client::HttpClient::signed(name, timeout_ms, 0, Some(Arc::new(auth)))
}

/// Child processes, killed when the test ends however it ends.
pub struct Cluster {
    pub children: BTreeMap<String, Child>,
    pub uris: BTreeMap<String, String>,
    pub logs: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Cluster {
    /// Starts one process per name under `$TMP/{dir_prefix}-{pid}`: names starting `rm-` are
    /// resource managers (all of them discovery peers), `coordinator-` coordinators, anything
    /// else a worker. `extra_config` (whole lines) goes into every node's config.properties.
    pub fn start(dir_prefix: &str, names: &[&str], extra_config: &str) -> Cluster {
        let root = std::env::temp_dir().join(format!("{dir_prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let ports: BTreeMap<&str, u16> = names.iter().map(|name| (*name, free_port())).collect();
        let uri = |name: &str| format!("http://127.0.0.1:{}", ports[name]);
        let rm_uris = names.iter().filter(|name| name.starts_with("rm-")).map(|name| uri(name)).collect::<Vec<_>>().join(",");
        let mut cluster = Cluster { children: BTreeMap::new(), uris: BTreeMap::new(), logs: root.join("logs") };
        std::fs::create_dir_all(&cluster.logs).expect("log dir");
        for &name in names {
            let node = format!(
                "node.environment=test\nnode.id={name}\nnode.internal-address=127.0.0.1\nnode.data-dir={}\n",
                root.join(name).join("data").display()
            );
            let common = format!(
                "http-server.http.port={}\nhttp-server.bind-address=127.0.0.1\nresource-manager-enabled=true\n\
                 {extra_config}internal-communication.request-timeout=2s\n\
                 internal-communication.shared-secret={SHARED_SECRET}\n",
                ports[name]
            );
            let role = if name.starts_with("rm-") {
                format!("resource-manager=true\ncoordinator=false\ndiscovery-server.enabled=true\ndiscovery-server.peers={rm_uris}\n")
            } else if name.starts_with("coordinator-") {
                format!("coordinator=true\ndiscovery.uri={rm_uris}\n")
            } else {
                format!("coordinator=false\ndiscovery.uri={rm_uris}\nmemory.pool-size=1GB\n")
            };
            let etc = root.join(name).join("etc");
            std::fs::create_dir_all(&etc).expect("etc dir");
            std::fs::write(etc.join("node.properties"), node).expect("node.properties");
            std::fs::write(etc.join("config.properties"), format!("{common}{role}")).expect("config.properties");
            let log = std::fs::File::create(cluster.logs.join(format!("{name}.log"))).expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_fireball"))
                .args(["server", "--etc"])
                .arg(&etc)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start fireball server");
            cluster.children.insert(name.to_string(), child);
            cluster.uris.insert(name.to_string(), uri(name));
        }
        cluster
    }

    pub fn uri(&self, name: &str) -> String {
        self.uris[name].clone()
    }

    pub fn kill(&mut self, name: &str) {
        let child = self.children.get_mut(name).expect("known node");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// Sends the node's process SIGTERM (what an operator's `kill` or a service manager sends).
    pub fn signal(&self, name: &str) {
        let pid = self.children.get(name).expect("known node").id();
        let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
    }

    /// Waits (bounded) for a node's process to exit by itself.
    pub async fn exit_status(&mut self, name: &str, within: Duration) -> ExitStatus {
        let deadline = wall_now() + within;
        loop {
            if let Some(status) = self.children.get_mut(name).expect("known node").try_wait().expect("try_wait") {
                return status;
            }
            assert!(wall_now() < deadline, "{name} did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn dump_logs(&self) {
        for name in self.children.keys() {
            let log = std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("---- {name} (last lines) ----");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
