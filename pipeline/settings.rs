//! Resolved settings: the TOML configuration file merged with the
//! environment, with every relative path made absolute against the file's
//! folder (interface.md, "Configuration file").
//!
//! The CLI types live in `cli.rs`; this module only knows the file and the
//! environment. FTP credentials are never read from the file: they come from
//! `MVNOBILL_FTP_USER` / `MVNOBILL_FTP_PASSWORD` when the sync stage needs
//! them, so no secret ever sits in a `Settings` value that might be printed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors of the configuration layer: each names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Parse { path: String, message: String },
    #[error("configuration {path}: [{section}] {key}: {message}")]
    Key {
        path: String,
        section: &'static str,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    source: Option<SourceSection>,
    reference: ReferenceSection,
    lake: LakeSection,
    state: Option<StateSection>,
    engine: Option<EngineSection>,
    templates: Option<TemplatesSection>,
    render: Option<RenderSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceSection {
    dir: String,
    integrator: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LakeSection {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineSection {
    memory_pool_mb: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplatesSection {
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenderSection {
    chromium: Option<String>,
    tabs: Option<usize>,
}

/// Where upstream files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local folder laid out like the MVNE's FTP tree.
    Folder(PathBuf),
}

/// Everything a stage needs, resolved and absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub source: Option<Source>,
    pub reference_dir: PathBuf,
    pub integrator_path: PathBuf,
    /// The lake's URL, always with a trailing `/` (`file:///abs/lake/`).
    pub lake_url: url_string::LakeUrl,
    /// Local folder for the ledger and the secrets store (never in the lake
    /// datasets). Defaults to `<lake>/_state` for a local lake.
    pub state_dir: PathBuf,
    /// Memory the query engine's operators may hold before sorts and
    /// aggregations spill to disk (`[engine] memory_pool_mb`, default 2048).
    pub memory_pool_bytes: usize,
    /// The integrator's own invoice templates (`[templates] dir`); any file
    /// not there comes from the defaults embedded in the binary.
    pub templates_dir: Option<PathBuf>,
    /// The Chromium binary for PDFs (`[render] chromium`), else
    /// `$MVNOBILL_CHROMIUM`, else `chromium` on the PATH.
    pub chromium: Option<PathBuf>,
    /// Chrome tabs printing at once (`[render] tabs`, default 4).
    pub render_tabs: usize,
}

pub mod url_string {
    //! The lake URL as given, normalised to end with `/`.
    use std::path::PathBuf;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LakeUrl(String);

    impl LakeUrl {
        pub fn new(url: &str) -> Self {
            let mut url = url.to_string();
            if !url.ends_with('/') {
                url.push('/');
            }
            LakeUrl(url)
        }
        pub fn as_str(&self) -> &str {
            &self.0
        }
        /// The local folder of a `file://` lake.
        pub fn local_path(&self) -> Option<PathBuf> {
            self.0.strip_prefix("file://").map(PathBuf::from)
        }
        /// URL of a dataset folder or file below the lake.
        pub fn join(&self, relative: &str) -> String {
            format!("{}{}", self.0, relative)
        }
    }
}

impl Settings {
    /// Reads the configuration file and resolves it.
    pub fn load(config_path: &Path) -> Result<Settings, SettingsError> {
        let path_text = config_path.display().to_string();
        let text = std::fs::read_to_string(config_path).map_err(|source| SettingsError::Read {
            path: path_text.clone(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path_text.clone(),
            message: e.message().to_string(),
        })?;
        let config_path =
            std::path::absolute(config_path).map_err(|source| SettingsError::Read {
                path: path_text.clone(),
                source,
            })?;
        let base = config_path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let resolve = |p: &str| -> PathBuf {
            let p = p.strip_prefix("file://").unwrap_or(p);
            let path = Path::new(p);
            if path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            }
        };
        let source = match file.source {
            None => None,
            Some(s) => {
                if s.url.starts_with("file://") || !s.url.contains("://") {
                    Some(Source::Folder(resolve(&s.url)))
                } else {
                    return Err(SettingsError::Key {
                        path: path_text,
                        section: "source",
                        key: "url",
                        message: format!(
                            "'{}' is not supported by this build: use file:// (a local folder laid out like the FTP)",
                            redact_url(&s.url)
                        ),
                    });
                }
            }
        };
        let lake_url = if file.lake.url.starts_with("file://") || !file.lake.url.contains("://") {
            let dir = resolve(&file.lake.url);
            url_string::LakeUrl::new(&format!("file://{}", dir.display()))
        } else {
            return Err(SettingsError::Key {
                path: path_text,
                section: "lake",
                key: "url",
                message: format!(
                    "'{}' is not supported by this build: use file:// (a local folder)",
                    redact_url(&file.lake.url)
                ),
            });
        };
        let state_dir = match file.state {
            Some(s) => resolve(&s.dir),
            None => lake_url
                .local_path()
                .map(|p| p.join("_state"))
                .unwrap_or_else(|| base.join(".mvnobill-state")),
        };
        let memory_pool_mb = file.engine.and_then(|e| e.memory_pool_mb).unwrap_or(2048);
        if memory_pool_mb < 64 {
            return Err(SettingsError::Key {
                path: path_text,
                section: "engine",
                key: "memory_pool_mb",
                message: format!("{memory_pool_mb} MB is too little: give at least 64"),
            });
        }
        let render_tabs = file.render.as_ref().and_then(|r| r.tabs).unwrap_or(4);
        if !(1..=16).contains(&render_tabs) {
            return Err(SettingsError::Key {
                path: path_text,
                section: "render",
                key: "tabs",
                message: format!("{render_tabs} tabs: give 1 to 16"),
            });
        }
        Ok(Settings {
            memory_pool_bytes: memory_pool_mb << 20,
            templates_dir: file.templates.and_then(|t| t.dir).map(|dir| resolve(&dir)),
            chromium: file
                .render
                .and_then(|r| r.chromium)
                .map(|path| resolve(&path)),
            render_tabs,
            config_path: config_path.clone(),
            source,
            reference_dir: resolve(&file.reference.dir),
            integrator_path: resolve(&file.reference.integrator),
            lake_url,
            state_dir,
        })
    }
}

/// A URL with any `user:password@` part removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mvnobill.toml");
        std::fs::write(
            &cfg,
            "[source]\nurl = \"file://ftp\"\n[reference]\ndir = \"ref\"\nintegrator = \"ref/i.toml\"\n[lake]\nurl = \"file:///tmp/lake\"\n",
        )
        .unwrap();
        let s = Settings::load(&cfg).unwrap();
        assert_eq!(s.source, Some(Source::Folder(dir.path().join("ftp"))));
        assert_eq!(s.reference_dir, dir.path().join("ref"));
        assert_eq!(s.lake_url.as_str(), "file:///tmp/lake/");
        assert_eq!(s.state_dir, PathBuf::from("/tmp/lake/_state"));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(redact_url("ftp://bob:secret@host:21/"), "ftp://host:21/");
        assert_eq!(redact_url("file:///x"), "file:///x");
    }
}
