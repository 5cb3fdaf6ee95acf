//! The MVNE's FTP server, plain or with explicit TLS (`AUTH TLS`): what
//! `sync` fetches from and `publish` uploads to.
//!
//! - [`FtpSettings`]: the `[source]` keys of an `ftp://` or `ftps://` URL
//!   (no secret in it: the password is read when a stage connects).
//! - [`Credentials`]: the user and the password, from `MVNOBILL_FTP_USER` /
//!   `MVNOBILL_FTP_PASSWORD`, the URL's user part or `[source] password_file`
//!   (owner-only). The password never appears in a `Debug`, an error or a log.
//! - [`FtpClient`]: one control connection (passive mode, binary type,
//!   timeouts on every socket) that reconnects and retries with backoff when
//!   the server drops the connection or answers 4xx, and resumes a download
//!   with `REST` where the server allows it. Blocking (suppaftp); async code
//!   drives it through [`AsyncFtp`], which runs each call on tokio's blocking
//!   pool.
//!
//! Remote paths are absolute (`/<root>/<folder>/<name>`), sent as UTF-8 as
//! they are: folder names with spaces and accents (`Cartes SIM`,
//! `Factures/Intégrateur`) need no quoting in FTP commands.

use crate::core::text::one_line;
use std::io::{Read, Seek, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use suppaftp::rustls;
use suppaftp::types::FileType;
use suppaftp::{FtpError as WireError, Mode, RustlsConnector, RustlsFtpStream, Status};
use url::{Host, ParseError, Url};

/// Environment variable holding the FTP user.
pub const USER_VAR: &str = "MVNOBILL_FTP_USER";
/// Environment variable holding the FTP password.
pub const PASSWORD_VAR: &str = "MVNOBILL_FTP_PASSWORD";

/// Where the FTP server is and how to talk to it (`[source]`). Holds no
/// secret: it may be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpSettings {
    /// `ftps://`: explicit TLS (`AUTH TLS`) on the control and data
    /// connections, before the login.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The folder that holds the MVNE tree, absolute, ending with `/`.
    pub root: String,
    /// The user of the URL (`ftp://user@host/`), if any.
    pub user: Option<String>,
    /// `[source] password_file`: a file readable by its owner only.
    pub password_file: Option<PathBuf>,
    /// `[source] ca_file`: PEM certificates trusted besides the public roots
    /// (an MVNE with its own or a self-signed certificate).
    pub ca_file: Option<PathBuf>,
    /// `[source] insecure_tls`: accept any server certificate. Tests only.
    pub insecure_tls: bool,
    /// `[source] timeout_s`: connecting, and each read or write.
    pub timeout: Duration,
    /// `[source] retries`: attempts after the first one, per operation.
    pub retries: u32,
    /// `[source] backoff_ms`: the wait before the first retry, doubled
    /// before each next one.
    pub backoff: Duration,
}

impl FtpSettings {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_RETRIES: u32 = 3;
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

