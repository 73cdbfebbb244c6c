//! `fireball cli`: a terminal client in the manner of presto-cli.
//!
//! `--execute SQL` or `--file F` runs the statements and exits (non-zero on the first failure);
//! without either it reads statements from standard input, each ended by `;`, with a prompt when
//! that is a terminal. While a query runs, a progress line (state, splits, rows, bytes, elapsed)
//! is kept on standard error when that is a terminal; Ctrl-C cancels the running query (`DELETE`
//! on its `nextUri`). Results print in the chosen [`format::OutputFormat`].

pub mod format;

use std::io::{BufRead, IsTerminal, Write};

use axum::http::Method;
use serde_json::Value;

use crate::protocol::QueryResults;
use crate::runtime::http_client::{HttpClient, Request};
use crate::runtime::sim_hooks::MessageKind;
pub use format::OutputFormat;

/// One request's bound; the server long-polls for at most a second, so this is generous.
const REQUEST_TIMEOUT_MS: u64 = 60_000;

#[derive(Clone, Debug)]
pub struct Options {
    pub server: String,
    pub user: String,
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub format: OutputFormat,
}

/// Why a statement did not print a result.
#[derive(Debug)]
pub enum Failure {
    /// The query failed on the server (its error is printed).
    Query(String),
    /// The user cancelled it.
    Cancelled,
    /// The server could not be reached or answered nonsense.
    Client(String),
}

/// Runs `statements` in order; stops at the first failure.
pub async fn run_statements(options: &Options, statements: &[String]) -> Result<(), Failure> {
    let client = HttpClient::new("fireball-cli", REQUEST_TIMEOUT_MS, 2);
    for statement in statements {
        run_one(&client, options, statement).await?;
    }
    Ok(())
}

/// Reads statements from standard input (each ended by `;`) and runs them one by one; a failed
/// statement is reported and the next one read, as in presto-cli's interactive mode.
pub async fn run_interactive(options: &Options) -> Result<(), Failure> {
    let client = HttpClient::new("fireball-cli", REQUEST_TIMEOUT_MS, 2);
    let interactive = std::io::stdin().is_terminal();
    let mut buffer = String::new();
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("{}", if buffer.trim().is_empty() { "fireball> " } else { "       -> " });
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|error| Failure::Client(format!("reading standard input: {error}")))?;
        buffer.push_str(&line);
        buffer.push('\n');
        let (complete, rest) = split_statements(&buffer);
        buffer = rest;
        for statement in complete {
            if matches!(statement.trim().to_ascii_lowercase().as_str(), "quit" | "exit") {
                return Ok(());
            }
            match run_one(&client, options, &statement).await {
                Ok(()) | Err(Failure::Query(_)) | Err(Failure::Cancelled) => {}
                Err(failure) => return Err(failure),
            }
        }
    }
    let last = buffer.trim();
    if !last.is_empty() {
        run_one(&client, options, last).await?;
    }
    Ok(())
}

/// Statements ended by `;` outside quotes, and what is left after the last one.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for character in text.chars() {
        match (quote, character) {
            (None, '\'' | '"') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (None, ';') => {
                if !current.trim().is_empty() {
                    statements.push(current.trim().to_string());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    (statements, current)
}

async fn run_one(client: &HttpClient, options: &Options, sql: &str) -> Result<(), Failure> {
    let mut request = Request::new(Method::POST, format!("{}/v1/statement", options.server.trim_end_matches('/')), MessageKind::Client)
        .text(sql.to_string())
        .header("X-Presto-User", options.user.clone())
        .header("X-Presto-Source", "fireball-cli");
    if let Some(catalog) = &options.catalog {
        request = request.header("X-Presto-Catalog", catalog.clone());
    }
    if let Some(schema) = &options.schema {
        request = request.header("X-Presto-Schema", schema.clone());
    }
    let mut page: QueryResults = client.send_json(request).await.map_err(|error| Failure::Client(error.to_string()))?;
    let progress = std::io::stderr().is_terminal();
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let mut stdout = std::io::stdout().lock();
    loop {
        if names.is_empty() {
            if let Some(columns) = &page.columns {
                names = columns.iter().map(|column| column.name.clone()).collect();
            }
        }
        if let Some(data) = page.data.take() {
            if options.format == OutputFormat::Aligned {
                rows.extend(data);
            } else {
                // Streaming formats print each page as it comes: nothing is held.
                let text = match options.format {
                    OutputFormat::Csv => format::csv(&data),
                    OutputFormat::Tsv => format::tsv(&data),
                    _ => format::json(&names, &data),
                };
                let _ = stdout.write_all(text.as_bytes());
            }
        }
        if progress {
            let stats = &page.stats;
            eprint!(
                "\r\x1b[K{} splits {}/{} rows {} bytes {} elapsed {:.1}s",
                stats.state,
                stats.completed_splits,
                stats.total_splits,
                stats.processed_rows,
                crate::config::format_data_size(stats.processed_bytes),
                stats.elapsed_time_millis as f64 / 1000.0
            );
        }
        let Some(next_uri) = page.next_uri.clone() else { break };
        let next = client.send_json::<QueryResults>(Request::new(Method::GET, &next_uri, MessageKind::Client));
        page = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => {
                let _ = client.send(Request::new(Method::DELETE, &next_uri, MessageKind::Client)).await;
                if progress {
                    eprint!("\r\x1b[K");
                }
                eprintln!("Query {} was cancelled", page.id);
                return Err(Failure::Cancelled);
            }
            next = next => next.map_err(|error| Failure::Client(error.to_string()))?,
        };
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    if let Some(error) = &page.error {
        // Presto's messages carry their own `line L:C:` prefix where there is a location.
        let message = format!("Query {} failed: {}", page.id, error.message);
        eprintln!("{message}");
        return Err(Failure::Query(message));
    }
    if options.format == OutputFormat::Aligned && !names.is_empty() {
        let _ = stdout.write_all(format::aligned(&names, &rows).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes() {
        let (statements, rest) = split_statements("SELECT ';' AS x; SELECT 2;\nSELECT");
        assert_eq!(statements, ["SELECT ';' AS x", "SELECT 2"]);
        assert_eq!(rest.trim(), "SELECT");
    }
}
