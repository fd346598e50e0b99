//! `bucketftp-server`: the headless gateway. With `--endpoint` or `--provider` it serves a
//! real object store; with neither it serves a local bucket kept in a folder on this machine
//! through an embedded S3 server, so it works with no cloud account.
//!
//! `--config FILE` reads a TOML file ([`gateway::team::config_file`]): its `[server]` keys are these
//! options (a flag on the command line wins), its `[[storage]]` and `[[user]]` entries are
//! team logins. SIGHUP reloads the users and storages without dropping sessions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use gateway::config::{parse_duration, parse_port_range, parse_size};
use gateway::s3::BodyChecksum;
use gateway::team::config_file::ConfigFile;
use gateway::team::users::UserTable;
use gateway::{Addressing, Gateway, GatewayConfig, Provider, S3Settings, TransferLimits};

/// An FTP server on 127.0.0.1 bridged to S3-compatible object storage.
///
/// Log in with user `ACCESS_KEY_ID/bucket` and the secret key as password.
#[derive(Debug, Parser)]
#[command(
    name = "bucketftp-server",
    version,
    args_conflicts_with_subcommands = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file: `[server]` options (as these flags, `_` for `-`), `[[storage]]`
    /// connections and `[[user]]` logins. Flags on the command line win over the file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// With `[[user]]` logins configured, also accept `ACCESS_KEY_ID/bucket` logins.
    #[arg(long)]
    key_login: bool,
    /// Refuse (552) and do not store uploads that grow past this size (e.g. `20GiB`).
    #[arg(long, value_parser = parse_size)]
    max_file_size: Option<usize>,
    /// HASH, XSHA256, XMD5… read a file that has no stored hash (uploaded by another tool)
    /// through the hash up to this size; larger ones are refused (550).
    #[arg(long, value_parser = parse_size, default_value = "1GiB")]
    max_hash_size: usize,
    /// FTP listen address.
    #[arg(long, default_value = "127.0.0.1:2048")]
    listen: SocketAddr,
    /// Allow listening on an address other than loopback.
    #[arg(long)]
    allow_remote: bool,
    /// S3 endpoint URL (e.g. http://127.0.0.1:9000).
    #[arg(long)]
    endpoint: Option<String>,
    /// Signing region (found automatically for AWS when omitted).
    #[arg(long)]
    region: Option<String>,
    /// Provider preset: aws, oss, cos, qingstor, r2, minio, b2, wasabi, custom.
    #[arg(long)]
    provider: Option<Provider>,
    /// Path-style bucket addressing (https://endpoint/bucket/key).
    #[arg(long, conflicts_with = "virtual_host")]
    path_style: bool,
    /// Virtual-host bucket addressing (https://bucket.endpoint/key).
    #[arg(long)]
    virtual_host: bool,
    /// The checksum each upload request carries for the store to verify: md5 (Content-MD5),
    /// crc32c or crc64nvme (default: the provider's; see the README's provider table).
    #[arg(long)]
    checksum: Option<BodyChecksum>,
    /// Passive data port range.
    #[arg(long, value_parser = parse_port_range, default_value = "49152-65534")]
    passive_ports: std::ops::RangeInclusive<u16>,
    /// Multipart part size (at least 5MiB).
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    part_size: usize,
    /// Parts uploading at once per upload.
    #[arg(long, default_value_t = 4)]
    parts_in_flight: usize,
    /// Memory for part buffers across all sessions (it also bounds the part size an upload
    /// grows to: half of it; 1.5GiB lets one upload reach S3's 5 TiB).
    #[arg(long, value_parser = parse_size, default_value = "1536MiB")]
    memory_limit: usize,
    /// Seconds a session may stay idle; a transfer that moves nothing for as long is ended
    /// too (at least 1).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Seconds an upload may go without data before it is cancelled.
    #[arg(long, default_value_t = 60)]
    transfer_timeout: u64,
    /// Seconds a connection has to log in; then it is closed, whatever it sends.
    #[arg(long, default_value_t = 60)]
    login_timeout: u64,
    /// Sessions in all.
    #[arg(long, default_value_t = 64)]
    max_sessions: usize,
    /// Sessions from one client address.
    #[arg(long, default_value_t = 16)]
    max_sessions_per_ip: usize,
    /// Failed logins from one address before it is locked out.
    #[arg(long, default_value_t = 5)]
    max_login_failures: u32,
    /// Seconds failed logins count, and a lockout lasts.
    #[arg(long, default_value_t = 300)]
    lockout_secs: u64,
    /// Turn FTPS (AUTH TLS) off.
    #[arg(long, conflicts_with = "tls_cert")]
    no_tls: bool,
    /// Refuse logins and transfers without TLS (the default when --listen is not loopback;
    /// --require-tls=false allows plain FTP there, and passwords then cross the network in
    /// clear).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    require_tls: Option<bool>,
    /// A TLS data connection must resume its control connection's TLS session (the default):
    /// nobody else can take a passive port's connection, even from the client's address
    /// (a load balancer, another process on the client's machine). --require-tls-session-reuse=false
    /// or --no-tls-session-reuse for clients that cannot resume (Python's stock ftplib).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    require_tls_session_reuse: Option<bool>,
    /// The same as --require-tls-session-reuse=false.
    #[arg(long, conflicts_with = "require_tls_session_reuse")]
    no_tls_session_reuse: bool,
    /// Behind a load balancer: every control and passive data connection starts with a PROXY
    /// protocol header (HAProxy's `send-proxy-v2` or `send-proxy`) naming the client, whose
    /// address then counts for the limits, the lockout, the audit log and the data
    /// connections. A connection without one is closed.
    #[arg(long)]
    proxy_protocol: bool,
    /// The sources whose PROXY protocol headers are believed (addresses or CIDR blocks,
    /// comma-separated; default: loopback). A connection from elsewhere is closed.
    #[arg(long, value_delimiter = ',', value_parser = proxy_source, requires = "proxy_protocol")]
    proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Your own certificate chain (PEM) instead of the generated one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The IPv4 address or host name (resolved at start) that passive replies announce,
    /// for servers behind NAT.
    #[arg(long)]
    masquerade: Option<String>,
    /// Refuse uploads, deletes, renames and new folders.
    #[arg(long)]
    read_only: bool,
    /// Refuse DELE and RMD.
    #[arg(long)]
    no_delete: bool,
    /// Abort multipart uploads older than this (30s, 15m, 2h, 1d; a bare number is hours) in
    /// each bucket after its first login: uploads left behind when this server was killed
    /// mid-upload (0: off, leave them to the bucket's lifecycle rule).
    #[arg(long, value_parser = stale_age, default_value = "0")]
    abort_stale_uploads: Duration,
    /// Folder for the generated certificate and the local bucket (default: the app's data
    /// folder for this user).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder of the local bucket (default: <data dir>/local-store with --data-dir, else the
    /// user's local data folder: Local AppData on Windows).
    #[arg(long)]
    local: Option<PathBuf>,
    /// Name of the local bucket.
    #[arg(long, default_value = "local")]
    local_bucket: String,
    /// Log level: error, warn, info, debug, trace (or a RUST_LOG filter).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Append a JSON-lines audit log of logins and transfers to this file.
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
}

