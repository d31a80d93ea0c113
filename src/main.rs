//! The `serverless-wasm` command: parse arguments, load the configuration,
//! then either check it or serve it. Errors end here, as one message and a
//! non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use serverless_wasm::config::{self, Config, DEFAULT_LOG_BUFFER_BYTES, HandlerSpec, InstancePolicy};
use serverless_wasm::logging::{self, LogFormat, Logging};
use serverless_wasm::server::routes::{Generation, SharedAnswer};
use serverless_wasm::server::{self, RunOptions};

/// Runs sandboxed WebAssembly request handlers, one pinned shard per CPU.
#[derive(Parser)]
#[command(name = "serverless-wasm", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (the default when no command is given).
    Serve(ServeArgs),
    /// Parse and validate the configuration, fetch, load and link every
    /// guest, print a summary; exit non-zero on any problem.
    Check(ServeArgs),
    /// Fetch and compile every guest into the caches (`[sources] cache_dir`,
    /// `[server] compile_cache_dir`) without serving: for image builds and
    /// deploy pipelines, so that the server then starts from the caches.
    Compile(ServeArgs),
}

/// What the command does once the configuration is loaded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Check,
    Compile,
}

#[derive(Args)]
struct ServeArgs {
    /// The TOML configuration file.
    config: Option<PathBuf>,
    /// Number of shards (executors); default: one per available CPU.
    #[arg(long)]
    shards: Option<usize>,
    /// CPUs to pin shards to, e.g. "0,2" or "0-3"; shard i runs on the
    /// i-th CPU of the list (wrapping around).
    #[arg(long, value_parser = parse_cpu_list)]
    cpus: Option<CpuList>,
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = LogFormat::from_str)]
    log_format: LogFormat,
    /// Reload when the configuration file or a route's local module file
    /// changes (for development; SIGHUP and `POST /reload` reload too).
    #[arg(long)]
    watch: bool,
}

/// `--cpus 0,2-3`, parsed.
#[derive(Clone)]
struct CpuList(Vec<usize>);

