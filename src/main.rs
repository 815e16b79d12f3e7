//! The `farmgate` command: `run`, `check`, `demo`, `gen-certs`, `upgrade`, and the
//! operator's helpers `completions` and `man`.

use clap::{CommandFactory, Parser, Subcommand};
use farmgate::config::{self, ConfigErrors, Snapshot};
use farmgate::farm::StateRegistry;
use farmgate::upgrade::takeover::Takeover;
use farmgate::upgrade::StartCommand;
use farmgate::Running;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How `serve` starts: taking over from an older process, and how to start
/// this binary again for the next upgrade (None: it cannot, as the demo).
#[derive(Default)]
struct Start {
    takeover: Option<Takeover>,
    start: Option<StartCommand>,
}

#[derive(Parser)]
#[command(
    name = "farmgate",
    version,
    about = "The front door for a web farm: a reverse-proxy load balancer",
    long_about = "farmgate terminates client connections, picks a server of a farm and \
                  forwards the request, streaming bodies both ways.\n\n\
                  Start with `farmgate demo` to see a farm of three backends, then write \
                  your own config (see examples/) and run `farmgate check` on it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic with a config file until SIGINT or SIGTERM (SIGHUP
    /// reloads the file, SIGUSR1 reopens the access log).
    Run {
        /// The YAML config file.
        #[arg(short, long, default_value = "config/farmgate.yaml")]
        config: PathBuf,
    },
    /// Validate a config file without serving (exit 1 listing every problem).
    Check {
        /// The YAML config file.
        #[arg(short, long, default_value = "config/farmgate.yaml")]
        config: PathBuf,
        /// `text`: one `file:line:column: key: message` line per problem;
        /// `json`: one JSON document for CI annotations.
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
    /// Run the built-in demo: three backends and a proxy in front of them.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the admin listener listens.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Where the HTTPS (TLS) listener listens.
        #[arg(long, default_value = "127.0.0.1:8443")]
        tls_listen: SocketAddr,
    },
    /// Replace a running farmgate with a new process of this binary (a new
    /// version, changed runtime settings) without losing a request: sends it
    /// SIGUSR2 and, with a pid file, waits until the new process serves.
    Upgrade {
        /// The running farmgate's pid.
        #[arg(
            long,
            conflicts_with = "pid_file",
            required_unless_present = "pid_file"
        )]
        pid: Option<i32>,
        /// The pid file it writes (`runtime.pid_file`).
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// How long to wait for the new process (with --pid-file).
        #[arg(long, default_value = "60")]
        timeout_seconds: u64,
    },
    /// Write a development CA and a localhost certificate signed by it
    /// (for development only: never trust this CA outside your machine).
    GenCerts {
        /// The directory to write ca.crt, ca.key, localhost.crt and localhost.key to.
        #[arg(long, default_value = "certs-dev")]
        out: PathBuf,
        /// Another name for the server certificate besides localhost,
        /// 127.0.0.1 and ::1 (repeatable).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Install, for example:\n  \
        farmgate completions bash > /etc/bash_completion.d/farmgate\n  \
        farmgate completions zsh > /usr/share/zsh/vendor-completions/_farmgate\n  \
        farmgate completions fish > ~/.config/fish/completions/farmgate.fish")]
    Completions {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `farmgate man | man -l -`.
    Man,
    /// Print the JSON Schema of the config file (as shipped in
    /// config/farmgate.schema.json), for editors and CI.
    Schema,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CheckFormat {
    Text,
    Json,
}

/// mimalloc instead of glibc's malloc: after a burst of connections it gives
/// the freed pages back to the system within milliseconds (glibc kept a
/// 10,000-client burst's memory, ~28 KiB per connection, until new
/// connections reused it), and it is no slower on the request path
/// (docs/performance.md, "Idle memory").
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before anything can replace the file: a binary upgrade starts this path again.
    let program = std::env::current_exe();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, format } => check(&config, format),
        Command::Run { config } => {
            let takeover = match Takeover::from_env() {
                None => None,
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    eprintln!("farmgate: binary upgrade: {e}");
                    return ExitCode::from(1);
                }
            };
            let registry = Arc::new(StateRegistry::default());
            match config::load_file(&config, &registry) {
                Ok(snapshot) => {
                    let start = program.ok().map(|program| StartCommand {
                        program,
                        args: std::env::args_os().skip(1).collect(),
                    });
                    serve(snapshot, registry, Some(config), Start { takeover, start })
                }
                Err(errors) => {
                    if let Some(t) = takeover {
                        t.failed(&format!("{errors}"));
                    }
                    report(&errors)
                }
            }
        }
        Command::Upgrade {
            pid,
            pid_file,
            timeout_seconds,
        } => upgrade_command(pid, pid_file, Duration::from_secs(timeout_seconds)),
        Command::GenCerts { out, names } => gen_certs(&out, &names),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "farmgate",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man => man(),
        Command::Schema => {
            print!("{}", config::schema::schema_json());
            ExitCode::SUCCESS
        }
        Command::Demo {
            listen,
            admin,
            tls_listen,
        } => {
            let registry = Arc::new(StateRegistry::default());
            match demo_snapshot(listen, admin, tls_listen, &registry) {
                Ok(snapshot) => serve(snapshot, registry, None, Start::default()),
                Err(errors) => report(&errors),
            }
        }
    }
}