/// `--metrics-listen`: binds, then serves the gateway's metrics in the background.
async fn start_metrics(addr: SocketAddr) -> Result<Arc<gateway::Metrics>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}"))?;
    let metrics = Arc::new(gateway::Metrics::new());
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(gateway::serve_metrics(listener, metrics.clone()));
    Ok(metrics)
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints a FileZilla Site Manager file for a login on this server (in FileZilla:
    /// File › Import…). It asks for the password unless --include-secret is given.
    FilezillaSite(SiteArgs),
    /// Reads a password (from the terminal without echo, or the first line of standard
    /// input) and prints its argon2id hash for a `[[user]]`'s `password_hash`.
    HashPassword,
    /// Prints the BucketFTP config (TOML) equivalent to a Tencent COS FTP Server config
    /// (`conf/vsftpd.conf`); its plain-text passwords come out hashed.
    ImportCos {
        /// The COS FTP Server config file.
        file: PathBuf,
    },
    /// Prints the BucketFTP config (TOML) equivalent to a QingStor qsftpd config (YAML); its
    /// plain-text passwords come out hashed.
    ImportQsftpd {
        /// The qsftpd config file.
        file: PathBuf,
    },
}

/// A password hasher as the importers take it.
type Hasher<'a> = &'a mut dyn FnMut(&str) -> Result<String, String>;
/// `gateway::team::import::import_cos` or `import_qsftpd`.
type Importer = fn(&str, Hasher<'_>) -> Result<String, gateway::team::import::ImportError>;

/// `import-cos` / `import-qsftpd`: reads `file`, prints the TOML.
fn import(file: &std::path::Path, convert: Importer) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut hash = |pw: &str| gateway::team::users::hash_password(pw).map_err(|e| e.to_string());
    let toml = convert(&text, &mut hash).with_context(|| file.display().to_string())?;
    print!("{toml}");
    Ok(())
}

