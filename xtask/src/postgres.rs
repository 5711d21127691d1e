//! A Postgres server for the tests: the destination tests need a real one and fail (never
//! skip) without it.
//!
//! [`ensure_postgres`]: when `IONPORT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) accepts a connection, nothing to do. When the
//! variable is set and the server does not answer, that is an error (the user asked for
//! that server). Otherwise a private server is started: `initdb` (once) under
//! `target/postgres-test/`, `pg_ctl start` on a free port of 127.0.0.1 (trust auth, fsync
//! off), a `test` database; then this very `cargo xtask` command is run again with the
//! variable set to the private server's URL, and the server is stopped when it ends.
//! As root, the server runs as the `postgres` user (initdb refuses root).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const VAR: &str = "IONPORT_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Makes sure the tests find a Postgres server (see the module documentation). When a
/// private server is needed, this runs the rest of the command itself and exits.
pub fn ensure_postgres() -> Result<()> {
    let explicit = std::env::var(VAR).ok();
    let url = explicit.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
    match ionport_core::destination::postgres::ping(&url) {
        Ok(()) => {
            eprintln!(
                "xtask: Postgres for the tests: {url_shown}",
                url_shown = shown(&url)
            );
            return Ok(());
        }
        Err(e) if explicit.is_some() => bail!(
            "{VAR} is set but that Postgres does not accept a connection: {e}\n\
             (start that server, or unset {VAR} to let cargo xtask start a private one)"
        ),
        Err(e) => {
            eprintln!("xtask: no Postgres at the default URL ({e}); starting a private server")
        }
    }
    let server = Server::start()?;
    let exe = std::env::current_exe().context("finding the xtask executable")?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    eprintln!("xtask: running again with {VAR}={}", server.url);
    let status = Command::new(&exe)
        .args(&args)
        .env(VAR, &server.url)
        .status();
    server.stop();
    let status = status.with_context(|| format!("running {}", exe.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn shown(url: &str) -> String {
    format!(
        "{:?}",
        ionport_core::destination::DestinationConfig::Postgres {
            url: url.to_string(),
            schema: String::new(),
        }
    )
}

/// Where the server binaries are: `initdb` on the PATH, else Debian's
/// `/usr/lib/postgresql/<version>/bin` (the highest version).
fn bin_dir() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Follow the symlink to find pg_ctl and createdb beside it.
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(d) = real.parent() {
                    return Ok(d.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "the Postgres tests need a server and none is reachable at {DEFAULT_URL}, and initdb \
             is not installed to start a private one: install the Debian package `postgresql` \
             (apt-get install postgresql; .ci/run does), or set {VAR} to a reachable server"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

/// A private server.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    url: String,
}

impl Server {
    /// A command for a server binary, as the `postgres` user when we are root.
    fn cmd(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let mut c = self.cmd(program);
        c.args(args);
        let out = c
            .output()
            .with_context(|| format!("running {program} (from {})", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn start() -> Result<Server> {
        let bin = bin_dir()?;
        let base = crate::target_dir().join("postgres-test");
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let base = std::fs::canonicalize(&base)?;
        let as_postgres = is_root();
        let mut server = Server {
            bin,
            data: base.join("data"),
            as_postgres,
            url: String::new(),
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&base)
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!(
                    "chown postgres {} failed: is there a `postgres` user?",
                    base.display()
                );
            }
        }
        let data = path_str(&server.data)?;
        if !server.data.join("PG_VERSION").is_file() {
            eprintln!("xtask: initdb {data}");
            server.run(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )?;
        }
        // A server left running by an interrupted run: stop it (errors mean none was).
        let _ = server
            .cmd("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        // Unix socket paths are limited to ~107 bytes.
        let socket_dir = if path_str(&base)?.len() < 80 {
            path_str(&base)?
        } else {
            "/tmp".to_string()
        };
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {socket_dir} -c fsync=off -c max_connections=200"
        );
        let log = path_str(&base.join("server.log"))?;
        eprintln!("xtask: starting a private Postgres on 127.0.0.1:{port} (log: {log})");
        server.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &opts, "start",
            ],
        )?;
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        server.url = format!("postgres://postgres@127.0.0.1:{port}/test");
        if ionport_core::destination::postgres::ping(&server.url).is_err() {
            let port_s = port.to_string();
            if let Err(e) = server.run(
                "createdb",
                &["-h", "127.0.0.1", "-p", &port_s, "-U", "postgres", "test"],
            ) {
                server.stop();
                return Err(e);
            }
        }
        if let Err(e) = ionport_core::destination::postgres::ping(&server.url) {
            server.stop();
            bail!(
                "the private Postgres started but does not accept connections: {e} (admin URL {admin})"
            );
        }
        Ok(server)
    }

    fn stop(&self) {
        if let Ok(data) = path_str(&self.data) {
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        }
    }
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", p.display()))
}
