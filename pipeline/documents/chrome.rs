//! PDF printer of the invoice `render` stage: one headless Chromium kept warm
//! and a small pool of tabs, driven over the DevTools protocol
//! (`headless_chrome`).
//!
//! - Chromium is launched once per [`Printer`], headless, without sandbox
//!   (CI runs as root), on a fresh temporary profile that is removed when the
//!   printer is dropped, with the flags that keep it off the network
//!   (background networking, component updates, sync, QUIC, pings, DNS
//!   prefetch; and a dead proxy, loopback included, with no DNS at all).
//! - Every tab has JavaScript off (`Emulation.setScriptExecutionDisabled`, and
//!   `scriptEnabled=false` in the Blink settings of the whole browser; each
//!   one alone was checked to be enough) and every network request failed
//!   (`Fetch` domain intercepting `*` and answering `BlockedByClient`): the
//!   page gets only its own inlined assets. `data:` URIs are not network
//!   requests, so inlined images still show. `Fetch` does not see everything
//!   (a `<link rel=prefetch>` is fetched by the browser process, outside the
//!   tab): the dead proxy catches that.
//! - The HTML is given as a string and put into the tab's main frame with
//!   `Page.setDocumentContent` (a `document.open/write/close` done by
//!   Chromium): no navigation, no URL, no request, and no page script needed.
//! - The printer waits for the `load` lifecycle event of that new document
//!   (its images loaded), reported by Chromium itself; then `Page.printToPDF`
//!   without header or footer, backgrounds printed, the page size and margins
//!   taken from the template's CSS `@page`, no scaling.
//! - If Chromium dies (process killed, connection lost, tab crashed or hung),
//!   the printer relaunches it and prints the pages in flight again, at most
//!   two retries a page, and counts the restarts.
//!
//! Speed: the published `headless_chrome`'s WebSocket reader holds the
//! connection's lock while it waits (reads of up to 100 ms), so every
//! DevTools call waited up to 200 ms; the vendored copy waits 2 ms
//! (`vendor/README.md`). Chromium prints untagged PDFs (a tagged one costs
//! twice the CPU), and a tab is replaced every [`RECYCLE_AFTER`] pages, since
//! its renderer keeps memory from every document.

use crate::core::text::one_line;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use headless_chrome::browser::tab::{RequestPausedDecision, Tab};
use headless_chrome::browser::ConnectionClosed;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Emulation, Fetch, Network, Page};
use headless_chrome::types::PrintToPdfOptions;
use headless_chrome::{Browser, LaunchOptions};

/// Environment variable naming the Chromium binary to use.
pub const CHROMIUM_ENV: &str = "MVNOBILL_CHROMIUM";

/// Where Debian's `chromium` package puts the browser.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// Names looked up in `PATH` when neither the option, the environment
/// variable nor [`DEFAULT_CHROMIUM`] give a browser.
const PATH_NAMES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// How long the connection to Chromium may stay silent before
/// `headless_chrome` drops it: long, so that the browser is kept between
/// invoices. It is also that library's time limit for one DevTools call, but
/// the printer's own watchdog, [`PAGE_TIMEOUT`], cuts in long before. A
/// printer left idle longer than [`RELAUNCH_AFTER_IDLE`] is relaunched before
/// its next print, so the timeout never bites.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const RELAUNCH_AFTER_IDLE: Duration = Duration::from_secs(55 * 60);

/// How long a page may take to load (its inline images included); past it
/// the page failed, the tab is still usable.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a page may stay on a tab, whatever it waits for; past it
/// Chromium is deemed hung, killed and relaunched. A crashed tab is noticed
/// at once (its DevTools calls never return): same treatment.
const PAGE_TIMEOUT: Duration = Duration::from_secs(90);

/// How often the dispatching thread looks for crashed tabs and hung pages.
const WATCHDOG_TICK: Duration = Duration::from_millis(200);

/// A4 in inches, the paper when a page's CSS gives no `@page` size.
const A4_INCHES: (f64, f64) = (210.0 / 25.4, 297.0 / 25.4);

/// Pages a tab prints before it is replaced by a fresh one: a renderer
/// grew by about 15 MB a multi-page invoice, past 1 GB a tab after 70 of
/// them (docs/PERFORMANCE.md).
pub const RECYCLE_AFTER: usize = 50;

/// Attempts at one page: the first one and two retries.
const MAX_ATTEMPTS: u32 = 3;

/// Failures that are not a crash tolerated for one page before giving up.
const MAX_PAGE_FAILURES: u32 = 2;

