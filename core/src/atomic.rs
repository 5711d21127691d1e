//! Replacing a file whole: the one atomic-write helper of the host (the vault, a files
//! destination's `state.json`, the API's stores).
//!
//! The bytes go to a temporary file beside the target (same directory, so the rename cannot
//! cross file systems), which is fsynced, renamed over the target
//! ([`tempfile::NamedTempFile::persist`]), and then the directory is fsynced: without that
//! last step a power cut can lose the rename itself and bring back the old file, or neither.
//! A reader sees the old content or the new, never a mix; on any failure the old file is
//! left as it was and the temporary file is removed (dropping a `NamedTempFile` deletes it).
//!
//! Temporary files are named `.<file name>.<random>.tmp`, so a crash's leftovers are
//! recognisable ([`is_leftover`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// How to replace a file: the mode a new file gets, on Unix.
#[derive(Debug, Clone, Copy)]
pub struct AtomicWrite {
    /// Passed to `open(2)`, so the umask still applies.
    mode: u32,
}

impl Default for AtomicWrite {
    fn default() -> Self {
        // What `File::create` uses: the file ends up as a plain `create` would make it.
        Self { mode: 0o666 }
    }
}

impl AtomicWrite {
    /// A file readable as the umask allows (what `File::create` would give).
    pub fn new() -> Self {
        Self::default()
    }

    /// A file only its owner may read and write (0600 on Unix), for files holding keys or
    /// connection details.
    pub fn private() -> Self {
        Self { mode: 0o600 }
    }

    /// Replaces `path` with `bytes`.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.write_with(path, |f| f.write_all(bytes))
    }

    /// Replaces `path` with what `fill` writes; an error from `fill` leaves `path` as it was.
    pub fn write_with(
        &self,
        path: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut builder = tempfile::Builder::new();
        let prefix = format!(".{}.", name.to_string_lossy());
        builder.prefix(&prefix).suffix(TMP_SUFFIX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(self.mode));
        }
        #[cfg(not(unix))]
        let _ = self.mode;
        let mut tmp = builder.tempfile_in(dir)?;
        fill(tmp.as_file_mut())?;
        tmp.as_file_mut().flush()?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        sync_dir(dir)
    }
}

/// Replaces `path` with `bytes` atomically and durably ([`AtomicWrite::new`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    AtomicWrite::new().write(path, bytes)
}

const TMP_SUFFIX: &str = ".tmp";

/// Whether `file_name` is a temporary file [`AtomicWrite`] left for `target` (a crash between
/// its creation and the rename), which the next start may remove.
pub fn is_leftover(file_name: &str, target: &str) -> bool {
    file_name
        .strip_prefix('.')
        .and_then(|n| n.strip_prefix(target))
        .and_then(|n| n.strip_prefix('.'))
        .is_some_and(|n| n.ends_with(TMP_SUFFIX) && n.len() > TMP_SUFFIX.len())
}

/// Makes a directory's entries (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"a much longer first version").expect("first");
        write_atomic(&path, b"short").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"short");
        assert_eq!(names(dir.path()), vec!["state.json"]);
    }

    #[test]
    fn a_failure_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").expect("first");
        let err = AtomicWrite::new()
            .write_with(&path, |f| {
                f.write_all(b"half of the new")?;
                Err(io::Error::other("disk full"))
            })
            .expect_err("fails");
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(names(dir.path()), vec!["state.json"]);

        // The rename itself failing (the target is a non-empty directory) also leaves
        // nothing behind.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("x"), b"x").expect("write");
        write_atomic(&blocked, b"new").expect_err("a directory is not replaced");
        assert_eq!(names(dir.path()), vec!["blocked", "state.json"]);
        assert_eq!(names(&blocked), vec!["x"]);
    }

    #[cfg(unix)]
    #[test]
    fn modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("keys.json");
        AtomicWrite::private()
            .write(&private, b"{}")
            .expect("private");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&private), 0o600);
        // A plain file gets what `File::create` would give it under the same umask.
        let plain = dir.path().join("plain");
        let reference = dir.path().join("reference");
        write_atomic(&plain, b"x").expect("plain");
        File::create(&reference).expect("create");
        assert_eq!(mode(&plain), mode(&reference));
    }

    #[test]
    fn leftovers_are_recognised() {
        assert!(is_leftover(".state.json.a1B2c3.tmp", "state.json"));
        assert!(!is_leftover("state.json", "state.json"));
        assert!(!is_leftover(".state.json.tmp", "state.json"));
        assert!(!is_leftover(".other.json.x.tmp", "state.json"));
    }
}
