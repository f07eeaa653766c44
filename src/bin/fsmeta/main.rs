//! `fsmeta`: inspect, check, repair and copy an fsmeta store.
//!
//! Built with `--features cli`. Every subcommand is a module; the work that
//! is not printing (verify, repair, copy, digest, the dead-epoch rule) lives
//! in the library.
//!
//! Exit status: 0 ok, 1 problems found (`fsck`, `copy`'s verification),
//! 2 usage, connection or store errors. Errors are one line on stderr.

mod admin;
mod args;
mod clients;
mod copy;
mod files;
mod fsck;
mod json;
mod locks;
mod nodes;
mod opens;
mod output;
mod stats;
mod store;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use fsmeta::MetadataStore;

use crate::args::{Cli, Command};
use crate::output::Out;
use crate::store::Access;

/// How a command that ran to its end came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command found problems (and printed them).
    Problems,
}

/// A failure that ends the command: a one-line message and an exit code.
#[derive(Debug)]
pub struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    /// Exit 2: bad arguments or a store that cannot be used.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }

    /// Exit 2: the store could not be opened.
    pub fn connect(store: &str, error: fsmeta::Error) -> Self {
        Self::usage(format!("cannot open {store}: {error}"))
    }

    /// A failed write to stdout. A closed pipe is not an error of fsmeta's:
    /// it ends the command quietly (code 0, no message).
    pub fn from_stdout(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CliError {
                code: 0,
                message: String::new(),
            }
        } else {
            Self::usage(format!("writing to stdout: {error}"))
        }
    }
}

impl From<fsmeta::Error> for CliError {
    fn from(error: fsmeta::Error) -> Self {
        let hint = match error {
            fsmeta::Error::Corrupt(_) => " (run `fsmeta fsck` for the full list)",
            _ => "",
        };
        Self::usage(format!("{error}{hint}"))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(error: serde_json::Error) -> Self {
        match error.io_error_kind() {
            Some(kind) => Self::from_stdout(kind.into()),
            None => Self::usage(format!("encoding JSON: {error}")),
        }
    }
}

fn main() -> ExitCode {
    // A bug must still end in one line and exit code 2, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        fail(&format!("internal error{location}: {payload}"));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    if let Command::Completions(args) = &cli.command {
        use clap::CommandFactory;
        let mut command = Cli::command();
        clap_complete::generate(args.shell, &mut command, "fsmeta", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    init_logging(cli.verbose);
    let code = std::panic::catch_unwind(|| {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return Err(CliError::usage(format!("starting the runtime: {e}"))),
        };
        runtime.block_on(run(cli))
    });
    match code {
        Ok(Ok(Outcome::Ok)) => ExitCode::SUCCESS,
        Ok(Ok(Outcome::Problems)) => ExitCode::from(1),
        Ok(Err(e)) => {
            if !e.message.is_empty() {
                fail(&e.message);
            }
            ExitCode::from(e.code)
        }
        // The hook has printed the message.
        Err(_) => ExitCode::from(2),
    }
}

/// Logs fsmeta's spans and events to stderr: `FSMETA_LOG` (an env filter,
/// e.g. `fsmeta=debug`) when set, else by `-v` count (none: warnings only).
/// Span fields (outcome, durations, counts) print when a span closes.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;
    let filter = match std::env::var("FSMETA_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "warn,fsmeta=info",
            2 => "warn,fsmeta=debug",
            _ => "info,fsmeta=trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Prints `fsmeta: MESSAGE` as one line on stderr.
fn fail(message: &str) {
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let _ = writeln!(std::io::stderr(), "fsmeta: {one_line}");
}

/// Help and version go to stdout with code 0; every other clap error becomes
/// one line (clap's message without its usage block) and code 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        fail(
            "missing subcommand (locks, files, stats, fsck, copy, release, epoch, clients, completions); see fsmeta --help",
        );
        return ExitCode::from(2);
    }
    let text = error.render().to_string();
    let first_block = text.split("\n\n").next().unwrap_or_default();
    let message = first_block.strip_prefix("error: ").unwrap_or(first_block);
    fail(&format!("{message} (see fsmeta --help)"));
    ExitCode::from(2)
}

async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let mut out = Out::new();
    let out = &mut out;
    let url = cli.store;
    let outcome = match cli.command {
        Command::Copy(args) => copy::run(&args, url.as_deref(), out).await?,
        Command::Locks(args) => locks::run(&*existing(url).await?, &args, out).await?,
        Command::Files(args) => files::run(&*existing(url).await?, &args, out).await?,
        Command::Stats(args) => stats::run(&*existing(url).await?, &args, out).await?,
        Command::Fsck(args) => fsck::run(&*existing(url).await?, &args, out).await?,
        Command::Release(args) => admin::release(&*existing(url).await?, &args, out).await?,
        Command::Epoch => admin::epoch(&*existing(url).await?, out).await?,
        Command::Nodes(args) => nodes::list(&*existing(url).await?, &args, out).await?,
        Command::Node(args) => nodes::node(&*existing(url).await?, &args, out).await?,
        Command::Clients(args) => clients::run(&*existing(url).await?, &args, out).await?,
        Command::Opens(args) => opens::opens(&*existing(url).await?, &args, out).await?,
        Command::Leases(args) => opens::leases(&*existing(url).await?, &args, out).await?,
        Command::Completions(_) => unreachable!("handled before the runtime starts"),
    };
    out.flush()?;
    Ok(outcome)
}

/// The store of `--store` / `FSMETA_STORE`, which must exist.
async fn existing(url: Option<String>) -> Result<Arc<dyn MetadataStore>, CliError> {
    let url =
        url.ok_or_else(|| CliError::usage("no store given: pass --store URL or set FSMETA_STORE"))?;
    store::open(&url, Access::Existing).await
}
