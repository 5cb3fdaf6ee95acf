//! Progress bars on long stages (`sync` files, `land` files, `render`
//! invoices, `publish` uploads and mails), drawn on stderr only when it is a
//! terminal and the logs are text: a person at a terminal sees the count
//! move; a scheduler's log (Airflow, cron, `--log-format json`) gets nothing
//! from them. `main` decides once with [`enable`].

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the bars on or off for the whole process.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// A bar of `len` steps for `stage`, counting `unit` (e.g. "files"); hidden
/// when bars are off. Finish it with `finish_and_clear` so the report that
/// follows starts on a clean line.
pub fn bar(
    stage: &'static str,
    len: u64,
    unit: impl Into<std::borrow::Cow<'static, str>>,
) -> ProgressBar {
    if !ENABLED.load(Ordering::Relaxed) || len == 0 {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{prefix:>8} [{bar:30}] {pos}/{len} {msg} ({elapsed}, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(stage)
        .with_message(unit);
    // Drawn at once, not at the first step: a slow first file shows too.
    bar.tick();
    bar
}

/// How long each step of a command took, logged at debug level
/// (`RUST_LOG=mvnobill::laps=debug`): where a run's time goes, for operations
/// and the benchmarks (docs/PERFORMANCE.md).
pub struct Laps {
    what: String,
    last: std::time::Instant,
}

impl Laps {
    /// Starts the clock for `what` (e.g. "rate 2026-10").
    pub fn new(what: String) -> Self {
        Laps {
            what,
            last: std::time::Instant::now(),
        }
    }

    /// Logs the time since the last step (or the start) as `step`'s.
    pub fn lap(&mut self, step: &str) {
        let now = std::time::Instant::now();
        tracing::debug!(target: "mvnobill::laps", "{}: {step} {} ms", self.what, (now - self.last).as_millis());
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_hidden() {
        enable(false);
        assert!(bar("land", 10, "files").is_hidden());
    }
}
