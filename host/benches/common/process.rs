//! Servers run as their own processes for the benchmarks that compare whole systems:
//! started on a free loopback port, waited for until they answer, killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub name: String,
    /// `http://127.0.0.1:port`
    pub base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Server {
    /// CPU time (user + system, every thread) the server process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks: u64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / per_second)
    }

    /// Starts `command` (which must listen on `port`), sending its output to `log`, and
    /// waits until `ready_path` answers 2xx.
    pub async fn start(name: &str, mut command: Command, port: u16, ready_path: &str, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log)?;
        command.stdout(out.try_clone()?).stderr(out).stdin(Stdio::null());
        let child = command.spawn().map_err(|e| anyhow::anyhow!("cannot start {name} ({command:?}): {e}"))?;
        let mut server = Self { name: name.to_string(), base: format!("http://127.0.0.1:{port}"), child };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(response) = client.get(format!("{}{ready_path}", server.base)).send().await
                && response.status().is_success()
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("{name} exited ({status}) before answering; its output is in {}", log.display());
            }
            anyhow::ensure!(Instant::now() < deadline, "{name} did not answer {ready_path} within 120 s; its output is in {}", log.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
