//! Opening a store from a URL, the way an operator's tool should: never
//! creating a store by accident where one is only read.

use std::sync::Arc;

use fsmeta::MetadataStore;

use crate::CliError;

/// What the command will do with the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read it, or change records in it: the store must already exist, and
    /// a PostgreSQL schema is used as it is (never migrated).
    Existing,
    /// Copy into it: a fjall directory is created if missing, PostgreSQL
    /// tables are created or upgraded by the migrations.
    Destination,
}

/// Opens `url` (`fjall:PATH` or `postgres://…`).
pub async fn open(url: &str, access: Access) -> Result<Arc<dyn MetadataStore>, CliError> {
    let shown = redact(url);
    if url.starts_with("memory:") {
        return Err(CliError::usage(
            "memory: stores cannot be used here: each process gets a new, empty one that \
             vanishes when fsmeta exits; use fjall:PATH or postgres://…",
        ));
    }
    if let Some(path) = url.strip_prefix("fjall:") {
        return open_fjall(path, access);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(url, &shown, access).await;
    }
    Err(CliError::usage(format!(
        "store URL {shown:?}: expected fjall:PATH or postgres://…"
    )))
}

#[cfg(feature = "fjall")]
fn open_fjall(path: &str, access: Access) -> Result<Arc<dyn MetadataStore>, CliError> {
    use fsmeta::{Durability, FjallOptions, FjallStore};
    if path.is_empty() {
        return Err(CliError::usage("fjall: URL without a path (fjall:PATH)"));
    }
    let dir = std::path::Path::new(path);
    if access == Access::Existing {
        // Opening creates a store: only a directory that already holds one is read.
        let holds_something = std::fs::read_dir(dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if !holds_something {
            return Err(CliError::usage(format!(
                "no fjall store at {} (missing or empty directory)",
                dir.display()
            )));
        }
    }
    // Every commit of this tool (release, repair, each copy batch) reaches
    // the disk before fsmeta reports it done.
    let options = FjallOptions {
        durability: Durability::Sync,
        ..Default::default()
    };
    let store = FjallStore::open_with(dir, options)
        .map_err(|e| CliError::connect(&format!("fjall:{path}"), e))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "fjall"))]
fn open_fjall(_path: &str, _access: Access) -> Result<Arc<dyn MetadataStore>, CliError> {
    Err(CliError::usage(
        "this fsmeta was built without the `fjall` feature",
    ))
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    url: &str,
    shown: &str,
    access: Access,
) -> Result<Arc<dyn MetadataStore>, CliError> {
    use fsmeta::{PgOptions, PostgresStore};
    let options = PgOptions {
        max_connections: 4,
        migrate: access == Access::Destination,
        acquire_timeout: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let store = PostgresStore::connect_with(url, options)
        .await
        .map_err(|e| CliError::connect(shown, e))?;
    if access == Access::Existing {
        // Without migrations a wrong database or search_path shows up as a
        // missing table deep inside the first command: say so up front.
        let probe = async {
            let mut tx = store.begin().await?;
            tx.server_epoch().await
        };
        if let Err(e) = probe.await {
            // By SQLSTATE, not by message text (which the server's locale
            // translates, and which a missing column or function shares).
            let missing = fsmeta::backend::postgres::sqlstate_of(&e).as_deref()
                == Some(fsmeta::backend::postgres::UNDEFINED_TABLE);
            return Err(if missing {
                CliError::usage(format!(
                    "{shown} has no fsmeta tables (wrong database or search_path?); \
                     `fsmeta copy --to` or the `migration` tool creates them ({e})"
                ))
            } else {
                CliError::connect(shown, e)
            });
        }
    }
    Ok(Arc::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(
    _url: &str,
    _shown: &str,
    _access: Access,
) -> Result<Arc<dyn MetadataStore>, CliError> {
    Err(CliError::usage(
        "this fsmeta was built without the `postgres` feature",
    ))
}

/// The URL with its passwords replaced by `***`, for messages: the one in
/// the userinfo (`user:password@`) and every `password=` query parameter
/// (libpq accepts both; the parameter name in any case). The rest is kept.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _value)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://u:s3cr%40t@db:5432/x?options=a"),
            "postgres://u:***@db:5432/x?options=a"
        );
        assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact("fjall:/var/lib/x"), "fjall:/var/lib/x");
    }

    #[test]
    fn password_query_parameters_are_redacted() {
        assert_eq!(
            redact("postgres://u@db/x?password=s3cr3t&sslmode=require"),
            "postgres://u@db/x?password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db/x?sslmode=require&PassWord=a%26b&application_name=fsmeta"),
            "postgresql://db/x?sslmode=require&PassWord=***&application_name=fsmeta"
        );
        assert_eq!(
            redact("postgres://u:p@db?password=q"),
            "postgres://u:***@db?password=***"
        );
        // Other parameters, even ones that end in "password", are kept.
        assert_eq!(
            redact("postgres://u@db/x?passwordless=1&options=-csearch_path%3Dfsmeta"),
            "postgres://u@db/x?passwordless=1&options=-csearch_path%3Dfsmeta"
        );
        assert_eq!(redact("postgres://db/x?"), "postgres://db/x?");
    }
}
