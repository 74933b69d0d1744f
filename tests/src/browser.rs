//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by `.ci/run`), for the console tests.

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One browser session with its own chromedriver; both end when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.exists())
}

/// Where the screenshots of a test run go: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = crate::workspace_root().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

impl Browser {
    pub async fn start() -> Result<Self> {
        let driver_bin = find(&["chromedriver"]).context("chromedriver is not installed: `apt-get install chromium chromium-driver` (.ci/run does)")?;
        let chromium = find(&["chromium", "chromium-browser", "google-chrome"]).context("chromium is not installed: `apt-get install chromium`")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(driver_bin).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let profile = tempfile::tempdir()?.keep();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                // No network but loopback here: keep Chromium from calling home.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1280,1000", "--lang=ja", format!("--user-data-dir={}", profile.display())]
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("an object literal"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => bail!("chromedriver did not start a session: {e}"),
            }
        };
        Ok(Self { client, driver })
    }

    /// Waits (up to 15 s) for an element matching the CSS selector.
    pub async fn wait_for(&self, css: &str) -> Result<fantoccini::elements::Element> {
        self.client.wait().at_most(Duration::from_secs(15)).for_element(Locator::Css(css)).await.with_context(|| format!("no element `{css}` appeared"))
    }

    /// Waits (up to 15 s) until the page's text contains `text`; returns the text.
    pub async fn wait_for_text(&self, text: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // Mid-navigation there may be no document yet: that is "not yet", not a failure.
            let body = match self.client.find(Locator::Css("body")).await {
                Ok(body) => body.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if body.contains(text) {
                return Ok(body);
            }
            if Instant::now() > deadline {
                bail!("the page never showed {text:?}; it shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as `target/console-screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        println!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Scrolls to the bottom of the page, where the latest sections are.
    pub async fn scroll_to_bottom(&self) -> Result<()> {
        self.client.execute("window.scrollTo(0, document.body.scrollHeight)", vec![]).await?;
        Ok(())
    }

    /// Opens the console and signs in with `token`.
    pub async fn sign_in(&self, base: &str, token: &str) -> Result<()> {
        self.client.goto(&format!("{base}/console/")).await?;
        self.wait_for("#token").await?.send_keys(token).await?;
        self.client.find(Locator::Css("#signin button[type=submit]")).await?.click().await?;
        Ok(())
    }
}
