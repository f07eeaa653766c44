//! `fsmeta copy --from URL --to URL`: the library's `copy_store`, with a
//! progress bar and the verification printed.

use std::io::IsTerminal;
use std::time::Instant;

use fsmeta::{CopyOptions, CopyPhase, CopyProgress, copy_store, store_is_empty};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::CopyArgs;
use crate::output::Out;
use crate::store::{self, Access, redact};
use crate::{CliError, Outcome};

pub async fn run(
    args: &CopyArgs,
    store_url: Option<&str>,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let from_url = args.from.as_deref().or(store_url).ok_or_else(|| {
        CliError::usage("copy: no source given: pass --from URL (or --store / FSMETA_STORE)")
    })?;
    if from_url == args.to {
        return Err(CliError::usage("copy: --from and --to name the same store"));
    }
    let from = store::open(from_url, Access::Existing).await?;
    let to = store::open(&args.to, Access::Destination).await?;
    if !args.force && !store_is_empty(&*to).await? {
        return Err(CliError::usage(format!(
            "{} is not empty; pass --force to copy into it anyway (records with the same keys are overwritten, others stay)",
            redact(&args.to)
        )));
    }
    let options = CopyOptions {
        batch_size: args.batch as usize,
        allow_non_empty: args.force,
        destination_name: Some(redact(&args.to)),
    };
    let bar = Bar::new();
    let started = Instant::now();
    let result = copy_store(&*from, &*to, &options, |p| bar.update(p)).await;
    bar.finish();
    let report = result?;
    let seconds = started.elapsed().as_secs_f64();
    out.line(format!(
        "copied {} files, {} locks, {} nodes, {} epoch records in {seconds:.2} s",
        report.files, report.locks, report.nodes, report.epoch_records
    ))?;
    out.line(format!("source:      {}", report.source))?;
    out.line(format!("destination: {}", report.destination))?;
    if report.matches() {
        out.line("verified: counts and digests match")?;
        Ok(Outcome::Ok)
    } else {
        out.line("MISMATCH: the stores differ (a server wrote to the source during the copy, or the destination held other records)")?;
        Ok(Outcome::Problems)
    }
}

/// The progress bar on stderr; hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let style =
            ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar(bar)
    }

    fn update(&self, p: CopyProgress) {
        let msg = match p.phase {
            CopyPhase::Counting => "counting",
            CopyPhase::State => "epochs",
            CopyPhase::Files => "files",
            CopyPhase::Locks => "locks",
            CopyPhase::OpenStates => "opens",
            CopyPhase::Verifying => "verifying",
            _ => "copying",
        };
        if self.0.message() != msg {
            self.0.set_message(msg);
            self.0.reset();
        }
        self.0.set_length(p.total);
        self.0.set_position(p.done);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