    /// Parses `ftp://[user@]host[:port][/path]` or `ftps://…` with the url
    /// crate: the user and the path percent-decoded, an IPv6 host written
    /// `[address]`, port 21 by default. A password in the URL is refused,
    /// with a message that does not repeat it.
    pub fn from_url(url: &str) -> Result<FtpSettings, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("ftp://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("ftps://") {
            (true, rest)
        } else {
            return Err("not an ftp:// or ftps:// URL".into());
        };
        // Checked on the whole rest first, so that no part of a password
        // (which may hold a '/') can end up in another message.
        if rest.rfind('@').is_some_and(|at| rest[..at].contains(':')) {
            return Err(password_refused());
        }
        // The url crate follows the WHATWG URL standard, which forgives what
        // a configuration should not: it drops tabs and line breaks, resolves
        // `..` (`%2e%2e` too) and reads `ftp:///x` as the host `x`. These are
        // refused on the URL as written.
        if rest.chars().any(char::is_control) {
            return Err("the URL has a control character".into());
        }
        if rest
            .split(['/', '\\'])
            .any(|segment| percent_decode_str(segment).decode_utf8_lossy() == "..")
        {
            return Err("the path of the URL has a control character or '..'".into());
        }
        if rest.starts_with(['/', '\\']) {
            return Err("the URL has no host".into());
        }
        // ftps is not one of the url crate's special schemes: both are read
        // by the rules of ftp:// (a domain lowercased and IDNA-encoded, an
        // IPv4 address normalised, 21 the default port).
        let parsed = Url::parse(&format!("ftp://{rest}")).map_err(|e| match e {
            ParseError::EmptyHost => "the URL has no host".to_string(),
            ParseError::InvalidPort => "the port of the URL is not a number from 1 to 65535".into(),
            ParseError::InvalidIpv6Address => "an IPv6 host must be written [address]".into(),
            // The url crate's messages never quote the URL.
            e => format!("the host of the URL is not valid ({e})"),
        })?;
        if parsed.password().is_some() {
            return Err(password_refused());
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("a query or fragment is not allowed in the URL".into());
        }
        let host = match parsed.host() {
            Some(Host::Domain(domain)) => domain.to_string(),
            Some(Host::Ipv4(address)) => address.to_string(),
            Some(Host::Ipv6(address)) => address.to_string(),
            None => return Err("the URL has no host".into()),
        };
        // The default port is left out of the parsed URL.
        let port = parsed.port().unwrap_or(21);
        if port == 0 {
            return Err("the port of the URL is not a number from 1 to 65535".into());
        }
        let user = percent_decode_str(parsed.username())
            .decode_utf8()
            .map_err(|_| "the user of the URL is not UTF-8")?;
        let user = Some(user.into_owned()).filter(|u| !u.is_empty());
        let mut root = percent_decode_str(parsed.path())
            .decode_utf8()
            .map_err(|_| "the path of the URL is not UTF-8")?
            .into_owned();
        if root.chars().any(char::is_control) {
            return Err("the path of the URL has a control character or '..'".into());
        }
        if !root.ends_with('/') {
            root.push('/');
        }
        Ok(FtpSettings {
            tls,
            host,
            port,
            root,
            user,
            password_file: None,
            ca_file: None,
            insecure_tls: false,
            timeout: Self::DEFAULT_TIMEOUT,
            retries: Self::DEFAULT_RETRIES,
            backoff: Self::DEFAULT_BACKOFF,
        })
    }

    /// The server's URL for messages and reports: no user, no password.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "ftps" } else { "ftp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}{}", self.port, self.root)
    }

    /// The absolute remote path of a path relative to the root.
    pub fn path(&self, relative: &str) -> String {
        format!("{}{}", self.root, relative.trim_start_matches('/'))
    }
}

fn password_refused() -> String {
    format!(
        "a password in the URL is refused: give it in {PASSWORD_VAR} or [source] password_file (write an '@' of the path as %40)"
    )
}

/// A secret string: its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The login of the FTP server.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

impl Credentials {
    /// The user from `MVNOBILL_FTP_USER`, else the URL; the password from
    /// `MVNOBILL_FTP_PASSWORD`, else `[source] password_file`.
    pub fn resolve(settings: &FtpSettings) -> Result<Credentials, FtpError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = settings.url();
        let user = env(USER_VAR)
            .or_else(|| settings.user.clone())
            .ok_or_else(|| FtpError::Credentials {
                url: url.clone(),
                message: format!(
                    "no FTP user: set {USER_VAR} or write it in the URL (ftp://user@host/)"
                ),
            })?;
        let password = match (env(PASSWORD_VAR), &settings.password_file) {
            (Some(password), _) => Secret(password),
            (None, Some(file)) => {
                read_password_file(file).map_err(|message| FtpError::Credentials {
                    url: url.clone(),
                    message,
                })?
            }
            (None, None) => {
                return Err(FtpError::Credentials {
                    url,
                    message: format!(
                        "no FTP password: set {PASSWORD_VAR} or [source] password_file"
                    ),
                })
            }
        };
        Ok(Credentials { user, password })
    }
}

