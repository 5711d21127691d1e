//! Where an API client may point a connection's destination.
//!
//! A destination given over the HTTP API is written by the server's own user, so an API
//! client must not choose where on disk: a path is relative and lands under the server's
//! data directory (`$IONPORT_HOME/data`); an absolute path is accepted only under a root
//! the operator allowed (`ionport serve --destination-root DIR`). `..` is refused, and a
//! symlink inside the data directory cannot lead out of it: the deepest existing part of
//! the path is resolved and must still be inside. A Postgres destination may not carry a
//! password in any form (it would be stored and returned), nor `${VAR}` references (they
//! would read the server's environment into a string the client controls).

use std::path::{Component, Path, PathBuf};

use ionport_core::destination::postgres_url_has_password;

/// Where API destinations may live.
#[derive(Debug, Clone)]
pub struct DestinationRoots {
    /// The data directory, resolved.
    data: PathBuf,
    /// Roots for absolute paths, resolved.
    allowed: Vec<PathBuf>,
}

impl DestinationRoots {
    /// Creates the data directory and resolves every root; a root that does not exist is
    /// an error naming it.
    pub fn new(data: &Path, allowed: &[PathBuf]) -> std::io::Result<Self> {
        std::fs::create_dir_all(data)?;
        let data = data.canonicalize()?;
        let allowed = allowed
            .iter()
            .map(|r| {
                r.canonicalize().map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("--destination-root {}: {e}", r.display()),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { data, allowed })
    }

    /// The data directory.
    #[cfg(test)]
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// `path` (as an API client gave it) placed under the data directory or an allowed
    /// root; the error says what is accepted.
    pub fn confine(&self, path: &Path) -> Result<PathBuf, String> {
        if path.as_os_str().is_empty() {
            return Err("is empty; expected a path relative to the server's data directory".into());
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "'{}' contains '..'; expected a path inside the server's data directory",
                path.display()
            ));
        }
        let (full, roots): (PathBuf, Vec<&Path>) = if path.is_absolute() {
            // The data directory counts as a root: the server itself shows stored paths
            // absolute, and a client may send back what it was shown.
            let roots: Vec<&Path> = std::iter::once(self.data.as_path())
                .chain(self.allowed.iter().map(PathBuf::as_path))
                .collect();
            (path.to_path_buf(), roots)
        } else {
            let rel: PathBuf = path
                .components()
                .filter(|c| *c != Component::CurDir)
                .collect();
            (self.data.join(rel), vec![self.data.as_path()])
        };
        let resolved = resolve_existing(&full);
        if roots.iter().any(|r| resolved.starts_with(r)) {
            Ok(resolved)
        } else if path.is_absolute() && self.allowed.is_empty() {
            Err(format!(
                "'{}' is absolute and outside the server's data directory; expected a path relative to it (absolute paths elsewhere need `ionport serve --destination-root`)",
                path.display()
            ))
        } else if path.is_absolute() {
            Err(format!(
                "'{}' is outside the server's data directory and the allowed destination roots",
                path.display()
            ))
        } else {
            Err(format!(
                "'{}' leads outside the server's data directory (through a symlink)",
                path.display()
            ))
        }
    }
}

/// `path` with its deepest existing ancestor resolved (symlinks followed) and the rest
/// appended as given.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = path;
    loop {
        if let Ok(real) = cur.canonicalize() {
            return rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                cur = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Why a Postgres URL from the API is refused, if it is.
pub fn refuse_postgres_url(url: &str) -> Option<&'static str> {
    if postgres_url_has_password(url) {
        return Some(
            "a Postgres connection string may not hold a password (in the userinfo, as `?password=` or as `password=`): use PGPASSWORD or ~/.pgpass on the server",
        );
    }
    if url.contains("${") {
        return Some(
            "`${VAR}` references are not accepted over the API (they would read the server's environment)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        let home = tempfile::tempdir().unwrap();
        let roots = DestinationRoots::new(&home.path().join("data"), &[]).unwrap();
        let p = roots.confine(Path::new("./a/b.db")).unwrap();
        assert_eq!(p, roots.data().join("a/b.db"));
        // What the server shows (absolute, inside) is accepted back.
        assert_eq!(roots.confine(&p).unwrap(), p);
        for bad in ["../x.db", "a/../../x.db", "/tmp/x.db", "/etc/passwd", ""] {
            assert!(roots.confine(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_cannot_lead_out() {
        let home = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let roots = DestinationRoots::new(&home.path().join("data"), &[]).unwrap();
        std::os::unix::fs::symlink(outside.path(), roots.data().join("out")).unwrap();
        let e = roots.confine(Path::new("out/x.db")).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
    }

    #[test]
    fn absolute_paths_only_under_an_allowed_root() {
        let home = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let roots =
            DestinationRoots::new(&home.path().join("data"), &[root.path().into()]).unwrap();
        let inside = root.path().join("x.db");
        assert!(roots.confine(&inside).is_ok());
        assert!(roots.confine(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn postgres_passwords_in_any_form_are_refused() {
        for url in [
            "postgres://u:pw@127.0.0.1/db",
            "postgres://u@127.0.0.1/db?password=pw",
            "postgres://u@127.0.0.1/db?sslmode=disable&PassWord=pw",
            "host=127.0.0.1 user=password_admin password=pw",
            "host=127.0.0.1 password = 'p w'",
            "postgres://u@127.0.0.1/db?application_name=${HOME}",
        ] {
            assert!(refuse_postgres_url(url).is_some(), "{url}");
        }
        assert!(refuse_postgres_url("postgres://u@127.0.0.1:5432/db").is_none());
        assert!(refuse_postgres_url("host=127.0.0.1 user=password_admin").is_none());
    }
}
