//! `cargo xtask demo`: the main job end to end, against the embedded emulator.
//!
//! 1. starts `ionport emulator` (a real HTTP server on loopback) and has it write its
//!    `.ionapi` file; 2. imports that file into a demo vault; 3. writes an example pipeline
//!    file: every predefined task of the three connectors into SQLite; 4. runs it (progress
//!    bars on a terminal); 5. changes records in the emulator; 6. runs again,
//!    incrementally; 7. prints a few rows of the data; 8. starts `ionport serve` with a
//!    new API key, adds the demo's three connections through its API, prints the web
//!    console's URL and the key, and stays up until Ctrl-C (with
//!    `IONPORT_DEMO_CONSOLE=exit` it stops there instead: the demo's test).
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

/// POSTs JSON to the emulator's control API.
fn post(base: &str, path: &str, body: &str) -> Result<String> {
    request(base, "POST", path, None, body)
}

/// One HTTP/1.1 request with a JSON body (and a bearer key). Raw: the demo needs a few
/// calls, not an HTTP client dependency in the build tool.
fn request(base: &str, method: &str, path: &str, key: Option<&str>, body: &str) -> Result<String> {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {base}"))?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    // The console's connections take the form's credentials block, made from the file.
    let ionapi_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ionapi)?)
        .context("the emulator's .ionapi file is JSON")?;
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
    console(&bin, bin_dir, &home, &ionapi_json)
}

/// The credentials block of a connection form for an `.ionapi` file's JSON.
fn form_credentials(ionapi: &serde_json::Value) -> serde_json::Value {
    let s = |k: &str| ionapi[k].as_str().unwrap_or_default().to_string();
    serde_json::json!({
        "service_url": format!("{}/{}", s("iu").trim_end_matches('/'), s("ti")),
        "token_url": format!("{}{}", s("pu"), s("ot")),
        "username": s("saak"),
        "password": s("sask"),
        "client_id": s("ci"),
        "client_secret": s("cs"),
    })
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the web console with a new key, adds the demo's connections through the API,
/// prints where to sign in, and waits for Ctrl-C (`IONPORT_DEMO_CONSOLE=exit`: returns).
fn console(bin: &Path, bin_dir: &Path, home: &Path, ionapi: &serde_json::Value) -> Result<()> {
    let key = Command::new(bin)
        .args(["apikey", "create", "--name", "demo-console"])
        .env("IONPORT_HOME", home)
        .stderr(Stdio::null())
        .output()
        .context("running ionport apikey create")?;
    if !key.status.success() {
        bail!("ionport apikey create failed ({})", key.status);
    }
    let key = String::from_utf8(key.stdout)?.trim().to_string();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("IONPORT_HOME", home)
        .env("IONPORT_PLUGIN_PATH", bin_dir)
        .env_remove("IONPORT_API_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ionport serve")?;
    let stdout = child.stdout.take().context("the server's stdout")?;
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().context("ionport serve printed nothing")??;
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let base = first
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line of ionport serve: {first}"))?
        .to_string();
    let credentials = form_credentials(ionapi);
    for (name, connector, settings) in [
        ("m3_demo", "infor-m3", serde_json::json!({"company": 100})),
        ("ln_demo", "infor-ln", serde_json::json!({"company": 100})),
        ("datalake_demo", "infor-datalake", serde_json::json!({})),
    ] {
        let mut values = settings;
        values["credentials"] = credentials.clone();
        let body = serde_json::json!({
            "name": name,
            "connector": connector,
            "values": values,
            "quota": "none",
        });
        request(
            &base,
            "POST",
            "/v1/connections",
            Some(&key),
            &body.to_string(),
        )
        .with_context(|| format!("adding the connection {name}"))?;
    }
    println!("\n== the web console");
    println!("open {base}/console and sign in with this API key (made for the demo):");
    println!("  {key}");
    println!("the demo's connections are there: m3_demo, ln_demo, datalake_demo");
    if std::env::var("IONPORT_DEMO_CONSOLE").as_deref() == Ok("exit") {
        return Ok(());
    }
    println!("(Ctrl-C stops the console and the emulator)");
    std::io::stdout().flush()?;
    let mut server = server;
    server.0.wait()?;
    Ok(())
}

/// Where the demo writes.
pub fn work_dir(target: &Path) -> PathBuf {
    target.join("demo")
}