/// Reads a password file, refusing one that others than its owner may read.
fn read_password_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|e| format!("password file {shown}: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "password file {shown} has mode {mode:04o}: it must be readable by its owner only (chmod 600 {shown})"
            ));
        }
    }
    if !metadata.is_file() {
        return Err(format!("password file {shown} is not a file"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("password file {shown}: {e}"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("password file {shown} is not UTF-8 text"))?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(format!("password file {shown} is empty"));
    }
    Ok(Secret(password.to_string()))
}

/// What went wrong with the FTP server, in one line, without the password.
#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    #[error("{url}: {message}")]
    Credentials { url: String, message: String },
    #[error("{url}: cannot connect after {attempts} attempt(s): {message}")]
    Connect {
        url: String,
        attempts: u32,
        message: String,
    },
    #[error("{url}: login refused for user '{user}': {message}")]
    Login {
        url: String,
        user: String,
        message: String,
    },
    #[error("{url}: TLS: {message}")]
    Tls { url: String, message: String },
    #[error("{url}: {what} failed after {attempts} attempt(s): {message}")]
    Transient {
        url: String,
        what: String,
        attempts: u32,
        message: String,
    },
    #[error("{url}: {what}: {message}")]
    Refused {
        url: String,
        what: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One failed attempt, classified.
#[derive(Debug)]
enum Failure {
    /// The connection dropped, timed out, or the server answered 4xx: try
    /// again on a new connection.
    Transient(String),
    /// A 5xx answer: trying again will not help.
    Refused(String),
    /// The login was refused.
    Login(String),
    /// TLS could not be set up (certificate, protocol).
    Tls(String),
    /// A local file could not be read or written.
    Local(String, std::io::Error),
}

fn classify(error: WireError) -> Failure {
    match error {
        // rustls reports a failed handshake (a certificate refused) on the
        // first read or write of the stream, as an I/O error.
        WireError::ConnectionError(e)
            if e.get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            Failure::Tls(e.to_string())
        }
        WireError::ConnectionError(e) => Failure::Transient(e.to_string()),
        WireError::UnexpectedResponse(response) => {
            let text = one_line(&String::from_utf8_lossy(&response.body));
            let text = if text.is_empty() {
                format!("server answered {}", response.status.code())
            } else {
                format!("server answered {text}")
            };
            if (400..500).contains(&response.status.code()) {
                Failure::Transient(text)
            } else {
                Failure::Refused(text)
            }
        }
        WireError::SecureError(e) => Failure::Tls(one_line(&e)),
        WireError::BadResponse => Failure::Transient("the server sent a malformed reply".into()),
        WireError::InvalidAddress(e) => {
            Failure::Transient(format!("the server sent a bad passive address: {e}"))
        }
        WireError::DataConnectionAlreadyOpen => {
            Failure::Transient("a data connection was still open".into())
        }
    }
}

/// One entry of a remote folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub name: String,
    /// `None` when the listing does not say (a server without `MLSD`).
    pub size: Option<u64>,
    /// The `modify` fact of `MLSD` (`YYYYMMDDHHMMSS`), when given.
    pub modified: Option<String>,
    pub is_file: bool,
}

/// Parses one `MLSD` line: `fact=value;fact=value; name`.
pub fn parse_mlsd_line(line: &str) -> Option<RemoteEntry> {
    let (facts, name) = line.split_once(' ')?;
    let mut size = None;
    let mut modified = None;
    let mut kind = String::new();
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = value.to_ascii_lowercase(),
            "size" => size = value.parse().ok(),
            "modify" => modified = Some(value.to_string()),
            _ => {}
        }
    }
    Some(RemoteEntry {
        name: name.to_string(),
        size,
        modified,
        is_file: kind == "file",
    })
}

/// A connection to the FTP server that reconnects and retries.
pub struct FtpClient {
    settings: FtpSettings,
    credentials: Credentials,
    tls: Option<Arc<rustls::ClientConfig>>,
    stream: Option<RustlsFtpStream>,
    /// Whether `MLSD` works (learned on first use).
    mlsd: Option<bool>,
    /// Whether `REST` works (learned on first use).
    rest: bool,
    /// Where the last download resumed a partial file with `REST` (0: from
    /// the start).
    pub resumed: u64,
    /// Attempts retried since the client was made.
    pub retried: u64,
}

