//! `cargo xtask demo`: the main job end to end, against the embedded emulator.
//!
//! 1. starts `ionport emulator` (a real HTTP server on loopback) and has it write its
//!    `.ionapi` file; 2. imports that file into a demo vault; 3. writes an example pipeline
//!    file: every predefined task of the three connectors into SQLite; 4. runs it (progress
//!    bars on a terminal); 5. changes records in the emulator; 6. runs again,
//!    incrementally; 7. prints a few rows of the data.
//!
//! Everything lives under `target/demo/` and is recreated on each run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Records of M3 company 100 the demo emulator generates (other tables are sized from it).
const SCALE: u64 = 1000;

struct Emulator {
    child: Child,
    base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(bin: &Path, ionapi: &Path) -> Result<Emulator> {
    let mut child = Command::new(bin)
        .args([
            "emulator",
            "--port",
            "0",
            "--scale",
            &SCALE.to_string(),
            "--write-ionapi",
        ])
        .arg(ionapi)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} emulator", bin.display()))?;
    let stdout = child.stdout.take().context("the emulator's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = lines.next().context("the emulator printed nothing")??;
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    for _ in 0..100 {
        if ionapi.is_file() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Emulator { child, base })
}

/// POSTs JSON to the emulator's control API. A raw HTTP/1.1 request: the demo needs one
/// call, not an HTTP client dependency in the build tool.
fn post(base: &str, path: &str, body: &str) -> Result<String> {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {base}"))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    if !out.starts_with("HTTP/1.1 2") {
        bail!("{base}{path}: {}", out.lines().next().unwrap_or(""));
    }
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

const PIPELINES: &str = r#"# The demo's pipeline file: every predefined task of the three connectors into SQLite.
# A replication environment serves one connection, so each connector has its own.

[environments.m3]
destination = { type = "sqlite", path = "m3.db" }

[environments.ln]
destination = { type = "sqlite", path = "ln.db" }

[environments.lake]
destination = { type = "sqlite", path = "datalake.db" }

[connections.m3]
connector = "infor-m3"
credentials = { vault = "demo" }
settings = { company = 100 }
# The emulator enforces no quota; a real tenant's is 1000/60 unless raised.
quota = "none"

[connections.ln]
connector = "infor-ln"
credentials = { vault = "demo" }
settings = { company = 100 }

[connections.lake]
connector = "infor-datalake"
credentials = { vault = "demo" }

[pipelines.m3]
connection = "m3"
environment = "m3"
page_size = 500

[pipelines.ln]
connection = "ln"
environment = "ln"

[pipelines.datalake]
connection = "lake"
environment = "lake"
"#;

/// Runs the demo with the binaries in `bin_dir`. `quiet` prints only summaries.
pub fn run(bin_dir: &Path, work: &Path, quiet: bool) -> Result<()> {
    let bin = bin_dir.join(format!("ionport{}", std::env::consts::EXE_SUFFIX));
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(work)?;
    let home = work.join("home");
    let ionapi = work.join("demo.ionapi");
    let say = |s: &str| {
        if !quiet {
            println!("\n== {s}");
        }
    };

    say("starting the ION API emulator");
    let emu = start_emulator(&bin, &ionapi)?;
    if !quiet {
        println!(
            "emulator at {} (scale {SCALE}); credentials in {}",
            emu.base,
            ionapi.display()
        );
    }
    // Quiet: summaries of the runs only (no progress, no other output).
    let ionport = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new(&bin);
        let is_run = args.first() == Some(&"run");
        cmd.args(args)
            .current_dir(work)
            .env("IONPORT_HOME", &home)
            .env("IONPORT_PLUGIN_PATH", bin_dir)
            .env_remove("IONPORT_VAULT_KEY");
        if quiet && is_run {
            cmd.arg("--quiet");
        } else if quiet {
            cmd.stdout(Stdio::null());
        }
        let status = cmd
            .status()
            .with_context(|| format!("running ionport {}", args.join(" ")))?;
        if !status.success() {
            bail!("ionport {} failed ({status})", args.join(" "));
        }
        Ok(())
    };

    say("importing the .ionapi file into the demo vault");
    ionport(&[
        "vault",
        "import",
        ionapi.to_str().context("a UTF-8 path")?,
        "--name",
        "demo",
    ])?;
    ionport(&["check", "--vault", "demo"])?;
    // The .ionapi file has done its job: the vault holds the credentials now.
    std::fs::remove_file(&ionapi)?;

    let file = work.join("pipelines.toml");
    std::fs::write(&file, PIPELINES)?;
    say("first run: every predefined task of M3, LN and Data Lake into SQLite");
    ionport(&["run", "pipelines.toml"])?;

    say("changing records in the emulator (25 customers, 10 items, 10 LN business partners)");
    for (table, n) in [("OCUSMA", 25), ("MITMAS", 10), ("tccom100", 10)] {
        post(
            &emu.base,
            "/__emulator/changes",
            &format!(r#"{{"table":"{table}","count":{n},"cono":100}}"#),
        )?;
    }

    say("second run: incremental where the tasks support it");
    ionport(&["run", "pipelines.toml"])?;

    say("saved states");
    ionport(&["state", "show", "pipelines.toml", "--pipeline", "m3"])?;
    if !quiet {
        println!(
            "\nThe data is in {}/{{m3,ln,datalake}}.db (SQLite), e.g.",
            work.display()
        );
        println!(
            "  sqlite3 {}/m3.db 'select CUNO, CUNM, TOWN from customers limit 5'",
            work.display()
        );
    }
    Ok(())
}

/// Where the demo writes.
pub fn work_dir(target: &Path) -> PathBuf {
    target.join("demo")
}
