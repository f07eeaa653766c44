//! `fsmeta files --share NAME`: the files of a share.

use std::io::Write;

use fsmeta::MetadataStore;

use crate::args::FilesArgs;
use crate::json::{FileJson, file_kind};
use crate::output::{Out, Table, rfc3339};
use crate::{CliError, Outcome};

pub async fn run(
    store: &dyn MetadataStore,
    args: &FilesArgs,
    out: &mut Out,
) -> Result<Outcome, CliError> {
    let mut tx = store.begin().await?;
    let files = tx.list_files(&args.share).await?;
    let _ = tx.rollback().await;
    if args.json {
        let w = out.writer();
        w.write_all(b"[").map_err(CliError::from_stdout)?;
        for (i, file) in files.iter().enumerate() {
            w.write_all(if i == 0 { b"\n  " } else { b",\n  " })
                .map_err(CliError::from_stdout)?;
            serde_json::to_writer(&mut *w, &FileJson::new(file))?;
        }
        out.line(if files.is_empty() { "]" } else { "\n]" })?;
        return Ok(Outcome::Ok);
    }
    let mut table = Table::new(&[
        "HANDLE", "KIND", "MODE", "UID", "GID", "NLINK", "SIZE", "MTIME",
    ]);
    for file in &files {
        table.row(
            out,
            vec![
                file.handle.to_hex(),
                file_kind(file.kind).to_owned(),
                format!("{:o}", file.mode),
                file.uid.to_string(),
                file.gid.to_string(),
                file.nlink.to_string(),
                file.size.to_string(),
                rfc3339(file.mtime),
            ],
        )?;
    }
    if table.finish(out)? == 0 {
        out.line("no files")?;
    }
    Ok(Outcome::Ok)
}
