//! Python tools from PyPI that tests run against ionport's output: the Airbyte protocol's
//! published models and a real Singer target.
//!
//! Each set of packages gets its own virtual environment under `target/python/<name>`,
//! made once (pinned versions, so a run is repeatable) and reused; a file lock keeps
//! parallel tests from building it twice. The interpreter is `python3`, or
//! `IONPORT_TEST_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Airbyte protocol models (pydantic 1, as the package requires).
pub const AIRBYTE: (&str, &[&str]) = (
    "airbyte",
    &["airbyte-protocol-models==0.18.0", "pydantic>=1.10,<2"],
);

/// `target-jsonl`, a Singer target, with the `singer-python` it brings.
pub const SINGER: (&str, &[&str]) = ("singer", &["target-jsonl==0.1.4", "singer-python==5.8.0"]);

/// The OpenLineage Python client, whose models check the run events of `ionport serve`.
pub const OPENLINEAGE: (&str, &[&str]) = ("openlineage", &["openlineage-python==1.54.0"]);

/// A virtual environment with `packages` installed; panics with pip's output when it
/// cannot be made.
pub fn venv((name, packages): (&str, &[&str])) -> PathBuf {
    let root = crate::profile_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::profile_dir)
        .join("python");
    std::fs::create_dir_all(&root).expect("target/python is created");
    let file = std::fs::File::create(root.join(format!("{name}.lock"))).expect("a lock file");
    let mut lock = fd_lock::RwLock::new(file);
    let _guard = lock.write().expect("the venv lock");
    let dir = root.join(name);
    let stamp = dir.join("ionport-packages.txt");
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return dir;
    }
    let python = std::env::var("IONPORT_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new(&python).args(["-m", "venv"]).arg(&dir));
    run(Command::new(bin(&dir, "python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages));
    std::fs::write(&stamp, wanted).expect("the venv stamp is written");
    dir
}

/// The executable `name` of the environment `venv`.
pub fn bin(venv: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{name}.exe"))
    } else {
        venv.join("bin").join(name)
    }
}

/// A script of `tests/python`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is python3 with venv installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