#[derive(Debug, clap::Args)]
struct SiteArgs {
    /// The login, ACCESS_KEY_ID/bucket.
    #[arg(long)]
    user: String,
    /// The host FileZilla connects to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The server's FTP port.
    #[arg(long, default_value_t = 2048)]
    port: u16,
    /// The site's name in FileZilla's Site Manager.
    #[arg(long, default_value = "BucketFTP")]
    name: String,
    /// The server runs with --no-tls: the site uses plain FTP (uploads stopped in the client
    /// cannot be told from finished ones).
    #[arg(long)]
    plain_ftp: bool,
    /// Store the secret key in the site, read from the first line of standard input (never
    /// from the command line).
    #[arg(long)]
    include_secret: bool,
}

fn filezilla_site(args: &SiteArgs) -> Result<()> {
    gateway::ftp::auth::parse_login(&args.user)
        .with_context(|| format!("--user {:?}", args.user))?;
    let secret = if args.include_secret {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the secret key from standard input")?;
        let secret = line.trim_end_matches(['\r', '\n']).to_owned();
        if secret.is_empty() {
            bail!("--include-secret: standard input held no secret key");
        }
        Some(secret)
    } else {
        None
    };
    let site = gateway::team::filezilla::Site {
        name: args.name.clone(),
        host: args.host.clone(),
        port: args.port,
        user: args.user.clone(),
        secret,
        explicit_tls: !args.plain_ftp,
    };
    print!("{}", gateway::team::filezilla::site_manager_xml(&[site]));
    Ok(())
}

/// `--abort-stale-uploads`: a duration; a bare number is hours, as before units were taken.
fn proxy_source(text: &str) -> Result<ipnet::IpNet, String> {
    gateway::ftp::proxy_protocol::parse_source(text)
}

fn stale_age(text: &str) -> Result<Duration, gateway::config::ParseError> {
    parse_duration(text, Duration::from_secs(3600))
}

fn data_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(d) = &cli.data_dir {
        return Ok(d.clone());
    }
    let dirs = directories::ProjectDirs::from("", "", "BucketFTP")
        .context("cannot find a data folder for this user; pass --data-dir DIR")?;
    Ok(dirs.data_dir().to_path_buf())
}

/// The local bucket's folder when `--local` is not given: `<--data-dir>/local-store`, or by
/// default the user's local data folder (Local AppData on Windows: the files must not roam),
/// where a store kept in the roaming data folder by earlier versions is moved once.
fn default_local_root(cli: &Cli) -> Result<PathBuf> {
    if let Some(d) = &cli.data_dir {
        return Ok(d.join(gateway::s3::local::STORE_FOLDER));
    }
    let (new, old) = gateway::s3::local::default_store_dirs()
        .context("cannot find a data folder for this user; pass --data-dir DIR or --local DIR")?;
    let moved = gateway::s3::local::relocate_store(&old, &new);
    match &moved.how {
        gateway::s3::local::Relocation::Moved => println!(
            "Moved the local bucket from {} to {} (local data: not copied by roaming profiles)",
            old.display(),
            new.display()
        ),
        gateway::s3::local::Relocation::BothExist => tracing::warn!(
            old = %old.display(),
            used = %new.display(),
            "an older local bucket folder is still there; it is not used"
        ),
        gateway::s3::local::Relocation::KeptOld(why) => tracing::warn!(
            old = %old.display(),
            new = %new.display(),
            reason = %why,
            "could not move the local bucket to the local data folder; using it where it is"
        ),
        gateway::s3::local::Relocation::Nothing => {}
    }
    Ok(moved.folder)
}

