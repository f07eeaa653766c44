//! Node sessions: epochs stamped by the session, fencing of a restarted or
//! taken-over incarnation, liveness leases, takeover and grace, and
//! `require_lock`. "Several nodes" are several handles on one store
//! (`TestStore::store` each time), as several processes would hold.

use std::time::Duration;

use super::TestStore;
use crate::{Error, Node, NodeSession, Result, StartOptions};

/// Start options of a restart after a crash: the operator knows the
/// previous incarnation is dead, whatever its lease says.
pub fn restart() -> StartOptions {
    StartOptions {
        take_over_live: true,
        ..Default::default()
    }
}

/// A lease that has expired as soon as it is taken.
pub fn expired() -> StartOptions {
    StartOptions {
        lease: Duration::ZERO,
        take_over_live: true,
    }
}

/// Starts an incarnation of `node` on a fresh handle of the fixture's store,
/// as a restart after a crash ([`restart`]).
pub async fn start_node(t: &dyn TestStore, node: &str) -> NodeSession {
    Node::new(t.store(), node)
        .expect("a valid node id")
        .start(restart())
        .await
        .unwrap_or_else(|e| panic!("start {node}: {e}"))
}

/// Asserts that `result` is `Error::Fenced` for `session`, naming `current`.
pub fn assert_fenced<T: std::fmt::Debug>(
    what: &str,
    session: &NodeSession,
    current: u64,
    result: Result<T>,
) {
    match result {
        Err(Error::Fenced {
            node,
            epoch,
            current: now,
        }) => assert_eq!(
            (node.as_str(), epoch, now),
            (session.node_id(), session.epoch(), current),
            "{what}: the fence names the session and the node's current epoch"
        ),
        other => panic!("{what}: expected Error::Fenced, got {other:?}"),
    }
}
