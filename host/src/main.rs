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
    /// Mint a token with this host's local secret (for local use and tests).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Vendor keys and registration.
    #[command(subcommand)]
    Vendor(VendorCommand),
    /// Publish, review, swap, roll back and suspend module versions.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// The municipality's data: import and export the standard CSV layouts, read the
    /// change feed, the delivery state and the audit trail.
    #[command(subcommand)]
    Linkage(LinkageCommand),
    /// Usage and the monthly cost allocation (operators; admins see their own usage).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Take a consistent online backup of the whole platform from a running host (operator).
    Backup {
        #[arg(long, short)]
        out: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Restore a backup into a fresh data directory or an empty database (the host must not
    /// be running on it); all or nothing.
    Restore {
        file: PathBuf,
        #[arg(long, env = "NUKISASHI_DATA_DIR", default_value = "nukisashi-data")]
        data_dir: PathBuf,
        #[arg(long, env = "NUKISASHI_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Serve the module in DIR (default: here) on a local host with the demo municipalities
    /// and sign-in, reloading it whenever it is rebuilt; `dev generate` writes synthetic
    /// municipalities.
    Dev(DevArgs),
    /// Subscribe a municipality to a module, with grants, config and an optional pin.
    Subscribe {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        module: String,
        /// Capability to grant (repeatable), e.g. --grant kv; replaces the grants. Without
        /// --grant an existing subscription keeps its grants.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Grant nothing (a module that requests capabilities then runs without them).
        #[arg(long, conflicts_with = "grants")]
        no_grants: bool,
        /// Pin this version. Without --version or --follow an existing subscription keeps
        /// its pin (or keeps following); a new one follows the latest.
        #[arg(long)]
        version: Option<String>,
        /// Follow the latest released version (lifts a pin).
        #[arg(long, conflicts_with = "version")]
        follow: bool,
        /// Setting as key=value (repeatable); replaces the module's config when given.
        #[arg(long = "config")]
        config: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List a municipality's subscriptions: version, pin, grants and where each is served.
    Subscriptions {
        #[arg(long)]
        lg_code: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Unplug a module from a municipality; its data stays (export it, or subscribe again).
    Unsubscribe {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        module: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Read or replace a municipality's settings for a subscribed module.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Which subscribed module provides each standard interface (receipts,
    /// resident-registry) for a municipality, and choosing it.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Which notice kinds from other municipalities a municipality takes, into which
    /// module, and the newest notices received and sent.
    #[command(subcommand)]
    Notices(NoticesCommand),
    /// Write the platform's WIT (platform.wit and its WASI deps/) for a toolchain to build
    /// against, e.g. `nukisashi wit --wasi 0.2.10 --out wit/` for componentize-js.
    Wit {
        /// Directory to write into (created if missing).
        #[arg(long, short, default_value = "wit")]
        out: PathBuf,
        /// Name this WASI 0.2 release instead of the one the platform publishes; the host
        /// runs modules built against any 0.2 release.
        #[arg(long)]
        wasi: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Each interface with its provider, and the subscribed modules that could provide it
    /// (with the extension items each adds).
    List {
        #[arg(long)]
        lg_code: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Choose the module that provides an interface; consumers switch in one step.
    Choose {
        #[arg(long)]
        lg_code: String,
        /// `receipts` or `resident-registry`.
        #[arg(long)]
        interface: String,
        /// A subscribed module whose manifest declares [provides.<interface>].
        #[arg(long, required_unless_present = "none")]
        module: Option<String>,
        /// No module: the platform's own data where it has some, otherwise unavailable.
        #[arg(long, conflicts_with = "module")]
        none: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum NoticesCommand {
    /// The kinds accepted (and into which module), those the modules could take, and the
    /// newest notices received and sent.
    List {
        #[arg(long)]
        lg_code: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Take notices of a kind from other municipalities into a module that declares it.
    Accept {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        module: String,
        /// A sending module whose notices of the kind are taken (repeatable); by default
        /// only --module itself (the same service at other municipalities).
        #[arg(long = "from")]
        from: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pass over the notice the module refuses for ever (the next one it would be given),
    /// so those behind it are delivered; the skip and its reason go in the audit trail.
    Skip {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        module: String,
        #[arg(long)]
        sequence: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop taking a kind (notices already received are still delivered).
    Refuse {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the settings as key=value lines (the manifest's defaults are not shown).
    Get {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        module: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Replace the settings with these key=value pairs (grants and pin stay).
    Set {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        module: String,
        /// key=value (repeatable).
        #[arg(required = true)]
        settings: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}


#[derive(Subcommand)]
enum LinkageCommand {
    /// Import a CSV file (residents or tax layout; see docs/LINKAGE.md) into a municipality.
    /// All good rows or nothing are written; rejected rows are listed with line numbers.
    Import {
        #[arg(long)]
        lg_code: String,
        /// residents or tax.
        #[arg(long)]
        layout: String,
        /// utf-8 or shift_jis (CP932).
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Export a layout as CSV to FILE (or stdout).
    Export {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        layout: String,
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show the audit trail of personal-data reads by modules.
    Audit {
        #[arg(long)]
        lg_code: String,
        #[arg(long)]
        module: Option<String>,
        #[arg(long)]
        addressee_number: Option<String>,
        /// Rows after this position (the first column of the last row shown).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show how far each module has been pushed the change feed.
    Deliveries {
        #[arg(long)]
        lg_code: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Split the month's platform cost among the municipalities: a fixed share evenly, a
    /// share by population, a share by usage, with these weights; integer yen that add up.
    Cost {
        /// YYYY-MM (default: this month).
        #[arg(long)]
        month: Option<String>,
        /// The month's platform cost in yen.
        #[arg(long)]
        total: i64,
        #[arg(long, default_value_t = 0)]
        fixed: u32,
        #[arg(long, default_value_t = 0)]
        population: u32,
        #[arg(long, default_value_t = 0)]
        usage: u32,
        /// requests or cpu-time.
        #[arg(long, default_value = "requests")]
        measure: String,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
        /// Also publish this policy for the month, so each municipality sees its own share.
        #[arg(long)]
        publish: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Requests, errors, time in modules and peak memory per municipality, module and day.
    Usage {
        #[arg(long)]
        month: Option<String>,
        /// Only this municipality (its admins may ask for it).
        #[arg(long)]
        lg_code: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct DevArgs {
    #[command(subcommand)]
    command: Option<DevCommand>,
    /// The module folder (with dev.toml and manifest.toml).
    dir: Option<PathBuf>,
    /// Loopback keeps the demo sign-in on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

#[derive(Subcommand)]
enum DevCommand {
    /// Write a synthetic municipality as residents and tax CSV files (import them with
    /// `nukisashi linkage import`).
    Generate {
        #[arg(long)]
        lg_code: String,
        #[arg(long, default_value_t = 1000)]
        residents: usize,
        /// Written before every address, e.g. 北海道札幌市; defaults to the prefecture.
        #[arg(long)]
        place: Option<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Reference day for ages and the tax year (YYYY-MM-DD); defaults to today.
        #[arg(long)]
        as_of: Option<String>,
        /// utf-8 or shift_jis (then no IVS names are generated).
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        /// Directory for {lg_code}-residents.csv and {lg_code}-tax.csv.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed token.
    Mint {
        /// operator, vendor, admin, staff or resident.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "local-user")]
        sub: String,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long)]
        lg_code: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// A resident's 宛名番号 in --lg-code (modules can prefill forms with it).
        #[arg(long)]
        addressee_number: Option<String>,
        #[arg(long, default_value_t = 8)]
        ttl_hours: i64,
        /// The host's data directory (where its secret is).
        #[arg(long, env = "NUKISASHI_DATA_DIR", default_value = "nukisashi-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum VendorCommand {
    /// Create an Ed25519 signing key: the private key goes to FILE, the public key is
    /// printed for the operator to register.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Register a vendor and its public key (operator).
    Register {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        public_key: String,
        /// Approve this vendor's admitted versions without review.
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Create a module folder that builds, checks and runs as written: build file, manifest
    /// with every field explained, dev.toml, a GET and a POST route using config and kv.
    New {
        /// The module id (lower-case letters, digits and `-`); also the folder's name.
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: nukisashi::scaffold::Language,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Rust SDK (the `sdk` folder of a Nukisashi checkout); defaults to the one
        /// this nukisashi was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Print the JSON Schema of a module manifest (every field and every valid value).
    Schema,
    /// Check a manifest and a component as admission would, before signing: sizes, the
    /// manifest's fields, compilation, imports, world, and one instantiation. Every problem
    /// is listed; nothing is signed or uploaded.
    Check {
        /// manifest.toml (or .json); defaults to ./manifest.toml when present.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The component (.wasm); defaults to the `component` named in ./dev.toml.
        #[arg(long)]
        component: Option<PathBuf>,
        /// An operator's settings file, to check against their `[limits]`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a module's recent log lines and requests on the host (its vendor or an
    /// operator), redacted: long digit runs and e-mail addresses are masked.
    Logs {
        module: String,
        /// How many of the newest entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print the signature of a component and manifest.
    Sign {
        #[command(flatten)]
        files: SignedFiles,
    },
    /// Sign and upload a version (vendor).
    Publish {
        #[command(flatten)]
        files: SignedFiles,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a version (operator); followers of the latest move to it unless --no-release.
    Approve {
        module: String,
        version: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        no_release: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the versions waiting for review (operator).
    Reviews {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Reject a version with a reason (operator).
    Reject {
        module: String,
        version: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Move municipalities (default: every follower) to a version (operator).
    Swap {
        module: String,
        version: String,
        #[arg(long = "lg-code")]
        lg_codes: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Return municipalities (default: every follower) to their previous version (operator).
    Rollback {
        module: String,
        #[arg(long = "lg-code")]
        lg_codes: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Stop a module everywhere (operator).
    Suspend {
        module: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Lift a suspension (operator).
    Resume {
        module: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// A vendor's signing key and the two files a version consists of.
#[derive(Args)]
struct SignedFiles {
    /// Private key from `nukisashi vendor keygen`.
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    manifest: PathBuf,
    #[arg(long)]
    component: PathBuf,
}

impl SignedFiles {
    /// (manifest, component, signature)
    fn read_and_sign(&self) -> Result<(Vec<u8>, Vec<u8>, String)> {
        let (manifest, component) = (read(&self.manifest)?, read(&self.component)?);
        let key = String::from_utf8(read(&self.key)?).context("the key file is not text")?;
        let signature = nukisashi::plugins::signing::sign(&key, &component, &manifest).map_err(anyhow::Error::msg)?;
        Ok((manifest, component, signature))
    }
}

#[derive(Args)]
struct ApiArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Bearer token (see `nukisashi token mint`).
    #[arg(long, env = "NUKISASHI_TOKEN")]
    token: Option<String>,
}

impl ApiArgs {
    fn client(&self) -> nukisashi::client::Client {
        nukisashi::client::Client::new(&self.server.server, self.token.clone())
    }
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
        api: ApiArgs,
    },
    /// List the municipalities a running host serves.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
    /// Check a code's form and check digit (no host needed).
    Check { lg_code: String },
    /// Download everything that belongs to a municipality (its registration, subscriptions
    /// with the modules they need, config, module storage, linkage data, audit, usage) into
    /// a file, over HTTPS; a broken download resumes and the SHA-256 is checked.
    Export {
        lg_code: String,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Send a municipality's export file to a host, in resumable chunks over HTTPS, and
    /// import it there (all or nothing; the municipality must not be registered there).
    Import {
        file: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Args)]
struct ServerArg {
    /// Base URL of the host.
    #[arg(long, env = "NUKISASHI_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
}

/// A command's output piped into `head` ends quietly when the reader goes, as other Unix
/// tools do, instead of `println!` reporting a panic on the broken pipe. SIGPIPE itself
/// stays ignored: the CLI writes to sockets too (with `writev`, which would raise it), and
/// a peer that hangs up must be an error the transfer retries, not a silent death.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141); // what a shell reports for a reader that went away
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_closed_stdout();
    }
    nukisashi::tls::install_crypto_provider();
    // `serve` reads its settings first: they say where telemetry goes.
    let settings = match &cli.command {
        Command::Serve(args) => match serve_settings(args) {
            Ok(settings) => Some(settings),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let _tracing = match nukisashi::telemetry::init(settings.as_ref().map(|s| &s.telemetry)) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match (cli.command, settings) {
            (Command::Serve(args), Some(settings)) => serve(args.demo, settings).await,
            (command, _) => run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(_) => unreachable!("serve is started by main with its settings"),
        Command::Municipality(cmd) => municipality(cmd).await,
        Command::Token(cmd) => token(cmd),
        Command::Vendor(cmd) => vendor(cmd).await,
        Command::Module(cmd) => module(cmd).await,
        Command::Linkage(cmd) => linkage(cmd).await,
        Command::Dev(DevArgs { command: Some(cmd), .. }) => dev(cmd),
        Command::Dev(DevArgs { command: None, dir, listen }) => nukisashi::dev::run(dir.unwrap_or_else(|| PathBuf::from(".")), listen).await,
        Command::Wit { out, wasi } => {
            let written = nukisashi::wit::write(&out, wasi.as_deref())?;
            println!("wrote {} files to {} (WASI {})", written.len(), out.display(), wasi.as_deref().unwrap_or(nukisashi::wit::WASI_VERSION));
            Ok(())
        }
        Command::Report(cmd) => report(cmd).await,
        Command::Backup { out, api } => {
            let bytes = download_to(&api.client(), "/backup", &out).await?;
            println!("backup written to {} ({bytes} bytes)", out.display());
            Ok(())
        }
        Command::Restore { file, data_dir, database_url } => {
            std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
            let db = nukisashi::store::Db::open(database_url.as_deref(), &data_dir).await?;
            let reader = std::io::BufReader::new(std::fs::File::open(&file).with_context(|| format!("cannot read {}", file.display()))?);
            let restored = nukisashi::store::backup::restore(&db, reader).await?;
            let secret = data_dir.join("jwt-secret");
            if !secret.exists() {
                nukisashi::auth::write_private(&secret, &restored.jwt_secret)?;
            }
            println!("restored {} rows in {} tables from {}", restored.rows, restored.tables, file.display());
            Ok(())
        }
        Command::Subscribe { lg_code, module, grants, no_grants, version, follow, config, api } => {
            let config = if config.is_empty() { None } else { Some(key_values(&config)?) };
            let grants = if no_grants { Some(Vec::new()) } else { (!grants.is_empty()).then_some(grants) };
            let mut body = serde_json::json!({ "config": config });
            if version.is_some() || follow {
                body["version"] = serde_json::json!(version);
            }
            if let Some(grants) = grants {
                body["grants"] = serde_json::json!(grants);
            }
            let s = api.client().put(&format!("/municipalities/{lg_code}/subscriptions/{module}"), &body).await?;
            let pin = if s["pinned"] == true { "pinned" } else { "following the latest" };
            println!("{lg_code} subscribes to {module} {} ({pin}; grants: {})", s["version"].as_str().unwrap_or(""), joined(&s["grants"]));
            Ok(())
        }
        Command::Subscriptions { lg_code, api } => {
            let list: Vec<serde_json::Value> = api.client().get(&format!("/municipalities/{lg_code}/subscriptions")).await?;
            for s in list {
                println!(
                    "{}\t{}\t{}\t{}\tgrants: {}\t{}",
                    s["module_id"].as_str().unwrap_or(""),
                    s["version"].as_str().unwrap_or(""),
                    if s["pinned"] == true { "pinned" } else { "latest" },
                    if s["active"] == true { "active" } else { "unplugged" },
                    joined(&s["grants"]),
                    s["url"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Unsubscribe { lg_code, module, api } => {
            api.client().delete(&format!("/municipalities/{lg_code}/subscriptions/{module}")).await?;
            println!("{module} unplugged from {lg_code}; its data stays (export it with the API, or subscribe again)");
            Ok(())
        }
        Command::Config(ConfigCommand::Get { lg_code, module, api }) => {
            let settings: serde_json::Map<String, serde_json::Value> = api.client().get(&format!("/municipalities/{lg_code}/modules/{module}/config")).await?;
            for (key, value) in settings {
                println!("{key}={}", value.as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::Provider(ProviderCommand::List { lg_code, api }) => {
            let listed: Vec<serde_json::Value> = api.client().get(&format!("/municipalities/{lg_code}/providers")).await?;
            for interface in listed {
                let chosen = match interface["chosen"].as_str() {
                    Some(module) => module.to_string(),
                    None if interface["platform_default"] == true => "(the platform's own data)".to_string(),
                    None => "(none: unavailable to consumers)".to_string(),
                };
                println!("{} ({}): {chosen}", interface["interface"].as_str().unwrap_or(""), interface["label"].as_str().unwrap_or(""));
                for candidate in interface["candidates"].as_array().into_iter().flatten() {
                    let items: Vec<String> = candidate["extension_items"].as_array().into_iter().flatten().map(|i| format!("{} ({})", i["name"].as_str().unwrap_or(""), i["type"].as_str().unwrap_or(""))).collect();
                    let items = if items.is_empty() { "no extension items".to_string() } else { items.join(", ") };
                    println!("  could be {} {}: {items}", candidate["module"].as_str().unwrap_or(""), candidate["version"].as_str().unwrap_or(""));
                }
            }
            Ok(())
        }
        Command::Provider(ProviderCommand::Choose { lg_code, interface, module, none: _, api }) => {
            api.client().put(&format!("/municipalities/{lg_code}/providers/{interface}"), &serde_json::json!({ "module": module })).await?;
            match module {
                Some(module) => println!("{interface} for {lg_code} is now provided by {module}"),
                None => println!("{interface} for {lg_code} is now provided by no module"),
            }
            Ok(())
        }
        Command::Notices(NoticesCommand::List { lg_code, api }) => {
            let here: serde_json::Value = api.client().get(&format!("/municipalities/{lg_code}/notices")).await?;
            for a in here["accepted"].as_array().into_iter().flatten() {
                println!("accepts {} from {} into {}", a["kind"].as_str().unwrap_or(""), joined(&a["senders"]), a["module_id"].as_str().unwrap_or(""));
            }
            for (kind, modules) in here["receivable"].as_object().into_iter().flatten() {
                println!("could take {kind} into {}", joined(modules));
            }
            for n in here["received"].as_array().into_iter().flatten() {
                println!("received #{} {} from {}/{} at {}", n["sequence"], n["kind"].as_str().unwrap_or(""), n["from_lg_code"].as_str().unwrap_or(""), n["from_module"].as_str().unwrap_or(""), n["sent_at"].as_str().unwrap_or(""));
            }
            for n in here["sent"].as_array().into_iter().flatten() {
                println!("sent {} to {}/{} at {}", n["kind"].as_str().unwrap_or(""), n["to_lg_code"].as_str().unwrap_or(""), n["module_id"].as_str().unwrap_or(""), n["sent_at"].as_str().unwrap_or(""));
            }
            Ok(())
        }
        Command::Notices(NoticesCommand::Accept { lg_code, kind, module, from, api }) => {
            let from = if from.is_empty() { vec![module.clone()] } else { from };
            api.client().put(&format!("/municipalities/{lg_code}/notices/{kind}"), &serde_json::json!({ "module": module, "from": from })).await?;
            println!("{lg_code} takes {kind} notices from {} into {module}", from.join(", "));
            Ok(())
        }
        Command::Notices(NoticesCommand::Skip { lg_code, module, sequence, reason, api }) => {
            api.client().post(&format!("/municipalities/{lg_code}/notices/queue/{module}/skip"), &serde_json::json!({ "sequence": sequence, "reason": reason })).await?;
            println!("notice {sequence} passed over for {module} at {lg_code}; the ones behind it are delivered");
            Ok(())
        }
        Command::Notices(NoticesCommand::Refuse { lg_code, kind, api }) => {
            api.client().delete(&format!("/municipalities/{lg_code}/notices/{kind}")).await?;
            println!("{lg_code} no longer takes {kind} notices (those received are still delivered)");
            Ok(())
        }
        Command::Config(ConfigCommand::Set { lg_code, module, settings, api }) => {
            let settings = key_values(&settings)?;
            let keys: Vec<String> = settings.keys().cloned().collect();
            api.client().put(&format!("/municipalities/{lg_code}/modules/{module}/config"), &serde_json::Value::Object(settings)).await?;
            println!("{module} settings for {lg_code} replaced: {}", keys.join(", "));
            Ok(())
        }
    }
}

/// `key=value` arguments as a JSON object of strings.
fn key_values(pairs: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    pairs
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).with_context(|| format!("`{kv}` is not key=value")))
        .collect()
}

/// A JSON list of strings as `a, b`, or `none`.
fn joined(list: &serde_json::Value) -> String {
    let items: Vec<&str> = list.as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
    if items.is_empty() { "none".to_string() } else { items.join(", ") }
}

/// Settings for `serve`: the file, then flags and `NUKISASHI_*` variables.
fn serve_settings(args: &ServeArgs) -> Result<Settings> {
    let mut settings = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        settings.data_dir = dir.clone();
    }
    if let Some(url) = &args.database_url {
        settings.database_url = Some(url.clone());
    }
    settings.plugins.extend(args.plugins.iter().cloned());
    if let Some(dir) = &args.plugins_dir {
        settings.plugins_dir = Some(dir.clone());
    }
    Ok(settings)
}

async fn serve(demo: bool, settings: Settings) -> Result<()> {
    let settings = Settings { demo, ..settings };
    let app = nukisashi::server::open(&settings).await?;
    // After the modules are routed, before the host says it is ready: the demo's data.
    let seeding = {
        let (app, settings) = (app.clone(), settings.clone());
        async move {
            if demo {
                nukisashi::demo::seed(&app).await.context("cannot add demo data")?;
                nukisashi::demo::seed_catalog(&app, &settings).await.context("cannot put the demo modules in the catalog")?;
            }
            Ok(())
        }
    };
    nukisashi::server::serve_warming(app, &settings, seeding).await
}

async fn municipality(cmd: MunicipalityCommand) -> Result<()> {
    match cmd {
        MunicipalityCommand::Check { lg_code } => {
            let code = LgCode::parse(&lg_code)?;
            println!("{code} is well-formed ({})", code.prefecture());
        }
        MunicipalityCommand::Add { lg_code, name, population, api } => {
            // Validate here too, so a typo gets its sentence without a round trip.
            LgCode::parse(&lg_code)?;
            let body = serde_json::json!({ "lg_code": lg_code, "name": name, "population": population });
            let m = api.client().post("/municipalities", &body).await?;
            println!("registered {} {} ({})", m["lg_code"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""), m["prefecture"].as_str().unwrap_or(""));
        }
        MunicipalityCommand::Export { lg_code, out, api } => {
            LgCode::parse(&lg_code)?;
            let done = nukisashi::transfer_client::export(&api.client(), &lg_code, &out).await?;
            println!(
                "exported {} to {}: {} bytes, sha256 {} (resumed {} times)",
                done.lg_code,
                out.display(),
                done.bytes,
                done.sha256,
                done.resumed
            );
        }
        MunicipalityCommand::Import { file, api } => {
            let done = nukisashi::transfer_client::import(&api.client(), &file).await?;
            println!(
                "imported {} from {}: {} bytes, sha256 {}, {} rows written, {} catalog rows already here (resumed {} times)",
                done.imported["lg_code"].as_str().unwrap_or("?"),
                file.display(),
                done.bytes,
                done.sha256,
                done.imported["rows"],
                done.imported["kept"],
                done.resumed
            );
        }
        MunicipalityCommand::List { server } => {
            let list: Vec<serde_json::Value> = nukisashi::client::Client::new(&server.server, None).get("/municipalities").await?;
            for m in list {
                println!("{}\t{}\t{}\t{}", m["lg_code"].as_str().unwrap_or(""), m["prefecture"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""), m["population"]);
            }
        }
    }
    Ok(())
}

fn token(cmd: TokenCommand) -> Result<()> {
    let TokenCommand::Mint { role, sub, vendor, lg_code, name, addressee_number, ttl_hours, data_dir } = cmd;
    let role: nukisashi::auth::Role = serde_json::from_value(serde_json::Value::String(role.clone()))
        .map_err(|_| anyhow::anyhow!("role `{role}` is not one of operator, vendor, admin, staff, resident"))?;
    if let Some(code) = &lg_code {
        LgCode::parse(code)?;
    }
    use nukisashi::auth::Role;
    match role {
        Role::Admin | Role::Staff if lg_code.is_none() => anyhow::bail!("admin and staff tokens belong to one municipality: add --lg-code (e.g. --lg-code 131016)"),
        Role::Vendor if vendor.is_none() => anyhow::bail!("a vendor token belongs to one vendor: add --vendor (the id the operator registered)"),
        _ => {}
    }
    if !data_dir.is_dir() {
        anyhow::bail!(
            "{} is not a data directory: start the host once (`nukisashi serve`) to create it, or point at the host's with --data-dir or NUKISASHI_DATA_DIR",
            data_dir.display()
        );
    }
    let claims = nukisashi::auth::Claims {
        sub,
        role,
        vendor_id: vendor,
        lg_code,
        name,
        addressee_number,
        iss: nukisashi::auth::LOCAL_ISSUER.into(),
        aud: nukisashi::auth::LOCAL_AUDIENCE.into(),
        exp: 0,
        iat: 0,
        nonce: None,
    };
    println!("{}", nukisashi::auth::mint(&data_dir, claims, ttl_hours * 3600)?);
    Ok(())
}

async fn vendor(cmd: VendorCommand) -> Result<()> {
    match cmd {
        VendorCommand::Keygen { out } => {
            let (private, public) = nukisashi::plugins::signing::generate().map_err(anyhow::Error::msg)?;
            nukisashi::auth::write_private(&out, private.as_bytes())?;
            println!("{public}");
            eprintln!("private key written to {}; give the operator the public key above", out.display());
        }
        VendorCommand::Register { id, name, public_key, auto_approve, api } => {
            let body = serde_json::json!({ "id": id, "name": name, "public_key": public_key, "auto_approve": auto_approve });
            api.client().post("/vendors", &body).await?;
            println!("registered vendor {id}");
        }
    }
    Ok(())
}

/// `nukisashi module check`: prints every finding, fails when there is a problem.
async fn check_module(manifest: Option<PathBuf>, component: Option<PathBuf>, config: Option<PathBuf>) -> Result<()> {
    let here = std::path::Path::new(".");
    let folder = if here.join("dev.toml").exists() { Some(nukisashi::dev::ModuleFolder::open(here)?) } else { None };
    let manifest = manifest.or_else(|| folder.as_ref().map(|f| f.manifest.clone())).or_else(|| here.join("manifest.toml").exists().then(|| here.join("manifest.toml")));
    let component = component.or_else(|| folder.as_ref().map(|f| f.component.clone()));
    if manifest.is_none() && component.is_none() {
        anyhow::bail!("nothing to check: pass --manifest and/or --component, or run it in a module folder (one with manifest.toml and dev.toml)");
    }
    let settings = match &config {
        Some(path) => nukisashi::settings::Settings::from_file(path)?,
        None => Default::default(),
    };
    let manifest_bytes = manifest.as_deref().map(read).transpose()?;
    let component_bytes = component.as_deref().map(read).transpose()?;
    let report = nukisashi::plugins::check::check(manifest_bytes.as_deref(), component_bytes.as_deref(), &settings).await?;
    for finding in &report.findings {
        match finding {
            nukisashi::plugins::check::Finding::Passed(what) => println!("ok       {what}"),
            nukisashi::plugins::check::Finding::Problem(what) => println!("PROBLEM  {what}"),
        }
    }
    let problems = report.problems().count();
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found; fix them before signing and publishing");
    }
    println!("ready to sign and publish (`nukisashi module publish`)");
    Ok(())
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn module(cmd: ModuleCommand) -> Result<()> {
    match cmd {
        ModuleCommand::New { name, lang, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            for line in nukisashi::scaffold::new_module(&dir, &name, lang, sdk.as_deref())? {
                println!("{line}");
            }
        }
        ModuleCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&nukisashi::catalog::manifest::Manifest::json_schema())?);
        }
        ModuleCommand::Check { manifest, component, config } => return check_module(manifest, component, config).await,
        ModuleCommand::Logs { module, limit, api } => {
            let entries: Vec<nukisashi::telemetry::module_logs::Entry> = api.client().get(&format!("/modules/{module}/logs?limit={limit}")).await?;
            if entries.is_empty() {
                println!("no log lines or requests of {module} on this host since it started");
            }
            for entry in entries {
                println!("{}", entry.line());
            }
        }
        ModuleCommand::Sign { files } => {
            println!("{}", files.read_and_sign()?.2);
        }
        ModuleCommand::Publish { files, api } => {
            let (manifest, component, signature) = files.read_and_sign()?;
            let v = api.client().publish(manifest, component, signature).await?;
            println!("published {} {}: {}", v["module_id"].as_str().unwrap_or(""), v["version"].as_str().unwrap_or(""), v["status"].as_str().unwrap_or(""));
        }
        ModuleCommand::Approve { module, version, reason, no_release, api } => {
            let body = serde_json::json!({ "reason": reason, "release": !no_release });
            let r = api.client().post(&format!("/modules/{module}/versions/{version}/approve"), &body).await?;
            println!("approved {module} {version}; moved: {}", r["moved"]);
        }
        ModuleCommand::Reviews { api } => {
            let pending: Vec<serde_json::Value> = api.client().get("/reviews").await?;
            if pending.is_empty() {
                println!("nothing is waiting for review");
            }
            for v in pending {
                println!(
                    "{}\t{}\tby {}\tpublished {}\trequests: {}",
                    v["module_id"].as_str().unwrap_or(""),
                    v["version"].as_str().unwrap_or(""),
                    v["published_by"].as_str().unwrap_or(""),
                    v["published_at"].as_str().unwrap_or(""),
                    joined(&v["manifest"]["capabilities"])
                );
            }
        }
        ModuleCommand::Reject { module, version, reason, api } => {
            api.client().post(&format!("/modules/{module}/versions/{version}/reject"), &serde_json::json!({ "reason": reason })).await?;
            println!("rejected {module} {version}");
        }
        ModuleCommand::Swap { module, version, lg_codes, api } => {
            let body = serde_json::json!({ "version": version, "lg_codes": (!lg_codes.is_empty()).then_some(lg_codes) });
            let r = api.client().post(&format!("/modules/{module}/swap"), &body).await?;
            println!("{module} → {version} for {} ({} µs)", r["municipalities"], r["elapsed_us"]);
        }
        ModuleCommand::Rollback { module, lg_codes, api } => {
            let body = serde_json::json!({ "lg_codes": (!lg_codes.is_empty()).then_some(lg_codes) });
            let r = api.client().post(&format!("/modules/{module}/rollback"), &body).await?;
            println!("{module} rolled back for {}", r["rolled_back"]);
        }
        ModuleCommand::Suspend { module, reason, api } => {
            api.client().post(&format!("/modules/{module}/suspend"), &serde_json::json!({ "reason": reason })).await?;
            println!("{module} suspended everywhere");
        }
        ModuleCommand::Resume { module, api } => {
            api.client().post(&format!("/modules/{module}/resume"), &serde_json::json!({})).await?;
            println!("{module} resumed");
        }
    }
    Ok(())
}

fn parse_encoding(name: &str) -> Result<nukisashi::linkage::import::Encoding> {
    nukisashi::linkage::import::Encoding::parse(name).with_context(|| format!("encoding `{name}` is not supported: use utf-8 or shift_jis"))
}

async fn linkage(cmd: LinkageCommand) -> Result<()> {
    match cmd {
        LinkageCommand::Import { lg_code, layout, encoding, file, api } => {
            LgCode::parse(&lg_code)?;
            let encoding = parse_encoding(&encoding)?;
            let path = format!("/municipalities/{lg_code}/linkage/{layout}/import?encoding={}", encoding.name());
            let r = api.client().upload(&path, &file).await?;
            println!(
                "imported {}: {} rows, {} new, {} updated, {} unchanged, {} rejected, {} changes in the feed",
                file.display(), r["rows"], r["inserted"], r["updated"], r["unchanged"], r["rejected_count"], r["changes"]
            );
            for rejected in r["rejected"].as_array().into_iter().flatten() {
                println!("  line {}: {}", rejected["line"], rejected["reason"].as_str().unwrap_or(""));
            }
        }
        LinkageCommand::Export { lg_code, layout, encoding, out, api } => {
            LgCode::parse(&lg_code)?;
            let encoding = parse_encoding(&encoding)?;
            let path = format!("/municipalities/{lg_code}/linkage/{layout}/export?encoding={}", encoding.name());
            match out {
                Some(file) => {
                    let bytes = download_to(&api.client(), &path, &file).await?;
                    eprintln!("wrote {} ({bytes} bytes)", file.display());
                }
                None => {
                    api.client().download(&path, &mut tokio::io::stdout()).await?;
                }
            }
        }
        LinkageCommand::Audit { lg_code, module, addressee_number, after, limit, api } => {
            let mut path = format!("/municipalities/{lg_code}/audit?after={after}&limit={limit}");
            if let Some(m) = module {
                path.push_str(&format!("&module={m}"));
            }
            if let Some(a) = addressee_number {
                path.push_str(&format!("&addressee_number={a}"));
            }
            let rows: Vec<serde_json::Value> = api.client().get(&path).await?;
            for r in rows {
                println!(
                    "{}\t{}\t{}@{}\t{}\t{}\t{}\t{}",
                    r["position"], r["at"].as_str().unwrap_or(""), r["module_id"].as_str().unwrap_or(""), r["module_version"].as_str().unwrap_or(""),
                    r["caller_subject"].as_str().unwrap_or(r["caller_role"].as_str().unwrap_or("")), r["interface"].as_str().unwrap_or(""),
                    r["query"].as_str().unwrap_or(""), r["records"]
                );
            }
        }
        LinkageCommand::Deliveries { lg_code, api } => {
            let rows: Vec<serde_json::Value> = api.client().get(&format!("/municipalities/{lg_code}/linkage/deliveries")).await?;
            for r in rows {
                println!(
                    "{}\t{}\tdelivered {}\tfailures {}\t{}",
                    r["feed"].as_str().unwrap_or(""), r["module"].as_str().unwrap_or(""), r["delivered"], r["failures"], r["last_error"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

fn dev(cmd: DevCommand) -> Result<()> {
    let DevCommand::Generate { lg_code, residents, place, seed, as_of, encoding, out } = cmd;
    let code = LgCode::parse(&lg_code)?;
    let encoding = parse_encoding(&encoding)?;
    let as_of = match as_of {
        Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").with_context(|| format!("--as-of `{d}` is not YYYY-MM-DD"))?,
        None => chrono::Local::now().date_naive(),
    };
    use nukisashi::linkage::generate::{Spec, generate, write_residents, write_tax};
    let spec = Spec {
        lg_code: code.to_string(),
        place: place.unwrap_or_else(|| code.prefecture().to_string()),
        residents,
        seed,
        as_of,
        shift_jis_safe: encoding == nukisashi::linkage::import::Encoding::ShiftJis,
    };
    let generated = generate(&spec);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let residents_path = out.join(format!("{code}-residents.csv"));
    let tax_path = out.join(format!("{code}-tax.csv"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&residents_path).with_context(|| format!("cannot write {}", residents_path.display()))?);
    write_residents(&mut f, &generated.residents, encoding)?;
    std::io::Write::flush(&mut f)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tax_path).with_context(|| format!("cannot write {}", tax_path.display()))?);
    write_tax(&mut f, &generated.tax, encoding)?;
    std::io::Write::flush(&mut f)?;
    println!("wrote {} ({} residents) and {} ({} tax summaries)", residents_path.display(), generated.residents.len(), tax_path.display(), generated.tax.len());
    Ok(())
}

async fn report(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Cost { month, total, fixed, population, usage, measure, csv, publish, api } => {
            let month_q = month.map(|m| format!("&month={m}")).unwrap_or_default();
            let path = format!("/reports/cost?total={total}&fixed={fixed}&population={population}&usage={usage}&measure={measure}{month_q}");
            let client = api.client();
            let r: serde_json::Value = client.get(&path).await?;
            if publish {
                let month = r["month"].as_str().unwrap_or_default();
                let policy = serde_json::json!({ "total": total, "fixed": fixed, "population": population, "usage": usage, "measure": measure });
                client.put(&format!("/cost-policies/{month}"), &policy).await?;
                eprintln!("published the policy for {month}: each municipality now sees its own share");
            }
            if csv {
                println!("団体コード,団体名,人口,利用量,均等割,人口割,利用割,負担額");
            } else {
                println!("{} (weights fixed {fixed} / population {population} / usage {usage} by {measure})", r["month"].as_str().unwrap_or(""));
            }
            for s in r["shares"].as_array().into_iter().flatten() {
                let field = |k: &str| s[k].to_string().trim_matches('"').to_string();
                if csv {
                    println!("{},{},{},{},{},{},{},{}", field("lg_code"), field("name"), field("population"), field("usage"), field("fixed"), field("by_population"), field("by_usage"), field("amount"));
                } else {
                    println!("{}\t{}\t{:>12} 円 (均等 {} / 人口 {} / 利用 {})", field("lg_code"), field("name"), field("amount"), field("fixed"), field("by_population"), field("by_usage"));
                }
            }
            if !csv {
                println!("total\t\t{:>12} 円", r["total"]);
            }
        }
        ReportCommand::Usage { month, lg_code, api } => {
            let month_q = month.map(|m| format!("?month={m}")).unwrap_or_default();
            let path = match &lg_code {
                Some(code) => format!("/municipalities/{code}/usage{month_q}"),
                None => format!("/usage{month_q}"),
            };
            let r: serde_json::Value = api.client().get(&path).await?;
            for row in r["rows"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\trequests {}\terrors {}\tcpu {} ms\tpeak memory {} bytes\tstorage {} bytes",
                    row["day"].as_str().unwrap_or(""), row["lg_code"].as_str().unwrap_or(""), row["module_id"].as_str().unwrap_or(""),
                    row["requests"], row["errors"], row["cpu_ms"], row["peak_memory_bytes"], row["storage_bytes"]
                );
            }
            for (lg, bytes) in r["storage_bytes"].as_object().into_iter().flatten() {
                println!("storage\t{lg}\t{bytes} bytes");
            }
        }
    }
    Ok(())
}

/// Downloads into `file` through a `.partial` file renamed at the end, so a broken download
/// leaves no half file behind.
async fn download_to(client: &nukisashi::client::Client, path: &str, file: &std::path::Path) -> Result<u64> {
    let partial = file.with_extension("partial");
    let mut f = tokio::fs::File::create(&partial).await.with_context(|| format!("cannot write {}", partial.display()))?;
    match client.download(path, &mut f).await {
        Ok(bytes) => {
            std::fs::rename(&partial, file)?;
            Ok(bytes)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}
