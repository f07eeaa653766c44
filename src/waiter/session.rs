//! The node-session entry point to waiters.

use super::{Waiters, WaitersOptions};
use crate::error::Result;
use crate::session::NodeSession;

impl NodeSession {
    /// The waiters of this session's node that become grantable, as
    /// [`Waiters::subscribe`] hands them out: `options.node_id` is set to
    /// this session's node, so each server is handed only its own waiters.
    pub async fn waiters(&self, options: WaitersOptions) -> Result<Waiters> {
        let options = WaitersOptions {
            node_id: Some(self.node_id().to_owned()),
            ..options
        };
        Waiters::subscribe(self.store().clone(), options).await
    }
}
