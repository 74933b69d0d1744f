//! A throwaway PostgreSQL server for the test suite: a fresh cluster in `target/`, on a free
//! loopback port, stopped when dropped. Needs the PostgreSQL server binaries (Debian:
//! `apt-get install postgresql`); as root it runs them as the `postgres` user.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Throwaway {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Throwaway {
    pub fn start(dir: &Path) -> Result<Self> {
        let bin = find_bin_dir().context(
            "the PostgreSQL tests need the server binaries (initdb, pg_ctl): install them with \
             `apt-get install postgresql`, or set NUKISASHI_TEST_DATABASE_URL to a server you run",
        )?;
        let as_postgres_user = is_root();
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let data = dir.join("data");
        if as_postgres_user {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir))?;
        }
        let port = free_port()?;
        let mut server = Self { bin, data, port, as_postgres_user };
        server.pg("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C", "-D"], &[server.data.clone()])?;
        let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200", dir.display());
        server.pg("pg_ctl", &["-w", "-l"], &[dir.join("server.log"), PathBuf::from("-o"), PathBuf::from(options), PathBuf::from("-D"), server.data.clone(), PathBuf::from("start")])?;
        server.port = port;
        eprintln!("xtask: throwaway PostgreSQL on 127.0.0.1:{port}");
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg(&mut self, tool: &str, args: &[&str], paths: &[PathBuf]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args).args(paths).current_dir("/");
        run(&mut c)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let data = self.data.clone();
        let _ = self.pg("pg_ctl", &["-w", "-m", "fast", "-D"], &[data, PathBuf::from("stop")]);
    }
}

fn run(c: &mut Command) -> Result<()> {
    let output = c.output().with_context(|| format!("cannot run {c:?}"))?;
    if !output.status.success() {
        bail!("{c:?} failed: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

fn find_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .collect();
    candidates.sort();
    candidates.reverse();
    if let Ok(path) = std::env::var("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.into_iter().find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
