//! `fsmeta fsck [--repair]`: the library's `verify` and `repair`, printed.

use fsmeta::{MetadataStore, VerifyReport};

use crate::args::FsckArgs;
use crate::output::Out;
use crate::{CliError, Outcome};

pub async fn run(
    store: &dyn MetadataStore,
    args: &FsckArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let report = store.verify().await?;
    print(&report, out)?;
    if !args.repair || report.is_healthy() {
        return Ok(outcome(&report));
    }
    let changed = store.repair().await?;
    let noun = if changed == 1 { "entry" } else { "entries" };
    out.line(format!(
        "repair: {changed} index {noun} added or removed; checking again"
    ))?;
    let report = store.verify().await?;
    print(&report, out)?;
    if !report.is_healthy() {
        out.line("repair rebuilds indexes only: records that do not decode or break the rules are left for you (see above)")?;
    }
    Ok(outcome(&report))
}

fn print(report: &VerifyReport, out: &mut Out) -> Result<(), CliError> {
    for problem in &report.problems {
        out.line(format!(
            "{:?}: {}: {}",
            problem.kind, problem.location, problem.detail
        ))?;
    }
    let n = report.problems.len();
    let noun = if n == 1 { "problem" } else { "problems" };
    out.line(format!(
        "checked {} and {}: {}",
        plural(report.files, "file", "files"),
        plural(report.locks, "lock", "locks"),
        if n == 0 {
            "no problems".to_owned()
        } else {
            format!("{n} {noun}")
        }
    ))
}

fn outcome(report: &VerifyReport) -> Outcome {
    if report.is_healthy() {
        Outcome::Ok
    } else {
        Outcome::Problems
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
