//! The conformance suite on the in-memory backend.

use std::sync::Arc;

use fsmeta::conformance::{Harness, TestStore};
use fsmeta::{MemoryStore, MetadataStore};

struct Fresh;

struct Memory(MemoryStore);

#[async_trait::async_trait]
impl TestStore for Memory {
    fn store(&self) -> Arc<dyn MetadataStore> {
        Arc::new(self.0.clone())
    }
}

#[async_trait::async_trait]
impl Harness for Fresh {
    async fn create(&self) -> Option<Box<dyn TestStore>> {
        Some(Box::new(Memory(MemoryStore::new())))
    }
}

fsmeta::conformance_tests!(Fresh);