/// Chromium flags added to `headless_chrome`'s defaults (which already carry
/// `--disable-background-networking`, `--disable-sync`, `--disable-extensions`,
/// `--disable-default-apps`, `--no-first-run`; repeated here so the list is
/// complete whatever the library's defaults become).
const LAUNCH_ARGS: [&str; 15] = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--blink-settings=scriptEnabled=false",
    "--no-pings",
    "--dns-prefetch-disable",
    // Whatever would still try to reach the network goes to a dead proxy
    // (loopback included) and finds no DNS.
    "--proxy-server=http://255.255.255.255:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
];

/// Errors of the PDF printer; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ChromeError {
    #[error(
        "chromium not found ({looked}): install it (`apt-get install chromium` on Debian) \
         or set MVNOBILL_CHROMIUM to its path"
    )]
    NotFound { looked: String },
    #[error("chromium launch failed ({}): {reason}", .path.display())]
    Launch { path: PathBuf, reason: String },
    #[error("print failed for {key}: {reason}")]
    Print { key: String, reason: String },
    #[error("the PDF of {key} was refused: {reason}")]
    Output { key: String, reason: String },
}

/// How to launch the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterOptions {
    /// The Chromium binary; `None`: `$MVNOBILL_CHROMIUM`, else
    /// `/usr/bin/chromium`, else `chromium`, `chromium-browser` or
    /// `google-chrome` found in `PATH`.
    pub chromium: Option<PathBuf>,
    /// How many tabs print in parallel (at least one).
    pub tabs: usize,
    /// Pages a tab prints before it is replaced by a fresh one (0: never).
    /// A Chromium renderer keeps memory from every document it printed.
    pub recycle_after: usize,
    /// Chromium's `--single-process`: pages and the PDF compositor run in
    /// the browser process. Chromium then starts no helper process per
    /// printed document (it does otherwise): about a quarter less CPU a PDF,
    /// but the pages are laid out on one thread and a crashed page takes the
    /// browser with it (relaunched, as any crash).
    pub single_process: bool,
}

impl Default for PrinterOptions {
    fn default() -> Self {
        PrinterOptions {
            chromium: None,
            tabs: 2,
            recycle_after: RECYCLE_AFTER,
            single_process: false,
        }
    }
}

/// What a [`Printer::print_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrintReport {
    /// Pages printed and handed over.
    pub pages: usize,
    /// Times Chromium was relaunched after a crash.
    pub restarts: usize,
    /// Tabs replaced by fresh ones (see [`PrinterOptions::recycle_after`]).
    pub tabs_replaced: usize,
}

