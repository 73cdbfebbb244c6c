//! The command line of `fireball-sim` (see `scenarios/README.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use fireball_sim::explore;
use fireball_sim::report;
use fireball_sim::run::{run, RunResult};
use fireball_sim::scenario::LoadedScenario;

#[derive(Parser)]
#[command(name = "ci/sim", about = "Run fireball scenarios in deterministic simulation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios and check them against their [expect]; exit 1 on any violation.
    Run {
        files: Vec<PathBuf>,
        /// Run this seed (default: the scenario's own).
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// Run this many seeds, from the scenario's seed (or --first-seed) up.
        #[arg(long)]
        seeds: Option<u64>,
        #[arg(long, requires = "seeds")]
        first_seed: Option<u64>,
        /// Machine-readable reports, one JSON object per run.
        #[arg(long)]
        json: bool,
        /// Run every seed twice and compare digests of the full event trace.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Run one scenario with one seed, deterministically; optionally write every event.
    Replay {
        file: PathBuf,
        #[arg(long)]
        seed: u64,
        /// Which `[[variant]]` of the scenario (required when it has variants).
        #[arg(long)]
        variant: Option<String>,
        /// Write the full event trace as JSON lines.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Random fault schedules on top of a scenario; a failing one is shrunk and saved.
    Explore {
        file: PathBuf,
        /// Which `[[variant]]` of the scenario (required when it has variants).
        #[arg(long)]
        variant: Option<String>,
        #[arg(long, default_value_t = 20)]
        seeds: u32,
        /// Where to write a minimal failing scenario (default: beside the input).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run { files, seed, seeds, first_seed, json, check_determinism } => {
            run_command(&files, seed, seeds, first_seed, json, check_determinism)
        }
        Command::Replay { file, variant, seed, trace } => replay_command(&file, variant.as_deref(), seed, trace.as_deref()),
        Command::Explore { file, variant, seeds, out } => explore_command(&file, variant.as_deref(), seeds, out),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("ci/sim: {error}");
            ExitCode::from(2)
        }
    }
}

fn run_command(
    files: &[PathBuf],
    seed: Option<u64>,
    seeds: Option<u64>,
    first_seed: Option<u64>,
    json: bool,
    check_determinism: bool,
) -> Result<bool, String> {
    if files.is_empty() {
        return Err("run needs at least one scenario file".into());
    }
    let mut scenarios: Vec<LoadedScenario> = Vec::new();
    for file in files {
        scenarios.extend(LoadedScenario::load(file)?.expand());
    }
    let total_runs: u64 = scenarios.len() as u64 * seeds.unwrap_or(1);
    let mut done = 0;
    let mut all_passed = true;
    for loaded in &scenarios {
        let first = first_seed.or(seed).unwrap_or(loaded.scenario.seed);
        for seed in first..first + seeds.unwrap_or(1) {
            let mut result = run(loaded, seed, None, false)?;
            if check_determinism {
                let again = run(loaded, seed, None, false)?;
                if again.digest != result.digest {
                    result.report.violations.push(format!(
                        "non-deterministic: two runs of seed {seed} gave trace digests {:016x} and {:016x}",
                        result.digest, again.digest
                    ));
                }
            }
            done += 1;
            if total_runs > 1 {
                eprintln!(
                    "[{done}/{total_runs}] {} seed {seed}: {} ({:.0}x real time)",
                    loaded.scenario.name,
                    if result.report.violations.is_empty() { "ok" } else { "FAILED" },
                    report::speed(&result)
                );
            }
            let passed = result.report.violations.is_empty();
            all_passed &= passed;
            if json {
                println!("{}", report::json(&result));
            } else if !passed || total_runs == 1 {
                print!("{}", report::text(&result));
            }
            if !passed {
                let line = format!("replay: {}", replay_command_line(loaded, seed));
                // Keep stdout pure JSON lines in --json mode.
                if json {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        }
    }
    if !json {
        println!("{done} runs, {}", if all_passed { "all passed" } else { "FAILURES above" });
    }
    Ok(all_passed)
}

fn replay_command_line(loaded: &LoadedScenario, seed: u64) -> String {
    let variant = loaded.variant.as_ref().map(|name| format!(" --variant {name}")).unwrap_or_default();
    format!("ci/sim replay {}{variant} --seed {seed} --trace /tmp/fireball-trace.jsonl", loaded.path.display())
}

fn replay_command(file: &Path, variant: Option<&str>, seed: u64, trace: Option<&Path>) -> Result<bool, String> {
    let loaded = LoadedScenario::load(file)?.select(variant)?;
    let result: RunResult = run(&loaded, seed, None, trace.is_some())?;
    print!("{}", report::text(&result));
    if let (Some(path), Some(jsonl)) = (trace, &result.trace_jsonl) {
        std::fs::write(path, jsonl).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        println!("trace: {} ({} events)", path.display(), jsonl.lines().count());
    }
    Ok(result.report.violations.is_empty())
}

fn explore_command(file: &Path, variant: Option<&str>, seeds: u32, out: Option<PathBuf>) -> Result<bool, String> {
    let loaded = LoadedScenario::load(file)?.select(variant)?;
    match explore::explore(&loaded, seeds, explore::SHRINK_ITERATIONS_DEFAULT)? {
        None => {
            println!("explored {seeds} random fault schedules on {}: no violation", loaded.scenario.name);
            Ok(true)
        }
        Some(found) => {
            let out = out.unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")).to_path_buf());
            let path = out.join(format!("{}-explored-{}.toml", loaded.scenario.name, found.seed));
            std::fs::write(&path, &found.scenario_toml).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
            println!("violation: {}", found.violations.join("; "));
            println!("minimal failing schedule ({} faults) written to {}", found.faults, path.display());
            let written = LoadedScenario { path, variant: None, ..loaded };
            println!("replay: {}", replay_command_line(&written, found.seed));
            Ok(false)
        }
    }
}
