//! A real headless Chromium for the console tests, driven over WebDriver (`fantoccini`
//! → Debian's `chromedriver`). WebDriver rather than the DevTools protocol: it is the
//! standard that Selenium and Playwright's peers speak, chromedriver ships beside
//! Debian's chromium, and `fantoccini` is small (no browser download of its own).
//!
//! [`Browser::start`] returns `None` (the caller skips with a message) only when
//! chromium or chromedriver is absent and `CI` is not set; in CI their absence fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// Chromium's flags: headless, and quiet on a closed network (no background
/// connections, updates or sync, whose failures are noisy).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn binary(env: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    p.is_file().then_some(p)
}

/// A chromedriver process and a browser session on it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The browser's profile (a fresh one per session).
    _profile: tempfile::TempDir,
    /// Where screenshots go.
    pub shots: PathBuf,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("shots", &self.shots)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at `width`×`height`; screenshots go to
    /// `target/console-screenshots/<suite>/`.
    pub async fn start(suite: &str, width: u32, height: u32) -> Option<Self> {
        let (Some(chromium), Some(driver)) = (
            binary("CHROMIUM", "/usr/bin/chromium"),
            binary("CHROMEDRIVER", "/usr/bin/chromedriver"),
        ) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium or chromedriver is missing, and CI must run the browser tests: \
                 apt-get install -y chromium chromium-driver (.ci/run does)"
            );
            eprintln!(
                "SKIPPED: chromium or chromedriver is missing (apt-get install -y chromium chromium-driver)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, which the browsers it starts join: a test that fails
        // before it closes its session still ends them (see `Drop`).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let mut options = serde_json::json!({"binary": chromium, "args": args});
        if width < 600 {
            // A phone: its viewport width (a desktop window is not made that narrow).
            options["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": true}
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session on chromedriver: {e}"),
            }
        };
        let shots = crate::profile_dir()
            .parent()
            .unwrap_or(Path::new("."))
            .join("console-screenshots")
            .join(suite);
        std::fs::create_dir_all(&shots).expect("the screenshot directory");
        Some(Self {
            client,
            driver,
            _profile: profile,
            shots,
        })
    }

    /// Saves a screenshot of the page as `<n>.png`.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png)
            .expect("the screenshot is written");
    }

    /// Ends the browser session (call before drop; drop only kills the driver).
    pub async fn close(&self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver's whole group: chromedriver and the browsers it started.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The element `css` selects, waiting up to 20 s for it to appear.
pub async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// Replaces the text of the input `css` with `text`.
pub async fn fill(c: &Client, css: &str, text: &str) {
    let e = find(c, css).await;
    e.clear().await.unwrap_or_else(|e| panic!("{css}: {e}"));
    e.send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
}

/// Clicks the element `css`.
pub async fn click(c: &Client, css: &str) {
    find(c, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
}

/// The path of the page the browser shows.
pub async fn path(c: &Client) -> String {
    c.current_url()
        .await
        .unwrap_or_else(|e| panic!("no current URL: {e}"))
        .path()
        .to_string()
}

/// Waits up to 30 s until the page's path starts with `prefix`.
pub async fn wait_path(c: &Client, prefix: &str) -> String {
    let start = Instant::now();
    loop {
        let p = path(c).await;
        if p.starts_with(prefix) {
            return p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still on {p}, expected {prefix}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