/// The Chromium binary the options name (see [`PrinterOptions::chromium`]).
pub fn chromium_path(options: &PrinterOptions) -> Result<PathBuf, ChromeError> {
    if let Some(path) = &options.chromium {
        return if is_executable(path) {
            Ok(path.clone())
        } else {
            Err(ChromeError::NotFound {
                looked: format!("{} is not an executable file", path.display()),
            })
        };
    }
    if let Some(value) = std::env::var_os(CHROMIUM_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(ChromeError::NotFound {
                looked: format!(
                    "{CHROMIUM_ENV}={} is not an executable file",
                    path.display()
                ),
            })
        };
    }
    let default = Path::new(DEFAULT_CHROMIUM);
    if is_executable(default) {
        return Ok(default.to_path_buf());
    }
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| PATH_NAMES.iter().map(move |name| dir.join(name)))
            .find(|candidate| is_executable(candidate))
    });
    in_path.ok_or_else(|| ChromeError::NotFound {
        looked: format!(
            "no {CHROMIUM_ENV}, no {DEFAULT_CHROMIUM}, none of {} in PATH",
            PATH_NAMES.join(", ")
        ),
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// One warm Chromium and its pool of tabs.
pub struct Printer {
    chromium: PathBuf,
    tabs: usize,
    recycle_after: usize,
    single_process: bool,
    session: Option<Session>,
    last_used: Instant,
    restarts: usize,
    /// Requests the pages tried and that were failed, all sessions together.
    blocked: Arc<AtomicUsize>,
}

impl Printer {
    /// Finds and launches Chromium, and opens the tabs.
    pub fn launch(options: &PrinterOptions) -> Result<Printer, ChromeError> {
        let chromium = chromium_path(options)?;
        let tabs = options.tabs.max(1);
        let blocked = Arc::new(AtomicUsize::new(0));
        let session = Session::launch(&chromium, tabs, &blocked, options.single_process)?;
        Ok(Printer {
            chromium,
            tabs,
            recycle_after: options.recycle_after,
            single_process: options.single_process,
            session: Some(session),
            last_used: Instant::now(),
            restarts: 0,
            blocked,
        })
    }

    /// The process id of the running Chromium, if any.
    pub fn browser_pid(&self) -> Option<u32> {
        self.session.as_ref().and_then(|session| session.pid)
    }

    /// Times Chromium was relaunched after a crash since the launch.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// Network requests the pages attempted since the launch, all failed.
    /// Not zero: a template refers to something it does not inline.
    pub fn blocked_requests(&self) -> usize {
        self.blocked.load(Ordering::SeqCst)
    }

    /// Prints one page.
    pub fn print(&mut self, html: &str) -> Result<Vec<u8>, ChromeError> {
        let mut pdf = None;
        self.print_all(
            std::iter::once(("page".to_string(), html.to_string())),
            |_, bytes| {
                pdf = Some(bytes);
                Ok(())
            },
        )?;
        pdf.ok_or_else(|| ChromeError::Print {
            key: "page".to_string(),
            reason: "no PDF came back".to_string(),
        })
    }

    /// Prints every `(key, html)` page over the pool of tabs, handing each
    /// PDF to `on_pdf` with its key as soon as it is printed (not in the
    /// order of `pages`). The pages are pulled from the iterator only when a
    /// tab is free, so memory stays bounded whatever their number; both the
    /// iterator and `on_pdf` run on the calling thread.
    ///
    /// A crash of Chromium relaunches it and prints the pages in flight
    /// again. Stops at the first page that cannot be printed or whose PDF
    /// `on_pdf` refuses.
    pub fn print_all<I, F>(&mut self, pages: I, mut on_pdf: F) -> Result<PrintReport, ChromeError>
    where
        I: IntoIterator<Item = (String, String)>,
        F: FnMut(&str, Vec<u8>) -> Result<(), String>,
    {
        let mut source = pages.into_iter();
        let mut retry: VecDeque<Job> = VecDeque::new();
        let mut report = PrintReport::default();
        if self.last_used.elapsed() >= RELAUNCH_AFTER_IDLE {
            // The connection may have timed out: start afresh (not a crash).
            self.session = None;
        }
        loop {
            let session = match self.session.take() {
                Some(session) => session,
                None => Session::launch(
                    &self.chromium,
                    self.tabs,
                    &self.blocked,
                    self.single_process,
                )?,
            };
            let round = session.round(
                &mut source,
                &mut retry,
                &mut on_pdf,
                &mut report,
                self.recycle_after,
            );
            self.last_used = Instant::now();
            match round {
                Round::Finished => {
                    self.session = Some(session);
                    return Ok(report);
                }
                Round::Failed { error, crashed } => {
                    if !crashed {
                        self.session = Some(session);
                    }
                    return Err(error);
                }
                Round::Crashed => {
                    // Dropping the session kills what is left of Chromium
                    // and removes its profile.
                    drop(session);
                    report.restarts += 1;
                    self.restarts += 1;
                }
            }
        }
    }
}

/// A page to print and what became of its attempts.
struct Job {
    key: String,
    html: String,
    attempts: u32,
    failures: u32,
    last_error: String,
}

/// How one round of printing on one Chromium ended.
enum Round {
    Finished,
    Crashed,
    /// A page failed or its PDF was refused; `crashed`: Chromium too.
    Failed {
        error: ChromeError,
        crashed: bool,
    },
}

/// Why a page did not print on a tab.
struct Failure {
    /// The browser or the tab is gone: relaunch and retry.
    crash: bool,
    reason: String,
}

/// What a worker sends back for one job.
struct Done {
    worker: usize,
    job: Job,
    result: Result<Vec<u8>, Failure>,
}

/// One launched Chromium and its tabs.
struct Session {
    /// `None` once killed.
    browser: Mutex<Option<Browser>>,
    pid: Option<u32>,
    /// One slot a worker; its tab is replaced every [`RECYCLE_AFTER`]
    /// pages.
    tabs: Vec<Mutex<Arc<PrintTab>>>,
    /// Dropped after the browser (fields drop in order).
    _profile: Profile,
}

/// A fresh, private Chromium profile directory, removed on drop.
///
/// Made here rather than left to `headless_chrome`, whose removal races with
/// Chromium's helper processes still writing into it (GPU caches) after the
/// browser process is gone: here the removal is retried a few times.
struct Profile(PathBuf);

impl Profile {
    fn create() -> std::io::Result<Profile> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "mvnobill-chromium-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        Ok(Profile(dir))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        for _ in 0..20 {
            match std::fs::remove_dir_all(&self.0) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => return,
            }
        }
    }
}