fn report(errors: &ConfigErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!(
        "farmgate: {} problem(s); the configuration was not loaded",
        errors.0.len()
    );
    ExitCode::from(1)
}

fn check(path: &Path, format: CheckFormat) -> ExitCode {
    let loaded = config::load_file(path, &StateRegistry::default());
    if let CheckFormat::Json = format {
        // {"file", "ok", "summary", "problems": [{file, line, column, key, message}]}
        let placed = |e: &config::ConfigError| {
            serde_json::json!({
                "file": e.file,
                "line": e.line,
                "column": e.column,
                "key": e.path,
                "message": e.message,
            })
        };
        let problems: Vec<serde_json::Value> = match &loaded {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(placed).collect(),
        };
        let warnings: Vec<serde_json::Value> = loaded
            .as_ref()
            .map(|s| s.warnings.iter().map(placed).collect())
            .unwrap_or_default();
        let doc = serde_json::json!({
            "file": path.display().to_string(),
            "ok": loaded.is_ok(),
            "summary": loaded.as_ref().ok().map(|s| s.summary()),
            "problems": problems,
            "warnings": warnings,
        });
        println!("{doc}");
        return if loaded.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    match loaded {
        Ok(s) => {
            // Warnings do not refuse the file (a name may resolve later).
            for w in &s.warnings {
                println!("warning: {w}");
            }
            println!("{}: ok: {}", path.display(), s.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => report(&errors),
    }
}

/// The man page: farmgate(1) from the same definitions as `--help`, with
/// every subcommand's options in one page, and where to read more.
fn man() -> ExitCode {
    let mut cmd = Cli::command();
    cmd.build();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    let rendered = (|| -> std::io::Result<()> {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = format!("farmgate {}", sub.get_name());
            page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
            // `build` gave each subcommand its bin name, `farmgate run`.
            let sub_man = clap_mangen::Man::new(sub.clone());
            let mut part = Vec::new();
            sub_man.render_synopsis_section(&mut part)?;
            sub_man.render_description_section(&mut part)?;
            sub_man.render_options_section(&mut part)?;
            // Its sections become subsections of the command's section.
            for line in String::from_utf8_lossy(&part).lines() {
                let line = line
                    .strip_prefix(".SH ")
                    .map_or(line.to_string(), |h| format!(".SS {h}"));
                page.extend_from_slice(line.as_bytes());
                page.push(b'\n');
            }
        }
        page.extend_from_slice(MAN_TAIL.as_bytes());
        man.render_version_section(&mut page)?;
        std::io::Write::write_all(&mut std::io::stdout(), &page)
    })();
    match rendered {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farmgate: cannot write the man page: {e}");
            ExitCode::from(1)
        }
    }
}

const MAN_TAIL: &str = "\
.SH SIGNALS
.TP
\\fBTERM\\fR, \\fBINT\\fR
Graceful shutdown: stop accepting, let requests in flight finish, exit 0.
.TP
\\fBHUP\\fR
Reload the config file.
.TP
\\fBUSR1\\fR
Reopen the access log file (after logrotate moved it).
.TP
\\fBUSR2\\fR
Binary upgrade: start the binary on disk again, hand it the listening sockets, finish what this process holds, exit.
.TP
\\fBWINCH\\fR
Ignored.
.SH FILES
.TP
/etc/farmgate/farmgate.yaml
The config file of the packaged service (farmgate.service).
.TP
/usr/share/doc/farmgate/
README, configuration reference and operations guide.
.SH SEE ALSO
systemctl(1), logrotate(8)
";

fn gen_certs(out: &Path, names: &[String]) -> ExitCode {
    match farmgate::tls::devcerts::write_dev_certs(out, names) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            println!(
                "development certificates only: trust {} in a browser or curl --cacert, \
                 never in production or system-wide on a shared machine",
                out.join("ca.crt").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("farmgate: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo_snapshot(
    listen: SocketAddr,
    admin: SocketAddr,
    tls_listen: SocketAddr,
    registry: &StateRegistry,
) -> Result<Snapshot, ConfigErrors> {
    let file = "config/demo.yaml (built in)";
    let mut raw = config::parse_raw(farmgate::demo::DEMO_CONFIG, file)?;
    if let Some(l) = raw.listeners.iter_mut().find(|l| l.tls.is_none()) {
        l.bind = listen.to_string();
    }
    if let Some(l) = raw.listeners.iter_mut().find(|l| l.tls.is_some()) {
        l.bind = tls_listen.to_string();
        if let Some(tls) = &mut l.tls {
            for c in &mut tls.certificates {
                c.cert = farmgate::demo::resolve_demo_path(&c.cert);
                c.key = c.key.as_deref().map(farmgate::demo::resolve_demo_path);
            }
        }
    }
    raw.admin.bind = admin.to_string();
    let mut snapshot = config::build::build(raw, file, registry).map_err(|p| {
        ConfigErrors(
            p.0.into_iter()
                .map(|(path, message)| config::ConfigError {
                    file: file.into(),
                    line: 1,
                    column: 1,
                    path,
                    message,
                })
                .collect(),
        )
    })?;
    // A changed DNS answer builds the demo again, with the same overrides.
    snapshot.rebuild = config::snapshot::Rebuild(std::sync::Arc::new(move |registry| {
        demo_snapshot(listen, admin, tls_listen, registry)
    }));
    Ok(snapshot)
}

/// Serves until a signal. `config_path` is the file to watch and reload;
/// `None` runs the built-in demo.
fn serve(
    snapshot: Snapshot,
    registry: Arc<StateRegistry>,
    config_path: Option<PathBuf>,
    how: Start,
) -> ExitCode {
    let Start { takeover, start } = how;
    let demo = config_path.is_none();
    farmgate::log::init(&snapshot.log.level);
    farmgate::listener::limit::raise_fd_limit(&snapshot);
    // Every serving thread runs a current-thread runtime of its own and
    // keeps its connections (`listener::workers`): no work stealing, whose
    // atomics, thread wake-ups and tasks moving between cores profiling
    // showed cost CPU per request for nothing. This thread is the first.
    let threads = snapshot.runtime.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("farmgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        if let Err(e) = farmgate::listener::workers::start(threads) {
            eprintln!("farmgate: cannot start {threads} serving threads: {e}");
            return ExitCode::from(1);
        }
        if demo {
            if let Err(e) = farmgate::demo::start_backends().await {
                eprintln!("farmgate: {e}");
                return ExitCode::from(1);
            }
        }
        // Before any listener binds: see `signals::register`.
        let signals = match farmgate::signals::register() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("farmgate: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let summary = snapshot.summary();
        let file = snapshot.file.clone();
        let pid_file = snapshot.runtime.pid_file.clone();
        if let Some(t) = &takeover {
            // Before the first request: drained stays drained, down stays down.
            let kept = t.apply(&snapshot);
            tracing::info!(
                "binary upgrade: taking over from pid {}; {kept} server(s) keep a drained, disabled or down state",
                t.from_pid
            );
        }
        let started = match &config_path {
            Some(path) => Running::start_watching(snapshot, registry, path.clone()).await,
            None => Running::start(snapshot, registry).await,
        };
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                if let Some(t) = takeover {
                    t.failed(&e.to_string());
                }
                eprintln!("farmgate: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some(start) = start {
            running.gateway.upgrade.enable(start);
        }
        if let Some(path) = &pid_file {
            if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
                tracing::warn!("cannot write the pid file {}: {e}", path.display());
            }
        }
        if let Some(t) = takeover {
            farmgate::upgrade::takeover::close_unused();
            let from = t.from_pid;
            match t.ready() {
                Ok(()) => tracing::info!("took over from pid {from}"),
                Err(e) => tracing::warn!("could not tell pid {from} that this process serves: {e}"),
            }
            // Under systemd this process becomes the unit's main process.
            farmgate::notify::main_pid();
        }
        tracing::info!("serving {file}: {summary}");
        let shutdown = signals.serve(running.gateway.clone());
        farmgate::notify::ready(&summary);
        let _watchdog = farmgate::notify::spawn_watchdog();
        if demo {
            let tls_addr = running
                .gateway
                .bound_listeners()
                .iter()
                .find(|l| l.tls)
                .map(|l| l.addr);
            println!(
                "{}",
                farmgate::demo::banner(running.first_addr(), tls_addr, running.admin_addr())
            );
        }
        if let Some(new_pid) = shutdown.wait(&running.gateway).await {
            tracing::info!(
                "handed over to pid {new_pid}: no new connections; finishing {} connection(s) and {} upgraded connection(s)",
                running.gateway.connections.active(),
                farmgate::proxy::upgrade::open_tunnels()
            );
            let done = running.retire().await;
            tracing::info!(
                "drained after the upgrade to pid {new_pid}: {} connection(s) and {} upgraded connection(s) finished in {:.1}s, {} closed at the deadline",
                done.connections,
                done.upgraded,
                done.took.as_secs_f64(),
                done.left
            );
            return ExitCode::SUCCESS;
        }
        farmgate::notify::stopping();
        // A reload may have changed it.
        let shutdown_timeout = running.gateway.snapshot().runtime.shutdown_timeout;
        tracing::info!("shutting down: no new connections; waiting up to {shutdown_timeout:?} for requests in flight");
        let left = running.shutdown(shutdown_timeout).await;
        if left > 0 {
            tracing::warn!("{left} connection(s) still open at the shutdown timeout");
        }
        if let Some(path) = &pid_file {
            // Unless a newer process wrote its own since.
            let ours = std::fs::read_to_string(path)
                .is_ok_and(|p| p.trim() == std::process::id().to_string());
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// `farmgate upgrade`: SIGUSR2 to the running process; with a pid file,
/// waits until a new pid serves.
fn upgrade_command(pid: Option<i32>, pid_file: Option<PathBuf>, timeout: Duration) -> ExitCode {
    let read_pid =
        |path: &Path| -> Option<i32> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let old = match (pid, &pid_file) {
        (Some(p), _) => p,
        (None, Some(path)) => match read_pid(path) {
            Some(p) => p,
            None => {
                eprintln!("farmgate: no pid in {}", path.display());
                return ExitCode::from(1);
            }
        },
        (None, None) => unreachable_usage(),
    };
    let Some(target) = rustix::process::Pid::from_raw(old) else {
        eprintln!("farmgate: {old} is not a pid");
        return ExitCode::from(1);
    };
    if let Err(e) = rustix::process::kill_process(target, rustix::process::Signal::USR2) {
        eprintln!("farmgate: cannot signal pid {old}: {e}");
        return ExitCode::from(1);
    }
    let Some(path) = pid_file else {
        println!("sent SIGUSR2 to pid {old}; its log says when the new process serves");
        return ExitCode::SUCCESS;
    };
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(new) = read_pid(&path).filter(|&p| p != old) {
            println!("upgraded: pid {old} -> {new}");
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "farmgate: no new process took over from pid {old} within {timeout:?}; pid {old} keeps serving and its log says why"
    );
    ExitCode::from(1)
}

fn unreachable_usage() -> ! {
    eprintln!("farmgate: upgrade needs --pid or --pid-file");
    std::process::exit(2)
}