/// Resolves `--masquerade` (an IPv4 address or a host name) once, at start.
async fn resolve_masquerade(host: &str) -> Result<std::net::Ipv4Addr> {
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(ip);
    }
    let addrs = tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("cannot resolve --masquerade {host}"))?;
    addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .next()
        .with_context(|| format!("--masquerade {host} has no IPv4 address"))
}

/// `hash-password`: one password in, one PHC string out.
fn hash_password() -> Result<()> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    println!("{}", gateway::team::users::hash_password(&password)?);
    Ok(())
}

/// The first line of a clap error, without its `error: ` label.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// Parses the command line; with `--config`, the file's `[server]` keys go in front of the
/// command line's own flags (so those win), each checked alone first so that a bad value is
/// reported with the file, line and key.
fn parse_cli() -> Result<(Cli, Option<ConfigFile>)> {
    use clap::error::ErrorKind;
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    let Some(path) = cli.config.clone().filter(|_| cli.command.is_none()) else {
        return Ok((cli, None));
    };
    let file = ConfigFile::load(&path)?;
    let argv0 = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "bucketftp-server".into());
    let options = file.server_options()?;
    for option in &options {
        let alone = std::iter::once(argv0.clone()).chain(option.check.iter().cloned());
        if let Err(e) = Cli::try_parse_from(alone) {
            let message = match e.kind() {
                // Checked below, together with the rest.
                ErrorKind::MissingRequiredArgument | ErrorKind::ArgumentConflict => continue,
                ErrorKind::UnknownArgument => {
                    "unknown key (the keys are the long options of `bucketftp-server --help`, with _ for -)".to_owned()
                }
                _ => clap_message(&e),
            };
            return Err(file.server_error(option, message).into());
        }
    }
    let merged = std::iter::once(argv0)
        .chain(options.iter().flat_map(|o| o.args.iter().cloned()))
        .chain(argv.into_iter().skip(1));
    let cli = Cli::try_parse_from(merged)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), clap_message(&e)))?;
    Ok((cli, Some(file)))
}

/// The team users of `file`, secrets read from the environment or their files.
fn directory(file: &ConfigFile, key_login: bool) -> Result<gateway::team::users::Directory> {
    Ok(file.directory(key_login, &|var| std::env::var(var).ok())?)
}

/// What SIGHUP reloads: the config file and the live user table.
#[cfg(unix)]
struct Reload {
    path: PathBuf,
    table: Arc<UserTable>,
    /// `--key-login` on the real command line (the file's `key_login` is read again).
    key_login_flag: bool,
}

/// Handles SIGHUP for the whole life of the server (installed first thing, so that a SIGHUP,
/// e.g. `systemctl reload`, never ends the process). With a config file, re-reads it and puts
/// its users and storages in force for new logins; a bad file keeps the old ones and says why.
/// `[server]` keys need a restart.
#[cfg(unix)]
fn handle_sighup() -> Result<tokio::sync::oneshot::Sender<Option<Reload>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<Option<Reload>>();
    tokio::spawn(async move {
        let mut rx = Some(rx);
        let mut reload: Option<Reload> = None;
        while hup.recv().await.is_some() {
            if let Some(r) = rx.as_mut().and_then(|r| r.try_recv().ok()) {
                reload = r;
                rx = None;
            }
            let Some(r) = &reload else {
                tracing::info!("SIGHUP: nothing to reload (no --config file)");
                continue;
            };
            let loaded = ConfigFile::load(&r.path)
                .map_err(anyhow::Error::from)
                .and_then(|f| directory(&f, r.key_login_flag || f.key_login()));
            match loaded {
                Ok(dir) => {
                    let (users, key_login) = (dir.len(), dir.key_login);
                    r.table.replace(dir);
                    tracing::info!(file = %r.path.display(), users, key_login, "config reloaded: users and storages updated ([server] changes need a restart)");
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload failed; keeping the previous users and storages");
                }
            }
        }
    });
    Ok(tx)
}

