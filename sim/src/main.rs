//! `fireball-sim`: run scenario files against a simulated fireball cluster (use `ci/sim`, which
//! builds this binary with `--cfg madsim` first).
//!
//! - `run FILE… [--seed N | --seeds N] [--json] [--check-determinism]`
//! - `replay FILE --seed N [--trace out.jsonl]`
//! - `explore FILE --seeds N [--out DIR]`

#[cfg(not(madsim))]
fn main() {
    eprintln!("fireball-sim must be built with RUSTFLAGS=\"--cfg madsim\"; run it through ci/sim");
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(madsim)]
mod cli;
