//! The `mvnobill` binary: parse the command line, run it, print the report
//! (text, or JSON with `--json`) on stdout, and exit 0 (1 when the report is
//! a verdict that failed: `rio check`); or print one line on stderr and exit
//! 1. Logs go to stderr (`RUST_LOG` sets the level).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = mvnobill::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
                // The FTP library logs each command at trace level, `PASS`
                // with the password: never shown, whatever RUST_LOG says
                // (docs/RELIABILITY.md).
                .add_directive("suppaftp=off".parse().expect("a valid directive")),
        )
        .init();
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
            let text = if json {
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
            eprintln!("error: {}", mvnobill::app::one_line(&e.to_string()));
            std::process::ExitCode::FAILURE
        }
    }
}