fn parse_cpu_list(text: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to)?);
                if from > to {
                    return Err(format!("empty CPU range {part:?}"));
                }
                cpus.extend(from..=to);
            }
            None => cpus.push(number(part)?),
        }
    }
    if cpus.is_empty() {
        return Err("the CPU list is empty".into());
    }
    Ok(CpuList(cpus))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, mode) = match cli.command {
        Some(Command::Check(args)) => (args, Mode::Check),
        Some(Command::Compile(args)) => (args, Mode::Compile),
        Some(Command::Serve(args)) => (args, Mode::Serve),
        None => (cli.serve, Mode::Serve),
    };
    // One TLS crypto provider for the whole process (module fetches, and
    // every rustls user after them), chosen here rather than left to
    // whichever dependency asks first: aws-lc-rs, which object_store's S3
    // support requires.
    if rustls::crypto::aws_lc_rs::default_provider().install_default().is_err() {
        eprintln!("error: a TLS crypto provider was installed before main");
        return ExitCode::FAILURE;
    }
    let Some(config_path) = args.config.clone() else {
        eprintln!(
            "error: no configuration file given\n\nUsage: serverless-wasm [check|compile] <CONFIG> [--shards N] [--cpus LIST] [--log-format text|json] [--watch]"
        );
        return ExitCode::from(2);
    };
    // The config is not read yet: rings of the default size until it is.
    let logging = match logging::init(args.log_format, DEFAULT_LOG_BUFFER_BYTES) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("error: cannot start logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(&logging, &config_path, &args, mode);
    // Every line logged is written before the process ends, and before the
    // error below (which goes straight to stderr).
    logging.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(logging: &Logging, config_path: &std::path::Path, args: &ServeArgs, mode: Mode) -> anyhow::Result<()> {
    let config = config::load(config_path)?;
    // Sizes the ring of each thread whose first line comes after this: the
    // shards, and this thread too unless it logged already (it does not).
    logging.set_buffer_bytes(config.server.log_buffer_bytes);
    let cpus = args
        .cpus
        .as_ref()
        .map(|c| c.0.as_slice())
        .or(config.server.cpus.as_deref());
    let placement = server::plan_shards(args.shards.or(config.server.shards), cpus)?;
    // Before the guests compile: a bad path fails the start at once.
    if let Some(access_log) = config.access_log.as_ref().filter(|_| mode == Mode::Serve) {
        logging
            .open_access_log(access_log)
            .map_err(|e| anyhow::anyhow!("cannot open the access log {}: {e}", access_log.target))?;
    }
    let prepared = server::prepare(config, placement.len())?;
    match mode {
        Mode::Check => {
            print_summary(&prepared.generation, &placement);
            return Ok(());
        }
        Mode::Compile => {
            print_caches(&prepared.shared.config);
            return Ok(());
        }
        Mode::Serve => {}
    }
    let options = RunOptions {
        config_path: config_path.to_path_buf(),
        watch: args.watch,
    };
    let stopped = server::run(prepared, placement, logging.clone(), options)?;
    if stopped.abandoned > 0 {
        anyhow::bail!(
            "the drain deadline (drain_timeout_ms) cut {} request(s) in flight",
            stopped.abandoned
        );
    }
    Ok(())
}

fn print_summary(generation: &Generation, placement: &[usize]) {
    let config: &Config = &generation.config;
    println!("{}: OK", config.source.display());
    println!(
        "listen_address {}, {} shard(s) on CPUs {:?}",
        config.listen_address,
        placement.len(),
        placement
    );
    let routes = &generation.routes;
    println!("{} route(s):", routes.len());
    for route in routes {
        // The route as written, and its name when it has its own.
        let pattern = format!("{} {}", route.method, route.path);
        let label = if route.name == pattern {
            pattern
        } else {
            format!("{pattern} ({})", route.name)
        };
        match &route.answer {
            SharedAnswer::Static(response) => {
                let content_type = response.headers.first().map(|(_, v)| String::from_utf8_lossy(v));
                println!(
                    "  {:<28} static  status {}, {} bytes, {}",
                    label,
                    response.status,
                    response.body.len(),
                    content_type.unwrap_or_default()
                );
            }
            SharedAnswer::Guest { guest, spec: w, digest } => {
                let instance = match w.limits.instance {
                    InstancePolicy::Fresh => "fresh".to_string(),
                    InstancePolicy::Reuse { .. } => format!("reuse ({})", guest.reuse_quota(&w.limits)),
                };
                let entry = if guest.has_named_entry() {
                    format!(" export {:?}", w.function)
                } else {
                    String::new()
                };
                let stores = if w.key_value_stores.is_empty() {
                    String::new()
                } else {
                    format!(", key-value stores {}", w.key_value_stores.join(" "))
                };
                println!(
                    "  {:<28} wasm    {} (sha256 {}){}: {}; instance {}, fuel {}, memory {} KiB, timeout {} ms, outbound {}{}",
                    label,
                    w.source,
                    digest,
                    entry,
                    guest.kind(),
                    instance,
                    w.limits.fuel,
                    w.limits.memory_limit >> 10,
                    w.limits.timeout.as_millis(),
                    if w.outbound.allowed.is_empty() {
                        "none".to_string()
                    } else {
                        w.outbound
                            .allowed
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    },
                    stores
                );
            }
        }
    }
}

/// What `compile` leaves behind.
fn print_caches(config: &Config) {
    let remote = config.routes.iter().any(|r| match &r.handler {
        HandlerSpec::Wasm(w) => w.source.is_remote(),
        HandlerSpec::Static(_) => false,
    });
    // Only a pinned module starts from the cache: an unpinned address is
    // fetched at every start, image or not.
    for route in &config.routes {
        if let HandlerSpec::Wasm(w) = &route.handler
            && w.source.is_remote()
            && w.sha256.is_none()
            && w.source.oci_pinned_manifest().is_none()
        {
            println!(
                "note: route {} ({}) is not pinned: it is fetched again at every start; add its sha256 to start from the cache",
                route.name, w.source
            );
        }
    }
    match (&config.sources.cache_dir, remote) {
        (Some(dir), true) => println!("modules cached in {}", dir.display()),
        (None, true) => println!("modules fetched, but not kept: no [sources] cache_dir"),
        (_, false) => println!("no module to fetch: every file_path is local"),
    }
    match &config.server.compile_cache_dir {
        Some(dir) => println!("guests compiled into {}", dir.display()),
        None => println!("guests compiled and checked, but not kept: set [server] compile_cache_dir to keep them"),
    }
}
