//! Command-line arguments (clap derive).

use clap::{ArgAction, Args, Parser, Subcommand};

/// Inspect, check, repair and copy an fsmeta store (file metadata and locks
/// of an NFS/SMB server).
#[derive(Debug, Parser)]
#[command(name = "fsmeta", version, max_term_width = 100)]
#[command(after_help = "\
Stores: fjall:PATH (a directory) or postgres://user@host:port/db
(pick a schema with ?options=-csearch_path%3DNAME). memory: is refused:
every process gets a new, empty one that vanishes when fsmeta exits.

Exit status: 0 ok, 1 problems found (fsck, copy verification),
2 usage, connection or store error (one line on stderr).")]
pub struct Cli {
    /// The store to work on: fjall:PATH or postgres://…
    #[arg(long, env = "FSMETA_STORE", value_name = "URL", global = true)]
    pub store: Option<String>,

    /// Log to stderr: -v info (recovery, copy, fsck), -vv debug (every
    /// transaction, commit and lock decision), -vvv trace. FSMETA_LOG (an
    /// env filter such as `fsmeta=debug`) overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List locks: who holds what on which file (STALE: from a dead epoch).
    Locks(LocksArgs),
    /// List the files of a share.
    Files(FilesArgs),
    /// Counts: files, locks per share, top clients, epoch, nodes.
    Stats(StatsArgs),
    /// Check every record and index; exit 1 when anything is wrong.
    Fsck(FsckArgs),
    /// Copy a whole store to another (e.g. fjall to PostgreSQL) and verify it.
    Copy(CopyArgs),
    /// Delete every lock of a client; prints how many.
    Release(ReleaseArgs),
    /// Print the store's global server epoch.
    Epoch,
    /// List client records: protocol, owner, epoch, reclaim-complete, last renewal, locks (EXPIRED: state revoked).
    Clients(ClientsArgs),
    /// List opens: share modes and durable handles (SMB, NFSv4, NLM).
    Opens(OpensArgs),
    /// List leases, oplocks and delegations (tombstones included).
    Leases(LeasesArgs),
    /// List nodes: epoch, lease, clean flag, live and stale locks, ALIVE/EXPIRED/DEAD.
    Nodes(NodesArgs),
    /// Operate on a node (`declare-dead`).
    Node(NodeArgs),
    /// Print a shell completion script (e.g. `fsmeta completions bash > /etc/bash_completion.d/fsmeta`).
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct OpensArgs {
    /// Only opens of this file (its handle in hex).
    #[arg(long, value_name = "HEX")]
    pub file: Option<String>,
    /// Only opens of this client id.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Only opens through this share.
    #[arg(long, value_name = "NAME")]
    pub share: Option<String>,
    /// Only disconnected (durable or persistent) opens.
    #[arg(long)]
    pub disconnected: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// Only leases and delegations on this file (its handle in hex).
    #[arg(long, value_name = "HEX")]
    pub file: Option<String>,
    /// Only those of this client id.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LocksArgs {
    /// Only locks on this file (its handle in hex).
    #[arg(long, value_name = "HEX")]
    pub file: Option<String>,
    /// Only locks of this owner id.
    #[arg(long, value_name = "ID")]
    pub owner: Option<String>,
    /// Only locks of this client id.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// Only locks taken through this share.
    #[arg(long, value_name = "NAME")]
    pub share: Option<String>,
    /// Only locks from dead epochs (reclaimable until their node's grace period ends).
    #[arg(long)]
    pub stale: bool,
    /// Print a JSON array instead of a table (fields: see the README).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FilesArgs {
    /// The share whose files to list.
    #[arg(long, value_name = "NAME")]
    pub share: String,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print a JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Rebuild the indexes from the records (one transaction), then check again.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy from [default: --store / FSMETA_STORE].
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// The store to copy into (created if missing).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Records per destination transaction.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch: u32,
    /// Copy into a destination that is not empty (same keys are overwritten).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Print a JSON array instead of a table (fields: see the README).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Declare a node dead (after its lease expired, or with --force): its
    /// epoch ends, its locks become reclaimable through any node, and the
    /// `--by` node's end of grace drops what nobody reclaimed.
    DeclareDead {
        /// The dead node.
        node: String,
        /// The node that runs the grace period of its locks (default: the
        /// single-node API's node, `default`).
        #[arg(long, default_value = fsmeta::DEFAULT_NODE)]
        by: String,
        /// Even while its lease runs: the operator knows it is dead.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ClientsArgs {
    /// Only the clients of this node.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// Print a JSON array instead of a table (fields: see the README).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The client whose locks to delete.
    #[arg(long, value_name = "ID")]
    pub client: String,
}
