//! Helpers: run the real binary in a scratch workspace and read the lake
//! back through `mvnobill query`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The output of one run of the binary.
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    pub fn ok(self) -> Output {
        assert_eq!(
            self.status, 0,
            "mvnobill failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The binary under test: the one cargo built, or `$MVNOBILL_TEST_BIN`
/// (a copy, for when several checkouts share one target folder and their
/// builds replace each other's binary).
pub fn binary() -> PathBuf {
    std::env::var_os("MVNOBILL_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mvnobill")))
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn mvnobill(args: &[&str], dir: &Path) -> Output {
    let out = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("MVNOBILL_PLAN_METRICS")
        .output()
        .expect("run mvnobill");
    Output::from(out)
}

/// A scratch folder with a `mvnobill.toml`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(source: &Path, reference: &Path, integrator: &Path) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        Workspace::in_dir(dir, source, reference, integrator)
    }

    /// The contract's samples, with their FTP tree copied into the
    /// workspace: a `run` with PDFs publishes them into the source tree
    /// (`Factures/Clients/`), never into the fixtures.
    pub fn samples() -> Workspace {
        let samples = fixtures().join("samples");
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("ftp");
        copy_dir(&samples.join("ftp"), &source);
        Workspace::in_dir(
            dir,
            &source,
            &samples.join("reference"),
            &samples.join("integrator.toml"),
        )
    }

    /// A workspace in `dir` on these folders.
    pub fn in_dir(
        dir: tempfile::TempDir,
        source: &Path,
        reference: &Path,
        integrator: &Path,
    ) -> Workspace {
        let config = format!(
            "[source]\nurl = \"file://{}\"\n\n[reference]\ndir = \"{}\"\nintegrator = \"{}\"\n\n[lake]\nurl = \"file://{}/lake\"\n",
            source.display(),
            reference.display(),
            integrator.display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("mvnobill.toml"), config).expect("write config");
        Workspace { dir }
    }

    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        mvnobill(args, self.dir.path())
    }

    /// Rows of a query as JSON objects, every value as its text (an
    /// integer or a boolean, which `query` prints as JSON numbers and
    /// booleans, too), null as null.
    pub fn query(&self, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let out = self.run(&["query", "--format", "json", sql]).ok();
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match serde_json::from_str(l).expect("a JSON line") {
                serde_json::Value::Object(map) => map
                    .into_iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                            (k, serde_json::Value::String(v.to_string()))
                        }
                        v => (k, v),
                    })
                    .collect(),
                other => panic!("not an object: {other}"),
            })
            .collect()
    }
}

/// A value of a query row as text ("" for null).
pub fn text(row: &serde_json::Map<String, serde_json::Value>, column: &str) -> String {
    match row.get(column) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The Python of the tests' own virtual environment, under cargo's target
/// folder, with `tests/python/requirements.txt` installed (again whenever
/// that file changes).
pub fn python() -> PathBuf {
    venv("analyst-venv", "tests/python/requirements.txt")
}

/// The Python of a virtual environment `name` under cargo's target folder,
/// with the requirements file installed from PyPI (again whenever that file
/// or pip's changes). One install at a time. The file is a lock made by
/// pip-compile from its `.in` beside it (how, at its top): every package,
/// the dependencies too, at one version with its hashes, and pip installs
/// with `--require-hashes`, so a package missing from the lock, unpinned or
/// whose download has another hash stops the install. pip itself comes
/// first, from its own lock (`tests/python/pip.txt`): the one `venv` brings
/// (23.2 with Python 3.11) refuses a lock where a package is asked for with
/// and without extras (`uvicorn[standard]` and `uvicorn`).
pub fn venv(name: &str, requirements: &str) -> PathBuf {
    static READY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = READY.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python");
    let locks = ["tests/python/pip.txt", requirements]
        .map(|lock| Path::new(env!("CARGO_MANIFEST_DIR")).join(lock));
    let wanted: String = locks
        .iter()
        .map(|lock| {
            std::fs::read_to_string(lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()))
        })
        .collect();
    let ready = venv.join(".ready");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
        if !python.exists() {
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 -m venv");
            assert!(
                status.success(),
                "cannot create a virtual environment with python3 -m venv"
            );
        }
        for lock in &locks {
            let status = Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--require-hashes", "-r"])
                .arg(lock)
                .status()
                .expect("pip install");
            assert!(
                status.success(),
                "pip install --require-hashes -r {} failed",
                lock.display()
            );
        }
        std::fs::write(&ready, &wanted).unwrap();
    }
    python
}

/// Every file below a folder, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