impl Session {
    fn launch(
        chromium: &Path,
        tabs: usize,
        blocked: &Arc<AtomicUsize>,
        single_process: bool,
    ) -> Result<Session, ChromeError> {
        let launch_failed = |reason: String| ChromeError::Launch {
            path: chromium.to_path_buf(),
            reason: one_line(&reason),
        };
        let profile =
            Profile::create().map_err(|e| launch_failed(format!("making its profile: {e}")))?;
        let options = LaunchOptions {
            headless: true,
            sandbox: false,
            enable_gpu: false,
            ignore_certificate_errors: false,
            path: Some(chromium.to_path_buf()),
            user_data_dir: Some(profile.0.clone()),
            idle_browser_timeout: IDLE_TIMEOUT,
            args: LAUNCH_ARGS
                .iter()
                .copied()
                .chain(single_process.then_some("--single-process"))
                .map(OsStr::new)
                .collect(),
            ..LaunchOptions::default()
        };
        let browser = Browser::new(options).map_err(|e| launch_failed(format!("{e:#}")))?;
        let mut opened = Vec::with_capacity(tabs);
        for _ in 0..tabs {
            let tab = PrintTab::open(&browser, Arc::clone(blocked))
                .map_err(|e| launch_failed(format!("opening a tab: {e}")))?;
            opened.push(Mutex::new(Arc::new(tab)));
        }
        Ok(Session {
            pid: browser.get_process_id(),
            browser: Mutex::new(Some(browser)),
            tabs: opened,
            _profile: profile,
        })
    }