impl std::fmt::Debug for FtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpClient")
            .field("url", &self.settings.url())
            .field("user", &self.credentials.user)
            .field("connected", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl FtpClient {
    /// A client; it connects on first use.
    pub fn new(settings: &FtpSettings, credentials: Credentials) -> Result<FtpClient, FtpError> {
        let tls = if settings.tls {
            Some(tls_config(settings)?)
        } else {
            None
        };
        Ok(FtpClient {
            settings: settings.clone(),
            credentials,
            tls,
            stream: None,
            mlsd: None,
            rest: true,
            resumed: 0,
            retried: 0,
        })
    }

    pub fn settings(&self) -> &FtpSettings {
        &self.settings
    }

    /// Removes the password from a message, should a server echo it.
    fn scrub(&self, text: String) -> String {
        let password = self.credentials.password.expose();
        if password.len() >= 3 && text.contains(password) {
            text.replace(password, "***")
        } else {
            text
        }
    }

    /// Opens, secures and logs in a new control connection.
    fn open(&self) -> Result<RustlsFtpStream, Failure> {
        let timeout = self.settings.timeout;
        let addresses: Vec<_> = (self.settings.host.as_str(), self.settings.port)
            .to_socket_addrs()
            .map_err(|e| Failure::Transient(format!("cannot resolve {}: {e}", self.settings.host)))?
            .collect();
        let mut last = None;
        let mut socket = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, timeout) {
                Ok(s) => {
                    socket = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let socket = socket.ok_or_else(|| {
            Failure::Transient(
                last.map(|e| e.to_string())
                    .unwrap_or_else(|| format!("{} has no address", self.settings.host)),
            )
        })?;
        let set = |s: &TcpStream| -> std::io::Result<()> {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))
        };
        set(&socket).map_err(|e| Failure::Transient(e.to_string()))?;
        let mut ftp = RustlsFtpStream::connect_with_stream(socket)
            .map_err(classify)?
            .passive_stream_builder(move |address| {
                let s = TcpStream::connect_timeout(&address, timeout)
                    .map_err(WireError::ConnectionError)?;
                s.set_read_timeout(Some(timeout))
                    .and_then(|()| s.set_write_timeout(Some(timeout)))
                    .map_err(WireError::ConnectionError)?;
                Ok(s)
            });
        ftp.set_mode(Mode::Passive);
        // A server behind NAT announces its private address in PASV: use
        // the control connection's peer instead (and never another host).
        ftp.set_passive_nat_workaround(true);
        if let Some(config) = &self.tls {
            ftp = ftp
                .into_secure(RustlsConnector::from(config.clone()), &self.settings.host)
                .map_err(|e| match classify(e) {
                    Failure::Refused(m) => {
                        Failure::Tls(format!("the server does not accept AUTH TLS ({m})"))
                    }
                    other => other,
                })?;
        }
        ftp.login(
            self.credentials.user.as_str(),
            self.credentials.password.expose(),
        )
        .map_err(|e| match classify(e) {
            Failure::Refused(m) => Failure::Login(m),
            other => other,
        })?;
        ftp.transfer_type(FileType::Binary).map_err(classify)?;
        Ok(ftp)
    }

    /// Runs `op` on a live connection, reconnecting and retrying with
    /// backoff on transient failures.
    fn retrying<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut FtpClient) -> Result<T, Failure>,
    ) -> Result<T, FtpError> {
        let url = self.settings.url();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (result, connecting) = if self.stream.is_some() {
                (op(self), false)
            } else {
                match self.open() {
                    Ok(stream) => {
                        self.stream = Some(stream);
                        (op(self), false)
                    }
                    Err(failure) => (Err(failure), true),
                }
            };
            let failure = match result {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match failure {
                Failure::Transient(message) => {
                    // The connection is in an unknown state: start afresh.
                    if let Some(stream) = self.stream.take() {
                        let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
                    }
                    let message = self.scrub(message);
                    if attempt > self.settings.retries {
                        return Err(if connecting {
                            FtpError::Connect {
                                url,
                                attempts: attempt,
                                message,
                            }
                        } else {
                            FtpError::Transient {
                                url,
                                what: what.to_string(),
                                attempts: attempt,
                                message,
                            }
                        });
                    }
                    let wait = self.settings.backoff * 2u32.saturating_pow(attempt - 1);
                    // Counted in the reports; shown with RUST_LOG=info (an
                    // error, if it comes, is one line on stderr).
                    self.retried += 1;
                    tracing::info!(
                        "{url}: {what}: {message}; retrying in {} ms",
                        wait.as_millis()
                    );
                    std::thread::sleep(wait);
                }
                Failure::Refused(message) => {
                    return Err(FtpError::Refused {
                        url,
                        what: what.to_string(),
                        message: self.scrub(message),
                    })
                }
                Failure::Login(message) => {
                    self.stream = None;
                    return Err(FtpError::Login {
                        url,
                        user: self.credentials.user.clone(),
                        message: self.scrub(message),
                    });
                }
                Failure::Tls(message) => {
                    self.stream = None;
                    let hint = if message.contains("certificate") && self.settings.ca_file.is_none()
                    {
                        " (a server with its own CA: give it in [source] ca_file)"
                    } else {
                        ""
                    };
                    return Err(FtpError::Tls {
                        url,
                        message: format!("{}{hint}", self.scrub(message)),
                    });
                }
                Failure::Local(path, source) => return Err(FtpError::Local { path, source }),
            }
        }
    }

    fn ftp(&mut self) -> &mut RustlsFtpStream {
        self.stream.as_mut().expect("connected by retrying()")
    }

    /// Connects and logs in now (otherwise the first operation does).
    pub fn connect(&mut self) -> Result<(), FtpError> {
        self.retrying("connect", |_| Ok(()))
    }

    /// The entries of a remote folder (relative to the root), or `None` when
    /// there is no such folder.
    pub fn list(&mut self, folder: &str) -> Result<Option<Vec<RemoteEntry>>, FtpError> {
        let path = self.settings.path(folder);
        let what = format!("listing {path}");
        let listed = self.retrying(&what, |client| {
            if client.mlsd != Some(false) {
                match client.ftp().mlsd(Some(&path)) {
                    Ok(lines) => {
                        client.mlsd = Some(true);
                        return Ok(Some(
                            lines.iter().filter_map(|l| parse_mlsd_line(l)).collect(),
                        ));
                    }
                    Err(WireError::UnexpectedResponse(r))
                        if client.mlsd.is_none() && matches!(r.status.code(), 500 | 502 | 504) =>
                    {
                        client.mlsd = Some(false);
                    }
                    Err(WireError::UnexpectedResponse(r))
                        if matches!(r.status.code(), 501 | 550) =>
                    {
                        return Ok(None);
                    }
                    Err(e) => return Err(classify(e)),
                }
            }
            // Without MLSD: the names, then the size of each (a folder has
            // none).
            let names = match client.ftp().nlst(Some(&path)) {
                Ok(names) => names,
                Err(WireError::UnexpectedResponse(r)) if matches!(r.status.code(), 501 | 550) => {
                    return Ok(None)
                }
                Err(e) => return Err(classify(e)),
            };
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                // Some servers answer NLST with paths.
                let name = name.rsplit('/').next().unwrap_or(&name).to_string();
                let full = format!("{path}/{name}");
                match client.ftp().size(&full) {
                    Ok(size) => entries.push(RemoteEntry {
                        name,
                        size: Some(size as u64),
                        modified: None,
                        is_file: true,
                    }),
                    Err(WireError::UnexpectedResponse(r)) if r.status.code() >= 500 => {}
                    Err(e) => return Err(classify(e)),
                }
            }
            Ok(Some(entries))
        })?;
        Ok(listed)
    }

    /// The size of a remote file (path relative to the root), or `None` if
    /// there is no such file.
    pub fn size(&mut self, relative: &str) -> Result<Option<u64>, FtpError> {
        let path = self.settings.path(relative);
        self.retrying(&format!("SIZE {path}"), |client| {
            match client.ftp().size(&path) {
                Ok(size) => Ok(Some(size as u64)),
                Err(WireError::UnexpectedResponse(r)) if r.status.code() == 550 => Ok(None),
                Err(e) => Err(classify(e)),
            }
        })
    }

    /// Downloads a remote file (relative to the root) into `partial`,
    /// resuming from the bytes already there when the server accepts `REST`.
    /// Returns once `partial` holds the whole file: `expected` bytes when
    /// known. `partial` is left as it is on failure, for the next attempt.
    pub fn download(
        &mut self,
        relative: &str,
        expected: Option<u64>,
        partial: &Path,
    ) -> Result<u64, FtpError> {
        let path = self.settings.path(relative);
        let what = format!("downloading {path}");
        self.resumed = 0;
        self.retrying(&what, |client| {
            client.download_once(&path, expected, partial)
        })
    }

    fn download_once(
        &mut self,
        path: &str,
        expected: Option<u64>,
        partial: &Path,
    ) -> Result<u64, Failure> {
        let local = |e: std::io::Error| Failure::Local(partial.display().to_string(), e);
        let mut file = open_private_append(partial).map_err(local)?;
        let mut have = file.metadata().map_err(local)?.len();
        if expected.is_some_and(|size| have > size) || (have > 0 && !self.rest) {
            file.set_len(0).map_err(local)?;
            have = 0;
        }
        if expected == Some(have) && have > 0 {
            return Ok(have);
        }
        let mut transfer = None;
        if have > 0 {
            self.ftp()
                .resume_transfer(have as usize)
                .map_err(classify)?;
            match self.ftp().retr_as_stream(path) {
                Ok(stream) => {
                    self.resumed = have;
                    transfer = Some(stream);
                }
                // REST refused (not implemented, or not at this offset):
                // start from the beginning.
                Err(WireError::UnexpectedResponse(r))
                    if r.status.code() >= 500 && r.status != Status::FileUnavailable =>
                {
                    self.rest = false;
                    file.set_len(0).map_err(local)?;
                    have = 0;
                }
                Err(e) => return Err(classify(e)),
            }
        }
        let mut transfer = match transfer {
            Some(t) => t,
            None => self.ftp().retr_as_stream(path).map_err(classify)?,
        };
        file.seek(std::io::SeekFrom::Start(have)).map_err(local)?;
        let mut buffer = vec![0u8; 64 * 1024];
        let copied: Result<(), Failure> = loop {
            match transfer.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = file.write_all(&buffer[..n]) {
                        break Err(local(e));
                    }
                    have += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(Failure::Transient(format!("data connection: {e}"))),
            }
        };
        file.flush().map_err(local)?;
        match copied {
            Ok(()) => transfer.finish().map_err(classify)?,
            Err(failure) => {
                // The control connection is replaced by retrying(): shut it
                // first, so that dropping the transfer does not wait for a
                // reply that may never come.
                if let Some(stream) = &self.stream {
                    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
                }
                drop(transfer);
                return Err(failure);
            }
        }
        match expected {
            Some(size) if have < size => Err(Failure::Transient(format!(
                "the transfer ended after {have} of {size} bytes"
            ))),
            Some(size) if have > size => {
                file.set_len(0).map_err(local)?;
                Err(Failure::Transient(format!(
                    "{have} bytes received where the listing said {size}: the file changed"
                )))
            }
            _ => Ok(have),
        }
    }

    /// Reads a whole remote file (relative to the root) into memory.
    pub fn retrieve(&mut self, relative: &str) -> Result<Vec<u8>, FtpError> {
        let path = self.settings.path(relative);
        self.retrying(&format!("downloading {path}"), |client| {
            let mut transfer = client.ftp().retr_as_stream(&path).map_err(classify)?;
            let mut bytes = Vec::new();
            if let Err(e) = transfer.read_to_end(&mut bytes) {
                if let Some(stream) = &client.stream {
                    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
                }
                drop(transfer);
                return Err(Failure::Transient(format!("data connection: {e}")));
            }
            transfer.finish().map_err(classify)?;
            Ok(bytes)
        })
    }

    /// Creates a remote folder and its parents (relative to the root), if
    /// missing.
    pub fn make_dirs(&mut self, relative: &str) -> Result<(), FtpError> {
        let mut path = self.settings.root.trim_end_matches('/').to_string();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = format!("{path}/{part}");
            let dir = path.clone();
            self.retrying(&format!("creating {dir}"), |client| {
                match client.ftp().mkdir(&dir) {
                    Ok(()) => Ok(()),
                    // Already there (or not ours to create): CWD tells.
                    Err(WireError::UnexpectedResponse(r)) if r.status.code() >= 500 => {
                        client.ftp().cwd(&dir).map_err(classify)?;
                        client.ftp().cwd("/").map_err(classify)
                    }
                    Err(e) => Err(classify(e)),
                }
            })?;
        }
        Ok(())
    }

    /// Uploads `bytes` as `<folder>/<name>` (relative to the root),
    /// atomically: under `.<name>.part` first, checked for its size, then
    /// renamed over the final name.
    pub fn upload_atomic(
        &mut self,
        folder: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), FtpError> {
        let folder = folder.trim_matches('/');
        let final_path = self.settings.path(&format!("{folder}/{name}"));
        let part_path = self.settings.path(&format!("{folder}/.{name}.part"));
        self.retrying(&format!("uploading {final_path}"), |client| {
            let ftp = client.ftp();
            let mut reader = std::io::Cursor::new(bytes);
            ftp.put_file(&part_path, &mut reader).map_err(classify)?;
            let size = ftp.size(&part_path).map_err(classify)?;
            if size as u64 != bytes.len() as u64 {
                return Err(Failure::Transient(format!(
                    "{part_path} has {size} bytes on the server where {} were sent",
                    bytes.len()
                )));
            }
            match ftp.rename(&part_path, &final_path) {
                Ok(()) => Ok(()),
                // A server that will not rename over a file: remove it first.
                Err(WireError::UnexpectedResponse(r)) if r.status.code() >= 500 => {
                    match ftp.rm(&final_path) {
                        Ok(()) => {}
                        Err(WireError::UnexpectedResponse(r)) if r.status.code() == 550 => {}
                        Err(e) => return Err(classify(e)),
                    }
                    ftp.rename(&part_path, &final_path).map_err(classify)
                }
                Err(e) => Err(classify(e)),
            }
        })
    }

    /// Says goodbye to the server (errors ignored: nothing is pending).
    pub fn quit(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.quit();
        }
    }
}

