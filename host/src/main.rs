//! The `nukisashi` command line: a thin layer over the library.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use nukisashi::lgcode::LgCode;
use nukisashi::settings::Settings;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "nukisashi", version, about = "WebAssembly plugin host for pluggable municipal services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the host.
    Serve(ServeArgs),
    /// Register, list and check municipalities (全国地方公共団体コード).
    #[command(subcommand)]
    Municipality(MunicipalityCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// TOML settings file; flags and NUKISASHI_* variables override it.
    #[arg(long, env = "NUKISASHI_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "NUKISASHI_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for the embedded database and compiled modules.
    #[arg(long, env = "NUKISASHI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of the embedded SQLite.
    #[arg(long, env = "NUKISASHI_DATABASE_URL")]
    database_url: Option<String>,
    /// A module component to load (repeatable).
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// Load every *.wasm in this directory.
    #[arg(long = "plugins", env = "NUKISASHI_PLUGINS_DIR")]
    plugins_dir: Option<PathBuf>,
    /// Add demo municipalities and settings (idempotent).
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand)]
enum MunicipalityCommand {
    /// Register a municipality with a running host.
    Add {
        /// 6-digit code with check digit, e.g. 131016.
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 0)]
        population: i64,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the municipalities a running host serves.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Check a code's form and check digit (no host needed).
    Check { lg_code: String },
}

#[derive(Args)]
struct ServerArg {
    /// Base URL of the host.
    #[arg(long, env = "NUKISASHI_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NUKISASHI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,cranelift=warn,wasmtime=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Municipality(cmd) => municipality(cmd).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let mut settings = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        settings.data_dir = dir;
    }
    if let Some(url) = args.database_url {
        settings.database_url = Some(url);
    }
    settings.plugins.extend(args.plugins);
    if let Some(dir) = args.plugins_dir {
        settings.plugins_dir = Some(dir);
    }
    let app = nukisashi::server::build(&settings).await?;
    if args.demo {
        nukisashi::demo::seed(&app).await.context("cannot add demo data")?;
    }
    nukisashi::server::serve(app, &settings).await
}

async fn municipality(cmd: MunicipalityCommand) -> Result<()> {
    let client = reqwest::Client::new();
    match cmd {
        MunicipalityCommand::Check { lg_code } => {
            let code = LgCode::parse(&lg_code)?;
            println!("{code} is well-formed ({})", code.prefecture());
        }
        MunicipalityCommand::Add { lg_code, name, population, server } => {
            // Validate here too, so a typo gets its sentence without a round trip.
            LgCode::parse(&lg_code)?;
            let response = client
                .post(format!("{}/api/v1/municipalities", server.server))
                .json(&serde_json::json!({ "lg_code": lg_code, "name": name, "population": population }))
                .send()
                .await
                .with_context(|| format!("cannot reach the host at {}", server.server))?;
            let body: serde_json::Value = check(response).await?;
            println!("registered {} {} ({})", body["lg_code"].as_str().unwrap_or(""), body["name"].as_str().unwrap_or(""), body["prefecture"].as_str().unwrap_or(""));
        }
        MunicipalityCommand::List { server } => {
            let response = client
                .get(format!("{}/api/v1/municipalities", server.server))
                .send()
                .await
                .with_context(|| format!("cannot reach the host at {}", server.server))?;
            let list: Vec<serde_json::Value> = check(response).await?;
            for m in list {
                println!("{}\t{}\t{}\t{}", m["lg_code"].as_str().unwrap_or(""), m["prefecture"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""), m["population"]);
            }
        }
    }
    Ok(())
}

/// The body of a successful response, or the problem's detail as the error.
async fn check<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    if response.status().is_success() {
        return Ok(response.json().await?);
    }
    let status = response.status();
    let problem: serde_json::Value = response.json().await.unwrap_or_default();
    anyhow::bail!("{} ({status})", problem["detail"].as_str().unwrap_or("the host refused the request"))
}
