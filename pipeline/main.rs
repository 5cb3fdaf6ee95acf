//! The `mvnobill` binary: parse the command line, run it, print the report
//! (text, or JSON with `--json`) on stdout, and exit 0 (1 when the report is
//! a verdict that failed: `rio check`, a piped `query` script); or print one
//! line on stderr and exit with 1. Logs go to stderr, as text or JSON lines
//! (`--log-format`; `RUST_LOG` sets the level); progress bars too, when
//! stderr is a terminal.

use std::io::IsTerminal;

use clap::Parser;
use mvnobill::cli::LogFormat;

fn main() -> std::process::ExitCode {
    let cli = mvnobill::cli::Cli::parse();
    let log_json = cli.log_format == LogFormat::Json;
    init_logs(log_json);
    // Progress bars for a person at a terminal, never in a scheduler's log.
    mvnobill::core::progress::enable(!log_json && std::io::stderr().is_terminal());
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mvnobill::app::execute(cli)) {
        Ok(report) => {
            let passed = report.passed();
            let text = if let Some(rows) = report.json_rows().filter(|_| json) {
                rows.to_string()
            } else if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => text,
                    Err(e) => {
                        eprintln!("error: cannot write the report as JSON: {e}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
            } else {
                report.to_string()
            };
            // A reader that stops early (`mvnobill query … | head`) closes
            // the pipe: the work is done, nothing to report.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: cannot write the report: {e}");
                    std::process::ExitCode::FAILURE
                }
                // `rio check` reports a failed verdict with exit 1.
                _ if !passed => std::process::ExitCode::FAILURE,
                _ => std::process::ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            let line = mvnobill::app::error_line(&e);
            if log_json {
                tracing::error!(error = %line, "mvnobill failed");
            } else {
                eprintln!("error: {line}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs on stderr: text (warnings and errors unless `RUST_LOG` says
/// otherwise), or one JSON object a line with the stage events too (`info`
/// by default: a stage started, finished with its `elapsed_ms`, or failed).
fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if json { "info" } else { "warn" }))
        // The FTP library logs each command at trace level, `PASS` with the
        // password: never shown, whatever RUST_LOG says (docs/RELIABILITY.md).
        .add_directive("suppaftp=off".parse().expect("a valid directive"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        // Colours for a terminal only, not in a log file.
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