    fn browser(&self) -> Option<Browser> {
        self.browser
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces a slot's tab by a new one and closes the old one (see
    /// [`PrinterOptions::recycle_after`]). False (the old tab kept) if no new
    /// tab could be opened.
    fn recycle(&self, slot: &Mutex<Arc<PrintTab>>, old: &Arc<PrintTab>) -> bool {
        let Some(browser) = self.browser() else {
            return false;
        };
        match PrintTab::open(&browser, Arc::clone(&old.blocked)) {
            Ok(new) => {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                let _ = old.tab.close(false);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the browser still answers.
    fn alive(&self) -> bool {
        self.browser()
            .is_some_and(|browser| browser.get_version().is_ok())
    }

    /// Kills Chromium, then drops it (which reaps the process and removes
    /// its profile): the DevTools calls still waiting fail at once with
    /// `ConnectionClosed`, and the tabs' waits end.
    fn kill(&self) {
        let browser = self
            .browser
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let (Some(_), Some(pid)) = (&browser, self.pid) {
            // A hung browser would not answer the `Browser.close` sent on
            // drop: SIGKILL first. The child is not reaped before the drop,
            // so the pid is still this Chromium's.
            kill_process(pid);
        }
        drop(browser);
        for slot in &self.tabs {
            slot_tab(slot).watch.mark_crashed();
        }
    }

    /// Prints pages until there are none left, a page fails or the browser
    /// crashes. The calling thread pulls the pages and hands the PDFs over;
    /// one worker thread a tab prints.
    fn round<I, F>(
        &self,
        source: &mut I,
        retry: &mut VecDeque<Job>,
        on_pdf: &mut F,
        report: &mut PrintReport,
        recycle_after: usize,
    ) -> Round
    where
        I: Iterator<Item = (String, String)>,
        F: FnMut(&str, Vec<u8>) -> Result<(), String>,
    {
        let replaced = AtomicUsize::new(0);
        let round = std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            let mut workers = Vec::with_capacity(self.tabs.len());
            for (worker, slot) in self.tabs.iter().enumerate() {
                let (job_tx, job_rx) = mpsc::channel::<Job>();
                let done_tx = done_tx.clone();
                let replaced = &replaced;
                scope.spawn(move || {
                    let mut printed = 0usize;
                    for job in job_rx {
                        let tab = slot_tab(slot);
                        // headless_chrome has its own unwraps: a panic there
                        // is a failed page on a browser not to be trusted.
                        let result =
                            std::panic::catch_unwind(AssertUnwindSafe(|| tab.print(&job.html)))
                                .unwrap_or_else(|_| {
                                    Err(Failure {
                                        crash: true,
                                        reason: "headless_chrome panicked".to_string(),
                                    })
                                });
                        printed += 1;
                        if result.is_ok()
                            && recycle_after > 0
                            && printed >= recycle_after
                            && self.recycle(slot, &tab)
                        {
                            printed = 0;
                            replaced.fetch_add(1, Ordering::SeqCst);
                        }
                        if done_tx
                            .send(Done {
                                worker,
                                job,
                                result,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                workers.push(job_tx);
            }
            drop(done_tx);

            let mut idle: Vec<usize> = (0..workers.len()).rev().collect();
            let mut started: Vec<Option<Instant>> = vec![None; workers.len()];
            let mut in_flight = 0usize;
            let mut crashed = false;
            let mut failed: Option<ChromeError> = None;
            loop {
                while !crashed && failed.is_none() {
                    let Some(worker) = idle.pop() else { break };
                    let job = match retry.pop_front() {
                        Some(job) => job,
                        None => match source.next() {
                            Some((key, html)) => Job {
                                key,
                                html,
                                attempts: 0,
                                failures: 0,
                                last_error: String::new(),
                            },
                            None => {
                                idle.push(worker);
                                break;
                            }
                        },
                    };
                    match workers[worker].send(job) {
                        Ok(()) => {
                            in_flight += 1;
                            started[worker] = Some(Instant::now());
                        }
                        Err(mpsc::SendError(job)) => {
                            // The worker is gone (it does not panic; be safe).
                            retry.push_front(job);
                            crashed = true;
                        }
                    }
                }
                if in_flight == 0 {
                    break;
                }
                let done = match done_rx.recv_timeout(WATCHDOG_TICK) {
                    Ok(done) => done,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let tab_crashed =
                            self.tabs.iter().any(|slot| slot_tab(slot).watch.crashed());
                        let hung = started
                            .iter()
                            .flatten()
                            .any(|since| since.elapsed() > PAGE_TIMEOUT);
                        if tab_crashed || hung {
                            // Calls to a crashed or hung tab never return:
                            // close Chromium so that they fail now.
                            crashed = true;
                            self.kill();
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        crashed = true;
                        break;
                    }
                };
                in_flight -= 1;
                idle.push(done.worker);
                started[done.worker] = None;
                let mut job = done.job;
                match done.result {
                    Ok(pdf) => {
                        if failed.is_some() {
                            continue;
                        }
                        match on_pdf(&job.key, pdf) {
                            Ok(()) => report.pages += 1,
                            Err(reason) => {
                                failed = Some(ChromeError::Output {
                                    key: job.key,
                                    reason: one_line(&reason),
                                })
                            }
                        }
                    }
                    Err(failure) => {
                        job.attempts += 1;
                        job.last_error = failure.reason;
                        let crash = failure.crash || crashed || !self.alive();
                        if crash {
                            crashed = true;
                        } else {
                            job.failures += 1;
                        }
                        if failed.is_some() {
                            continue;
                        }
                        if job.failures >= MAX_PAGE_FAILURES || job.attempts >= MAX_ATTEMPTS {
                            let reason = if crash {
                                format!(
                                    "chromium crashed or hung {} times while printing it; last: {}",
                                    job.attempts, job.last_error
                                )
                            } else {
                                job.last_error
                            };
                            failed = Some(ChromeError::Print {
                                key: job.key,
                                reason: one_line(&reason),
                            });
                        } else {
                            retry.push_front(job);
                        }
                    }
                }
            }
            drop(workers);
            match failed {
                Some(error) => Round::Failed { error, crashed },
                None if crashed => Round::Crashed,
                None => Round::Finished,
            }
        });
        report.tabs_replaced += replaced.into_inner();
        round
    }
}

/// Load and crash news of one tab, fed by its DevTools events.
#[derive(Default)]
struct Watch {
    state: Mutex<WatchState>,
    changed: Condvar,
}

#[derive(Default)]
struct WatchState {
    /// Documents started in the main frame (`init` lifecycle events).
    documents: u64,
    /// The latest document of the main frame has fired `load`.
    loaded: bool,
    /// The tab's renderer crashed, or Chromium was killed.
    crashed: bool,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, WatchState> {
        // A poisoned lock only means a listener panicked mid-update of two
        // plain fields: the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_event(&self, frame_id: &str, event: &Event) {
        match event {
            Event::PageLifecycleEvent(e) if e.params.frame_id == frame_id => {
                let mut state = self.lock();
                match e.params.name.as_str() {
                    "init" => {
                        state.documents += 1;
                        state.loaded = false;
                    }
                    "load" => state.loaded = true,
                    _ => return,
                }
                drop(state);
                self.changed.notify_all();
            }
            Event::InspectorTargetCrashed(_) => self.mark_crashed(),
            _ => {}
        }
    }

    fn mark_crashed(&self) {
        self.lock().crashed = true;
        self.changed.notify_all();
    }

    fn documents(&self) -> u64 {
        self.lock().documents
    }

    fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Waits until a document after the `before`-th one has loaded (events
    /// come in order: a `load` after that document's `init` is its own).
    fn wait_load(&self, before: u64, timeout: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if state.crashed {
                return Err(Failure {
                    crash: true,
                    reason: "the tab crashed or chromium was stopped".to_string(),
                });
            }
            if state.documents > before && state.loaded {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure {
                    crash: false,
                    reason: format!("the page did not load within {} s", timeout.as_secs()),
                });
            }
            state = match self.changed.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// The tab of a worker's slot, for one page (the slot's lock is not held
/// while printing, so that the watchdog can mark the tab crashed).
fn slot_tab(slot: &Mutex<Arc<PrintTab>>) -> Arc<PrintTab> {
    Arc::clone(&slot.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A tab set up for printing: scripts off, network blocked.
struct PrintTab {
    tab: Arc<Tab>,
    frame_id: String,
    watch: Arc<Watch>,
    /// The count of blocked requests, shared by the printer's tabs.
    blocked: Arc<AtomicUsize>,
}

impl PrintTab {
    fn open(browser: &Browser, blocked: Arc<AtomicUsize>) -> Result<PrintTab, String> {
        let tab = browser.new_tab().map_err(|e| format!("{e:#}"))?;
        let counter = Arc::clone(&blocked);
        tab.enable_request_interception(Arc::new(
            move |_transport, _session, paused: Fetch::events::RequestPausedEvent| {
                blocked.fetch_add(1, Ordering::SeqCst);
                RequestPausedDecision::Fail(Fetch::FailRequest {
                    request_id: paused.params.request_id,
                    error_reason: Network::ErrorReason::BlockedByClient,
                })
            },
        ))
        .map_err(|e| format!("{e:#}"))?;
        let every_request = Fetch::RequestPattern {
            url_pattern: Some("*".to_string()),
            resource_Type: None,
            request_stage: None,
        };
        tab.enable_fetch(Some(&[every_request]), Some(false))
            .map_err(|e| format!("blocking the network: {e:#}"))?;
        tab.call_method(Emulation::SetScriptExecutionDisabled { value: true })
            .map_err(|e| format!("disabling JavaScript: {e:#}"))?;
        let frame_id = tab
            .call_method(Page::GetFrameTree(None))
            .map_err(|e| format!("{e:#}"))?
            .frame_tree
            .frame
            .id;
        let watch = Arc::new(Watch::default());
        let listener = Arc::clone(&watch);
        let main_frame = frame_id.clone();
        tab.add_event_listener(Arc::new(move |event: &Event| {
            listener.on_event(&main_frame, event)
        }))
        .map_err(|e| format!("{e:#}"))?;
        Ok(PrintTab {
            tab,
            frame_id,
            watch,
            blocked: counter,
        })
    }

    fn failure(
        &self,
        what: &str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) -> Failure {
        Failure {
            crash: error.is::<ConnectionClosed>() || self.watch.crashed(),
            reason: format!("{what}: {error}"),
        }
    }

    /// Loads the HTML into the tab, waits for it and prints it.
    fn print(&self, html: &str) -> Result<Vec<u8>, Failure> {
        if self.watch.crashed() {
            return Err(Failure {
                crash: true,
                reason: "the tab crashed".to_string(),
            });
        }
        let before = self.watch.documents();
        self.tab
            .call_method(Page::SetDocumentContent {
                frame_id: self.frame_id.clone(),
                html: html.to_string(),
            })
            .map_err(|e| self.failure("loading the HTML", &*e))?;
        self.watch.wait_load(before, LOAD_TIMEOUT)?;
        let options = PrintToPdfOptions {
            display_header_footer: Some(false),
            print_background: Some(true),
            // The template's `@page` gives size and margins; A4 (in inches)
            // only if it says nothing.
            prefer_css_page_size: Some(true),
            paper_width: Some(A4_INCHES.0),
            paper_height: Some(A4_INCHES.1),
            // No structure tree: Chromium's tagged PDF doubles the CPU of a
            // page and multiplies its size by 12 (docs/DOCUMENTS.md).
            generate_tagged_pdf: Some(false),
            ..PrintToPdfOptions::default()
        };
        self.tab
            .print_to_pdf(Some(options))
            .map_err(|e| self.failure("printing", &*e))
    }
}

/// Sends SIGKILL to a process (through the shell's `kill`: no libc binding
/// at hand). Best effort: dropping the `Browser` kills it too, only later.
fn kill_process(pid: u32) {
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -9 {pid}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::sync::atomic::AtomicBool;

    /// The tests that launch Chromium run one at a time (2 cores in CI).
    pub(crate) static ONE_CHROMIUM_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn printer(tabs: usize) -> (MutexGuard<'static, ()>, Printer) {
        let guard = ONE_CHROMIUM_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let options = PrinterOptions {
            chromium: None,
            tabs,
            // Every 4 pages, so that the tests replace tabs too.
            recycle_after: 4,
            ..PrinterOptions::default()
        };
        let printer = Printer::launch(&options).expect("launch chromium");
        (guard, printer)
    }

    /// An invoice-like page: A4 and margins from the CSS, as the template does.
    fn page(body: &str) -> String {
        format!(
            "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Facture</title>\
             <style>@page {{ size: A4; margin: 15mm 12mm }} body {{ font-family: sans-serif }}</style>\
             </head><body>{body}</body></html>"
        )
    }

    fn pdftotext(pdf: &[u8]) -> String {
        let mut child = Command::new("pdftotext")
            .args(["-", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run pdftotext (apt-get install poppler-utils)");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(pdf).expect("feed pdftotext");
        drop(stdin);
        let output = child.wait_with_output().expect("pdftotext output");
        assert!(output.status.success(), "pdftotext failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A poppler tool's output on a PDF (written to a temporary file).
    /// A poppler tool's output on a PDF's bytes (pdftotext writes to stdout).
    pub(crate) fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(pdf).expect("write pdf");
        let output = Command::new(tool)
            .args(args)
            .arg(file.path())
            .args(if tool == "pdftotext" { &["-"][..] } else { &[] })
            .output()
            .unwrap_or_else(|e| panic!("run {tool} (apt-get install poppler-utils): {e}"));
        assert!(output.status.success(), "{tool} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn pdfinfo(pdf: &[u8]) -> String {
        poppler("pdfinfo", &[], pdf)
    }

    fn pdfimages_list(pdf: &[u8]) -> String {
        poppler("pdfimages", &["-list"], pdf)
    }

    /// A valid RGB PNG: a gradient.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend_from_slice(&[
                    (x * 255 / width) as u8,
                    (y * 255 / height) as u8,
                    0x80,
                ]);
            }
        }
        let mut bytes = Vec::new();
        let mut encoder = ::png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(::png::ColorType::Rgb);
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("the PNG header");
        writer.write_image_data(&pixels).expect("the PNG's pixels");
        writer.finish().expect("the PNG's end");
        bytes
    }

    #[test]
    fn prints_french_text() {
        let (_one, mut printer) = printer(1);
        let html =
            page("<h1>Facture n° EXM-2026-000001 — 1 234,56 €</h1><p>Échéance : 15/02/2026</p>");
        let pdf = printer.print(&html).expect("print");
        assert!(pdf.starts_with(b"%PDF"), "not a PDF");
        let text = pdftotext(&pdf);
        assert!(
            text.contains("Facture n° EXM-2026-000001 — 1 234,56 €"),
            "text not found in: {text}"
        );
        assert!(text.contains("Échéance : 15/02/2026"), "{text}");
        // One A4 page, as the CSS says; and the CSS is what decides.
        let info = pdfinfo(&pdf);
        assert!(
            info.lines()
                .any(|l| l.starts_with("Pages:") && l.ends_with(" 1")),
            "{info}"
        );
        assert!(info.contains("(A4)"), "{info}");
        let a5 = page("<style>@page { size: A5 }</style><p>A5</p>");
        let info = pdfinfo(&printer.print(&a5).expect("print A5"));
        assert!(info.contains("(A5)"), "{info}");

        // The temporary profile goes with the printer.
        let profile = printer
            .session
            .as_ref()
            .expect("session")
            ._profile
            .0
            .clone();
        assert!(profile.is_dir());
        drop(printer);
        assert!(!profile.exists(), "{} left behind", profile.display());
    }

    #[test]
    fn blocks_every_network_request() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if listener.accept().is_ok() {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let base = format!("http://127.0.0.1:{port}");
        let html = page(&format!(
            "<link rel=stylesheet href=\"{base}/x.css\">\
             <link rel=prefetch href=\"{base}/prefetch\">\
             <p style=\"background-image: url({base}/bg.png)\">Réseau coupé</p>\
             <img src=\"{base}/x.png\">\
             <iframe src=\"{base}/frame.html\"></iframe>\
             <script src=\"{base}/x.js\"></script>"
        ));
        let (_one, mut printer) = printer(1);
        let pdf = printer.print(&html).expect("print");
        // Let anything late (prefetch) have its chance.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        server.join().expect("server thread");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "Chromium reached the network"
        );
        assert!(pdftotext(&pdf).contains("Réseau coupé"));
        // The requests were failed by the tab itself (Fetch), not merely lost.
        let blocked = printer.blocked_requests();
        assert!(blocked >= 3, "only {blocked} requests went through Fetch");
    }

    #[test]
    fn javascript_is_off() {
        let (_one, mut printer) = printer(1);
        let html = page(
            "<p id=p>STATIC</p>\
             <script>document.getElementById('p').textContent='SCRIPTED'</script>\
             <img src=\"data:,x\" onerror=\"document.body.textContent='HANDLER'\">",
        );
        let text = pdftotext(&printer.print(&html).expect("print"));
        assert!(text.contains("STATIC"), "{text}");
        assert!(!text.contains("SCRIPTED"), "{text}");
        assert!(!text.contains("HANDLER"), "{text}");
    }

    #[test]
    fn inline_png_is_printed() {
        let uri = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png(37, 23))
        );
        let html = page(&format!(
            "<p>Logo</p><img src=\"{uri}\" style=\"width: 74px\">"
        ));
        let (_one, mut printer) = printer(1);
        let pdf = printer.print(&html).expect("print");
        let list = pdfimages_list(&pdf);
        let found = list.lines().skip(2).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 4 && fields[2] == "image" && fields[3] == "37" && fields[4] == "23"
        });
        assert!(found, "the 37x23 image is not in the PDF:\n{list}");
    }

    #[test]
    fn relaunches_after_a_crash() {
        let (_one, mut printer) = printer(2);
        let first = printer
            .print(&page("<p>avant</p>"))
            .expect("print before the crash");
        assert!(first.starts_with(b"%PDF"));
        let pid = printer.browser_pid().expect("pid");
        let killed = Command::new("sh")
            .args(["-c", &format!("kill -9 {pid}")])
            .status()
            .expect("kill");
        assert!(killed.success());
        let pages: Vec<(String, String)> = (1..=3)
            .map(|i| (format!("after-{i}"), page(&format!("<p>après {i}</p>"))))
            .collect();
        let mut got = Vec::new();
        let report = printer
            .print_all(pages, |key, pdf| {
                got.push((key.to_string(), pdftotext(&pdf)));
                Ok(())
            })
            .expect("print after the crash");
        assert_eq!(report.pages, 3);
        assert!(report.restarts >= 1, "{report:?}");
        got.sort();
        for (i, (key, text)) in got.iter().enumerate() {
            assert_eq!(key, &format!("after-{}", i + 1));
            assert!(text.contains(&format!("après {}", i + 1)), "{text}");
        }
        assert_ne!(printer.browser_pid(), Some(pid), "not relaunched");
        assert_eq!(printer.restarts(), report.restarts);
    }

    #[test]
    fn prints_in_a_single_process_too() {
        let _one = ONE_CHROMIUM_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut printer = Printer::launch(&PrinterOptions {
            tabs: 2,
            single_process: true,
            recycle_after: 3,
            ..PrinterOptions::default()
        })
        .expect("launch chromium");
        // Each page asks for an image on the network: blocked here too.
        let pages = (0..8).map(|i| {
            let key = format!("EXM-2026-{i:06}");
            let html = format!(
                "<h1>Facture {key}</h1><p>Total 1 234,56 €</p>\
                 <img src=\"http://127.0.0.1:9/{i}.png\">"
            );
            (key.clone(), page(&html))
        });
        let mut pdfs = BTreeMap::new();
        let report = printer
            .print_all(pages, |key, pdf| {
                pdfs.insert(key.to_string(), pdf);
                Ok(())
            })
            .expect("print_all");
        assert_eq!((report.pages, report.restarts), (8, 0));
        assert!(
            printer.blocked_requests() >= 8,
            "{}",
            printer.blocked_requests()
        );
        for (key, pdf) in &pdfs {
            let text = pdftotext(pdf);
            assert!(
                text.contains(&format!("Facture {key}")) && text.contains("1 234,56 €"),
                "{key}: {text}"
            );
        }
    }

    #[test]
    fn prints_many_pages_over_the_pool() {
        let (_one, mut printer) = printer(2);
        let pages = (0..20).map(|i| {
            let key = format!("EXM-2026-{i:06}");
            let html = page(&format!("<h1>Facture {key}</h1>"));
            (key, html)
        });
        let mut pdfs = BTreeMap::new();
        let report = printer
            .print_all(pages, |key, pdf| {
                pdfs.insert(key.to_string(), pdf);
                Ok(())
            })
            .expect("print_all");
        assert_eq!((report.pages, report.restarts), (20, 0));
        // A tab is replaced after every 4th page it printed: 4 times for
        // 10 + 10 (or 11 + 9, 13 + 7), 5 times for 12 + 8 or 16 + 4.
        assert!((4..=5).contains(&report.tabs_replaced), "{report:?}");
        assert_eq!(pdfs.len(), 20);
        for (i, (key, pdf)) in pdfs.iter().enumerate() {
            assert_eq!(key, &format!("EXM-2026-{i:06}"));
            let text = pdftotext(pdf);
            assert!(text.contains(&format!("Facture {key}")), "{key}: {text}");
        }

        // A PDF the caller cannot take stops the run, naming the page.
        let refused = printer.print_all(
            vec![("EXM-2026-000099".to_string(), page("<p>x</p>"))],
            |_, _| Err("disk full".to_string()),
        );
        match refused {
            Err(ChromeError::Output { key, reason }) => {
                assert_eq!(key, "EXM-2026-000099");
                assert_eq!(reason, "disk full");
            }
            other => panic!("expected an output error, got {other:?}"),
        }
    }

    #[test]
    fn printer_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Printer>();
    }

    #[test]
    fn missing_chromium_says_how_to_install_it() {
        let options = PrinterOptions {
            chromium: Some(PathBuf::from("/nonexistent/chromium")),
            ..PrinterOptions::default()
        };
        let error = chromium_path(&options).expect_err("no such binary");
        let message = error.to_string();
        assert!(message.contains("apt-get install chromium"), "{message}");
        assert!(message.contains("MVNOBILL_CHROMIUM"), "{message}");
        assert!(!message.contains('\n'));
        assert!(matches!(
            Printer::launch(&options),
            Err(ChromeError::NotFound { .. })
        ));
    }
}
