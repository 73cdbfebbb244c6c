//! The `fireball` command: `fireball server --etc DIR` runs one node on a real host;
//! `fireball local` runs a whole cluster on loopback.

// The binary runs real processes on real hosts; simulation builds start nodes through `sim/`.
#[cfg(madsim)]
fn main() {
    eprintln!("fireball: this is a simulation build (--cfg madsim); run scenarios with ci/sim instead");
    std::process::exit(2);
}

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    production::main()
}

#[cfg(not(madsim))]
mod production {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};

    use fireball::config::{NodeConfig, Role};
    use fireball::context::NodeContext;
    use fireball::local::{loopback_address, ClusterLayout};
    use fireball::runtime::Clock;

    #[derive(Parser)]
    #[command(name = "fireball", version, about = "A SQL query cluster with a disaggregated coordinator")]
    struct Cli {
        /// Log as JSON lines instead of human-readable text.
        #[arg(long, global = true)]
        log_json: bool,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Run one node (resource manager, coordinator or worker) from Presto-style etc/ files.
        Server {
            /// Directory holding node.properties and config.properties.
            #[arg(long, default_value = "etc")]
            etc: PathBuf,
        },
        /// Run a whole cluster on loopback: resource managers, coordinators and workers.
        Local {
            #[arg(long, default_value_t = 2)]
            resource_managers: u32,
            #[arg(long, default_value_t = 2)]
            coordinators: u32,
            #[arg(long, default_value_t = 2)]
            workers: u32,
            /// Coordinators listen from this port up, RMs from +100, workers from +200.
            #[arg(long, default_value_t = 8080)]
            base_port: u16,
            /// Extra property for every node, NAME=VALUE (Presto names); repeatable.
            #[arg(long = "property", value_name = "NAME=VALUE")]
            properties: Vec<String>,
            /// A Presto resource-groups.json for every coordinator (default: a root `global` limited
            /// by query.max-concurrent-queries / query.max-queued-queries, one leaf per user).
            #[arg(long)]
            resource_groups: Option<PathBuf>,
        },
        /// Runs one statement with DataFusion alone in this process over the generated tpch data
        /// (the baseline ci/bench measures the cluster against); prints `{"rows": N, "elapsed_ms": T}`.
        #[command(hide = true)]
        Datafusion {
            /// The tpch schema: tiny, sf1, sf10, …
            #[arg(long, default_value = "tiny")]
            schema: String,
            /// Partitions (splits per table, and threads of the plan); default: the processors.
            #[arg(long)]
            partitions: Option<usize>,
            #[arg(long, short = 'f')]
            file: PathBuf,
        },
        /// A terminal client, like presto-cli: runs statements and prints their results.
        Cli {
            /// The coordinator (or load balancer) to talk to.
            #[arg(long, default_value = "http://127.0.0.1:8080")]
            server: String,
            #[arg(long, default_value = "fireball")]
            user: String,
            #[arg(long)]
            catalog: Option<String>,
            #[arg(long)]
            schema: Option<String>,
            /// Run these statements (separated by `;`) and exit.
            #[arg(long, conflicts_with = "file")]
            execute: Option<String>,
            /// Run the statements in this file and exit.
            #[arg(long, short = 'f')]
            file: Option<PathBuf>,
            #[arg(long, value_enum, default_value = "ALIGNED")]
            output_format: fireball::cli::OutputFormat,
        },
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let command = match cli.command {
            Command::Cli { server, user, catalog, schema, execute, file, output_format } => {
                return run_cli(fireball::cli::Options { server, user, catalog, schema, format: output_format }, execute, file);
            }
            Command::Datafusion { schema, partitions, file } => return run_datafusion(&schema, partitions, &file),
            command => command,
        };
        init_logging(cli.log_json);
        let Some(runtime) = runtime("fireball", true) else { return ExitCode::FAILURE };
        let result = runtime.block_on(async {
            match command {
                Command::Server { etc } => run_server(etc).await,
                Command::Cli { .. } | Command::Datafusion { .. } => Err("handled above".to_string()),
                Command::Local { resource_managers, coordinators, workers, base_port, properties, resource_groups } => {
                    let mut layout = ClusterLayout::new(resource_managers, coordinators, workers);
                    for property in properties {
                        let (name, value) = property
                            .split_once('=')
                            .ok_or_else(|| format!("--property {property:?}: expected NAME=VALUE"))?;
                        layout.properties.push((name.trim().to_string(), value.trim().to_string()));
                    }
                    // A fresh secret per run (hex of 128 random bits); `--property
                    // internal-communication.shared-secret=...` sets a known one instead.
                    layout.ensure_shared_secret(|| {
                        let rng = fireball::runtime::rng::NodeRng::from_entropy();
                        format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
                    });
                    layout.resource_groups_json = Some(match resource_groups {
                        Some(path) => std::fs::read_to_string(&path)
                            .map_err(|error| format!("--resource-groups {}: {error}", path.display()))?,
                        None => {
                            // Size the default file from the same legacy properties a user may pass.
                            // (Ports do not matter for the probe; the real ones are checked in run_local.)
                            let probe = layout.node_configs(|role, index| loopback_address(8080, role, index))?;
                            let config = &probe[0];
                            fireball::local::default_resource_groups(config.max_concurrent_queries, config.max_queued_queries)
                        }
                    });
                    run_local(layout, base_port).await
                }
            }
        });
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("fireball: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn run_datafusion(schema: &str, partitions: Option<usize>, file: &std::path::Path) -> ExitCode {
        let sql = match std::fs::read_to_string(file) {
            Ok(sql) => sql,
            Err(error) => {
                eprintln!("fireball datafusion: --file {}: {error}", file.display());
                return ExitCode::FAILURE;
            }
        };
        let partitions = partitions.unwrap_or_else(|| fireball::runtime::available_processors() as usize);
        let Some(runtime) = runtime("fireball datafusion", true) else { return ExitCode::FAILURE };
        // Untimed, as a running cluster is warm: tpchgen builds its text pool on first use.
        let warm_up = runtime.block_on(fireball::engine::run_single_process("SELECT count(*) FROM nation", schema, partitions));
        if let Err(failure) = warm_up {
            eprintln!("fireball datafusion: {failure}");
            return ExitCode::FAILURE;
        }
        let clock = Clock::new();
        let started_ms = clock.now_ms();
        match runtime.block_on(fireball::engine::run_single_process(sql.trim().trim_end_matches(';'), schema, partitions)) {
            Ok(rows) => {
                println!("{}", serde_json::json!({ "rows": rows, "elapsed_ms": clock.now_ms() - started_ms }));
                ExitCode::SUCCESS
            }
            Err(failure) => {
                eprintln!("fireball datafusion: {failure}");
                ExitCode::FAILURE
            }
        }
    }

    /// The client: no logging set-up (its output is the results), its own small runtime.
    fn run_cli(options: fireball::cli::Options, execute: Option<String>, file: Option<PathBuf>) -> ExitCode {
        let statements = match (execute, file) {
            (Some(sql), _) => Some(sql),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(text),
                Err(error) => {
                    eprintln!("fireball cli: --file {}: {error}", path.display());
                    return ExitCode::FAILURE;
                }
            },
            (None, None) => None,
        };
        let Some(runtime) = runtime("fireball cli", false) else { return ExitCode::FAILURE };
        let result = runtime.block_on(async {
            match statements {
                Some(text) => {
                    let (mut statements, rest) = fireball::cli::split_statements(&text);
                    if !rest.trim().is_empty() {
                        statements.push(rest.trim().to_string());
                    }
                    fireball::cli::run_statements(&options, &statements).await
                }
                None => fireball::cli::run_interactive(&options).await,
            }
        });
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(fireball::cli::Failure::Cancelled) => ExitCode::from(130),
            Err(fireball::cli::Failure::Query(_)) => ExitCode::FAILURE,
            Err(fireball::cli::Failure::Client(message)) => {
                eprintln!("fireball cli: {message}");
                ExitCode::FAILURE
            }
        }
    }

    /// A tokio runtime (`multi_thread` or on this thread only); `None`, said on stderr, if the
    /// OS refuses one.
    fn runtime(program: &str, multi_thread: bool) -> Option<tokio::runtime::Runtime> {
        let mut builder =
            if multi_thread { tokio::runtime::Builder::new_multi_thread() } else { tokio::runtime::Builder::new_current_thread() };
        builder.enable_all().build().map_err(|error| eprintln!("{program}: cannot start the runtime: {error}")).ok()
    }

    fn init_logging(json: bool) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let builder =
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(is_terminal);
        if json {
            builder.json().init();
        } else {
            builder.init();
        }
    }

    async fn run_server(etc: PathBuf) -> Result<(), String> {
        let config = NodeConfig::read_etc(&etc)?;
        let context = NodeContext::new(config, Clock::new())?;
        let signals = Signals::listen();
        // The first SIGTERM / Ctrl-C (or a `PUT /v1/info/state "SHUTTING_DOWN"`) drains the node
        // within shutdown.grace-period and the process exits 0; a second signal exits at once.
        let running = fireball::node::run_with(context, signals.received(1), |node| {
            println!("fireball {} {} listening on {}", node.role.name(), node.node_id, node.uri);
        });
        tokio::select! {
            biased;
            _ = signals.received(2) => Err(Signals::SECOND_SIGNAL.into()),
            result = running => result,
        }
    }

    async fn run_local(layout: ClusterLayout, base_port: u16) -> Result<(), String> {
        if u32::from(base_port) + 300 > u32::from(u16::MAX) {
            return Err(format!("--base-port {base_port} is too high: the cluster needs 300 ports above it"));
        }
        let configs = layout.node_configs(|role, index| loopback_address(base_port, role, index))?;
        let signals = Signals::listen();
        // Each node runs through `node::run` like `fireball server`: it stops on its own when asked
        // to (`PUT /v1/info/state`), and Ctrl-C stops them all. Nodes start one after the other,
        // each once the previous one serves, so a port already taken stops the command before it
        // claims the cluster is up.
        let mut nodes = Vec::new();
        let mut running = Vec::new();
        for mut config in configs {
            config.bind_address = "127.0.0.1".into();
            let context = NodeContext::new(config, Clock::new())?;
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            let shutdown = signals.clone();
            let node = fireball::runtime::spawn(async move {
                fireball::node::run_with(context, shutdown.received(1), move |node| {
                    let _ = started_tx.send((node.role, node.node_id.clone(), node.uri.clone()));
                })
                .await
            });
            match started_rx.await {
                Ok(started) => nodes.push(started),
                // It returned before it served: its error says why.
                Err(_) => {
                    return Err(match node.await {
                        Ok(Err(error)) => error,
                        Ok(Ok(())) => "a node stopped before it served".into(),
                        Err(error) => format!("a node's task failed: {error}"),
                    })
                }
            }
            running.push(node);
        }
        println!("fireball local cluster is up:");
        for (role, node_id, uri) in &nodes {
            println!("  {:<16} {:<16} {}", role.name(), node_id, uri);
        }
        let coordinator =
            nodes.iter().find(|(role, _, _)| *role == Role::Coordinator).map(|(_, _, uri)| uri.clone()).unwrap_or_default();
        println!();
        println!("Point Presto clients at any coordinator, e.g. {coordinator}. Example:");
        println!(
            "  curl -s -X POST -H 'X-Presto-User: alice' --data \"SELECT * FROM synthetic(run_time => '1s', memory => '10MB', tasks => 2, rows => 4)\" {coordinator}/v1/statement"
        );
        println!("Press Ctrl-C to stop.");
        let all_stopped = async {
            for node in running {
                let _ = node.await;
            }
        };
        tokio::select! {
            biased;
            _ = signals.received(2) => Err(Signals::SECOND_SIGNAL.into()),
            _ = all_stopped => Ok(()),
        }
    }

    /// SIGINT (Ctrl-C) and SIGTERM, counted: the first asks for a graceful shutdown, the second
    /// for an immediate exit (an operator who does not want to wait for the grace period).
    #[derive(Clone)]
    struct Signals {
        received: tokio::sync::watch::Receiver<u32>,
    }

    impl Signals {
        const SECOND_SIGNAL: &'static str = "a second signal: stopped at once, without finishing running work";

        /// Starts listening for the process's signals.
        fn listen() -> Signals {
            let (count, received) = tokio::sync::watch::channel(0u32);
            fireball::runtime::spawn(async move {
                // Two are all that matter; after the second the process exits.
                for received in 1..=2u32 {
                    wait_for_shutdown_signal().await;
                    if received == 1 {
                        tracing::info!("signal received: shutting down gracefully (within shutdown.grace-period); send it again to stop at once");
                    } else {
                        tracing::warn!("second signal received: stopping at once, without finishing running work");
                    }
                    count.send_replace(received);
                }
            });
            Signals { received }
        }

        /// Returns once `count` signals have arrived.
        async fn received(&self, count: u32) {
            let mut received = self.received.clone();
            // The sender lives until two signals came; if it is gone, that many never will.
            if received.wait_for(|received| *received >= count).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    async fn wait_for_shutdown_signal() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut terminate) = signal(SignalKind::terminate()) {
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