impl Drop for FtpClient {
    fn drop(&mut self) {
        self.quit();
    }
}

/// Opens (creating it, owner-only) a file to append to.
fn open_private_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The TLS setup of `ftps://`: the public roots plus `ca_file`, or no
/// verification at all with `insecure_tls`.
fn tls_config(settings: &FtpSettings) -> Result<Arc<rustls::ClientConfig>, FtpError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let tls_err = |message: String| FtpError::Tls {
        url: settings.url(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let config = if settings.insecure_tls {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca_file) = &settings.ca_file {
            let shown = ca_file.display();
            let mut added = 0;
            let certificates = CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| tls_err(format!("ca_file {shown}: {e}")))?;
            for certificate in certificates {
                let certificate =
                    certificate.map_err(|e| tls_err(format!("ca_file {shown}: {e}")))?;
                roots
                    .add(certificate)
                    .map_err(|e| tls_err(format!("ca_file {shown}: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(tls_err(format!("ca_file {shown} holds no PEM certificate")));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `insecure_tls = true`: any certificate is accepted (the handshake's
/// signatures are still checked). For tests and servers of last resort.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An [`FtpClient`] driven from async code: each call runs on tokio's
/// blocking pool, the client moving there and back.
#[derive(Debug)]
pub struct AsyncFtp {
    client: Option<Box<FtpClient>>,
}

impl AsyncFtp {
    pub fn new(client: FtpClient) -> AsyncFtp {
        AsyncFtp {
            client: Some(Box::new(client)),
        }
    }

    pub async fn run<T, F>(&mut self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&mut FtpClient) -> T + Send + 'static,
    {
        let mut client = self.client.take().expect("no call in flight");
        let joined = tokio::task::spawn_blocking(move || {
            let out = f(&mut client);
            (client, out)
        })
        .await;
        match joined {
            Ok((client, out)) => {
                self.client = Some(client);
                out
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Closes the connection (on the blocking pool: QUIT waits for a reply).
    pub async fn quit(mut self) {
        if let Some(mut client) = self.client.take() {
            let _ = tokio::task::spawn_blocking(move || client.quit()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_refuse_passwords() {
        let s = FtpSettings::from_url("ftps://bob@mvne.example:2121/Origyne%20FTP").unwrap();
        assert!(s.tls);
        assert_eq!(s.host, "mvne.example");
        assert_eq!(s.port, 2121);
        assert_eq!(s.root, "/Origyne FTP/");
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.url(), "ftps://mvne.example:2121/Origyne FTP/");
        assert_eq!(s.path("Cartes SIM/x.csv"), "/Origyne FTP/Cartes SIM/x.csv");
        let s = FtpSettings::from_url("ftp://127.0.0.1").unwrap();
        assert_eq!((s.port, s.root.as_str(), s.user.clone()), (21, "/", None));
        let s = FtpSettings::from_url("ftp://[::1]:2100/").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 2100));
        assert_eq!(s.url(), "ftp://[::1]:2100/");
        let refused = FtpSettings::from_url("ftp://bob:hunter2@host/").unwrap_err();
        assert!(
            refused.contains("password in the URL is refused"),
            "{refused}"
        );
        assert!(!refused.contains("hunter2"));
        let refused = FtpSettings::from_url("ftp://bob:s3cr/et@host/").unwrap_err();
        assert!(!refused.contains("s3cr"), "{refused}");
        assert!(FtpSettings::from_url("ftp://host:99999/").is_err());
        assert!(FtpSettings::from_url("ftp:///x").is_err());
        assert!(FtpSettings::from_url("ftp://host/../etc").is_err());
    }

    #[test]
    fn the_user_is_percent_decoded() {
        let s = FtpSettings::from_url("ftp://jean%20dupont%40corp.example@host/").unwrap();
        assert_eq!(s.user.as_deref(), Some("jean dupont@corp.example"));
        assert_eq!(s.host, "host");
        let s = FtpSettings::from_url("ftp://%C3%A9lodie@host/").unwrap();
        assert_eq!(s.user.as_deref(), Some("élodie"));
        // An empty user is no user.
        assert_eq!(FtpSettings::from_url("ftp://@host/").unwrap().user, None);
        let err = FtpSettings::from_url("ftp://%FF@host/").unwrap_err();
        assert_eq!(err, "the user of the URL is not UTF-8");
        // A ':' written %3A is part of the user, not a password.
        let s = FtpSettings::from_url("ftp://a%3Ab@host/").unwrap();
        assert_eq!(s.user.as_deref(), Some("a:b"));
    }

    #[test]
    fn an_ipv6_host_is_written_in_brackets() {
        let s = FtpSettings::from_url("ftps://[2001:DB8:0:0::2]/in").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.tls), ("2001:db8::2", 21, true));
        assert_eq!(s.url(), "ftps://[2001:db8::2]:21/in/");
        let s = FtpSettings::from_url("ftp://bob@[::1]:2100").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("::1", 2100));
        assert_eq!(s.user.as_deref(), Some("bob"));
        for bad in ["ftp://[::1/", "ftp://[zz::1]/", "ftp://[::1]x/"] {
            let err = FtpSettings::from_url(bad).unwrap_err();
            assert!(err.contains("IPv6") || err.contains("port"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_port_is_21_unless_given() {
        let port = |url: &str| FtpSettings::from_url(url).map(|s| s.port);
        assert_eq!(port("ftp://host:2121/"), Ok(2121));
        assert_eq!(port("ftps://host:990"), Ok(990));
        assert_eq!(port("ftp://host:21/"), Ok(21));
        assert_eq!(port("ftps://host:21/"), Ok(21));
        assert_eq!(port("ftps://host/"), Ok(21));
        assert_eq!(port("ftp://host:/"), Ok(21));
        for bad in ["ftp://host:0/", "ftp://host:65536/", "ftp://host:x/"] {
            assert_eq!(
                port(bad),
                Err("the port of the URL is not a number from 1 to 65535".to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_path_is_percent_decoded_and_kept_below_its_root() {
        let root = |url: &str| FtpSettings::from_url(url).map(|s| s.root);
        assert_eq!(
            root("ftp://host/Origyne FTP/in"),
            Ok("/Origyne FTP/in/".into())
        );
        assert_eq!(
            root("ftp://host/Origyne%20FTP/"),
            Ok("/Origyne FTP/".into())
        );
        assert_eq!(
            root("ftp://host/Int%C3%A9grateur"),
            Ok("/Intégrateur/".into())
        );
        assert_eq!(root("ftp://host/a%40b"), Ok("/a@b/".into()));
        assert_eq!(root("ftp://host"), Ok("/".into()));
        for bad in [
            "ftp://host/a/../b",
            "ftp://host/a/%2E%2e/b",
            "ftp://host/a\\..\\b",
            "ftp://host/a%0Ab",
        ] {
            let err = root(bad).unwrap_err();
            assert_eq!(
                err, "the path of the URL has a control character or '..'",
                "{bad}"
            );
        }
        // The url crate would drop a tab or a line break: refused instead.
        assert!(root("ftp://host/a\tb").is_err());
        assert!(root("ftp://host/a\nb").is_err());
        assert!(root("ftp://host/?x")
            .unwrap_err()
            .contains("query or fragment"));
        assert!(root("ftp://host/#x")
            .unwrap_err()
            .contains("query or fragment"));
        assert_eq!(root("ftp:///x"), Err("the URL has no host".into()));
        assert_eq!(root("ftp://"), Err("the URL has no host".into()));
        assert_eq!(
            root("http://host/"),
            Err("not an ftp:// or ftps:// URL".into())
        );
        // A domain as DNS wants it.
        assert_eq!(
            FtpSettings::from_url("ftp://MVNE.Example/").unwrap().host,
            "mvne.example"
        );
    }

    #[test]
    fn source_keys_resolve_against_the_config_folder() {
        use crate::settings::{Settings, Source};
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mvnobill.toml");
        let write = |source: &str| {
            std::fs::write(
                &cfg,
                format!("[source]\n{source}\n[reference]\ndir = \"ref\"\nintegrator = \"i.toml\"\n[lake]\nurl = \"file:///tmp/lake\"\n"),
            )
            .unwrap()
        };
        write("url = \"ftps://bob@mvne.example/\"\npassword_file = \"secrets/ftp\"\nca_file = \"mvne-ca.pem\"\nretries = 1\nbackoff_ms = 100\ntimeout_s = 5");
        let settings = Settings::load(&cfg).unwrap();
        let Some(Source::Ftp(ftp)) = &settings.source else {
            panic!("an FTP source: {settings:?}");
        };
        assert_eq!(ftp.password_file, Some(dir.path().join("secrets/ftp")));
        assert_eq!(ftp.ca_file, Some(dir.path().join("mvne-ca.pem")));
        assert_eq!(
            (ftp.retries, ftp.backoff, ftp.timeout, ftp.insecure_tls),
            (1, Duration::from_millis(100), Duration::from_secs(5), false)
        );
        assert_eq!(ftp.url(), "ftps://mvne.example:21/");
        write("url = \"ftp://h/\"\nretries = 99");
        let error = Settings::load(&cfg).unwrap_err().to_string();
        assert!(
            error.ends_with("[source] retries: 99: give 0 to 20"),
            "{error}"
        );
        write("url = \"sftp://h/\"");
        let error = Settings::load(&cfg).unwrap_err().to_string();
        assert!(error.contains("use file://"), "{error}");
    }

    #[test]
    fn secrets_do_not_print() {
        let credentials = Credentials {
            user: "bob".into(),
            password: Secret::new("hunter2".into()),
        };
        let shown = format!("{credentials:?} {}", credentials.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob"));
    }

    #[test]
    fn password_files_must_be_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = read_password_file(&file).unwrap_err();
        assert!(
            refused.contains("mode 0640") && refused.contains("chmod 600"),
            "{refused}"
        );
        assert!(!refused.contains("hunter2"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password_file(&file).unwrap().expose(), "hunter2");
    }

    #[test]
    fn mlsd_lines() {
        let e =
            parse_mlsd_line("type=file;size=156;modify=20261029155301;perm=r; Cartes SIM x.csv")
                .unwrap();
        assert_eq!(e.name, "Cartes SIM x.csv");
        assert_eq!(e.size, Some(156));
        assert_eq!(e.modified.as_deref(), Some("20261029155301"));
        assert!(e.is_file);
        let d = parse_mlsd_line("type=dir;modify=20261029155301; Intégrateur").unwrap();
        assert!(!d.is_file);
        assert_eq!(d.name, "Intégrateur");
    }
}