fn main() -> Result<()> {
    // Named worker threads: `top -H`, `ps -L` and `perf report --sort comm` tell the
    // gateway's own threads from a store's or a client's (tokio's default name is generic).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bucketftp-io")
        .build()
        .context("cannot start the async runtime")?
        .block_on(run())
}

async fn run() -> Result<()> {
    let (cli, file) = parse_cli()?;
    match &cli.command {
        Some(Command::FilezillaSite(args)) => return filezilla_site(args),
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::ImportCos { file }) => {
            return import(file, gateway::team::import::import_cos);
        }
        Some(Command::ImportQsftpd { file }) => {
            return import(file, gateway::team::import::import_qsftpd);
        }
        None => {}
    }
    gateway::ops::logging::init(&cli.log_level);
    #[cfg(unix)]
    let sighup = handle_sighup()?;
    // With a config file the table always exists, so that a reload can add the first users.
    let users = match &file {
        Some(f) => Some(Arc::new(UserTable::new(directory(f, cli.key_login)?))),
        None => None,
    };

    if !cli.listen.ip().is_loopback() {
        if !cli.allow_remote {
            bail!(
                "refusing to listen on {} (not loopback) without --allow-remote: anyone who can reach it can try logins",
                cli.listen
            );
        }
        tracing::warn!(listen = %cli.listen, "listening on a non-loopback address");
    }
    let tls_rule = gateway::config::tls_rule(cli.listen, !cli.no_tls, cli.require_tls)?;

    let mut local_store = None;
    let mut local_login = None;
    let file_storage = file.as_ref().and_then(ConfigFile::first_storage_settings);
    let s3 = if let (None, None, Some(settings)) = (&cli.endpoint, &cli.provider, file_storage) {
        // Team server: ACCESS_KEY_ID/bucket logins (key_login) use the first storage.
        settings
    } else if cli.endpoint.is_none() && cli.provider.is_none() {
        let root = match &cli.local {
            Some(d) => d.clone(),
            None => default_local_root(&cli)?,
        };
        let local = gateway::s3::local::start_local(&root, &cli.local_bucket)
            .await
            .context("cannot start the local bucket")?;
        println!(
            "Local bucket \"{}\" stored in {} (embedded S3 endpoint {})",
            local.bucket,
            local.folder.display(),
            local.store.endpoint()
        );
        let settings = local.settings.clone();
        local_login = Some((
            local.ftp_user(),
            local.secret_key.clone(),
            root.join(localstore::CREDENTIALS_FILE),
        ));
        local_store = Some(local.store);
        settings
    } else {
        S3Settings {
            provider: cli.provider.unwrap_or(Provider::Custom),
            endpoint: cli.endpoint.clone(),
            region: cli.region.clone(),
            addressing: if cli.path_style {
                Some(Addressing::Path)
            } else if cli.virtual_host {
                Some(Addressing::VirtualHost)
            } else {
                None
            },
            checksum: cli.checksum,
        }
    };

    let tls = if cli.no_tls {
        None
    } else {
        let material = match (&cli.tls_cert, &cli.tls_key) {
            (Some(c), Some(k)) => gateway::ftp::tls::from_files(c, k)?,
            _ => gateway::ftp::tls::load_or_create(&data_dir(&cli)?)?,
        };
        println!(
            "FTPS (AUTH TLS) certificate {} SHA-256 fingerprint {}",
            material.cert_path.display(),
            material.fingerprint
        );
        Some(material)
    };
    let masquerade = match &cli.masquerade {
        Some(h) => Some(resolve_masquerade(h).await?),
        None => None,
    };

    let metrics = match cli.metrics_listen {
        Some(addr) if !addr.ip().is_loopback() && !cli.allow_remote => {
            bail!("refusing to serve metrics on {addr} (not loopback) without --allow-remote")
        }
        Some(addr) => Some(start_metrics(addr).await?),
        None => None,
    };
    let config = GatewayConfig {
        listen: cli.listen,
        s3,
        passive_ports: cli.passive_ports.clone(),
        limits: TransferLimits::new(cli.part_size, cli.parts_in_flight, cli.memory_limit)
            .context("--part-size, --parts-in-flight, --memory-limit")?,
        idle_timeout: Duration::from_secs(cli.idle_timeout),
        login_timeout: Duration::from_secs(cli.login_timeout.max(1)),
        transfer_timeout: Duration::from_secs(cli.transfer_timeout.max(1)),
        sessions: gateway::ftp::limits::SessionLimits {
            max_sessions: cli.max_sessions.max(1),
            max_per_ip: cli.max_sessions_per_ip.max(1),
        },
        lockout: gateway::ftp::limits::LockoutPolicy {
            max_failures: cli.max_login_failures.max(1),
            window: Duration::from_secs(cli.lockout_secs),
        },
        tls,
        require_tls: tls_rule.require_tls(),
        require_tls_session_reuse: !cli.no_tls_session_reuse
            && cli.require_tls_session_reuse.unwrap_or(true),
        proxy_protocol: cli
            .proxy_protocol
            .then(|| gateway::ftp::proxy_protocol::ProxyRule::new(cli.proxy_protocol_from.clone())),
        masquerade,
        abort_stale_uploads: (!cli.abort_stale_uploads.is_zero())
            .then_some(cli.abort_stale_uploads),
        login_settings: None,
        permissions: gateway::Permissions {
            read_only: cli.read_only,
            allow_delete: !cli.no_delete,
        },
        max_file_size: cli.max_file_size.map(|n| n as u64),
        max_hash_size: cli.max_hash_size as u64,
        users: users.clone(),
        metrics,
        audit_log: cli.audit_log.clone(),
    };
    let handle = Gateway::start(config).await?;
    if let Some(warning) = tls_rule.warning() {
        tracing::warn!(listen = %cli.listen, "require_tls = false: passwords cross the network in clear");
        println!("{warning}");
    } else if tls_rule.require_tls() {
        println!("TLS required: plain-text logins and data connections are refused");
    }
    if cli.proxy_protocol {
        let rule = gateway::ftp::proxy_protocol::ProxyRule::new(cli.proxy_protocol_from.clone());
        let from: Vec<String> = rule.sources().iter().map(|n| n.to_string()).collect();
        println!(
            "PROXY protocol: every connection must start with a header from {}",
            from.join(", ")
        );
    }
    println!("BucketFTP listening on {}", handle.local_addr());
    if let Some((user, password, file)) = &local_login {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            // The local store's own credential: on a terminal, printing it is how a newcomer
            // learns the login.
            println!("FTP login: user \"{user}\" password \"{password}\"");
        } else {
            // Not a terminal (a service's journal, a log file): say where the secret is.
            println!(
                "FTP login: user \"{user}\", password: the secret_access_key in {}",
                file.display()
            );
        }
    } else if let Some(table) = &users {
        let dir = table.current();
        println!(
            "FTP logins: {} user(s) from {}{}",
            dir.len(),
            file.as_ref()
                .map_or_else(String::new, |f| f.path().display().to_string()),
            if dir.key_login || dir.is_empty() {
                ", and ACCESS_KEY_ID/bucket"
            } else {
                ""
            }
        );
    } else {
        println!("FTP login: user \"ACCESS_KEY_ID/bucket\", password: the secret key");
    }
    #[cfg(unix)]
    {
        let reload = match (&users, &file) {
            (Some(table), Some(f)) => Some(Reload {
                path: f.path().to_path_buf(),
                table: table.clone(),
                key_login_flag: std::env::args_os().any(|a| a == "--key-login"),
            }),
            _ => None,
        };
        let _ = sighup.send(reload);
    }

    shutdown_signal().await;
    eprintln!("stopping: finishing running transfers (up to 30 s)");
    handle.stop(Duration::from_secs(30)).await;
    if let Some(store) = local_store {
        store.stop().await;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
