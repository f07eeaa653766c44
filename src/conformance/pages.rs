//! Walking a whole store page by page.

use uuid::Uuid;

use super::TestStore;
use super::sample::{assert_invalid, begin, by_id, sample_file, sample_lock, seed};
use crate::FileHandle;

/// Pages of files and locks walk everything exactly once, in key order.
pub async fn pages_walk_everything(t: &mut dyn TestStore) {
    let files: Vec<_> = (0..23u8)
        .map(|i| sample_file(&[i % 5, i], &format!("share{}", i % 3)))
        .collect();
    let locks: Vec<_> = (0..23u8)
        .map(|i| sample_lock(&files[i as usize].handle, "o", "c", "s"))
        .collect();
    seed(t, &files, &locks).await;
    let mut tx = begin(t).await;
    let mut walked_files = Vec::new();
    let mut after: Option<FileHandle> = None;
    loop {
        let page = tx.list_files_page(after.as_ref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        walked_files.extend(page.iter().cloned());
        match page.last() {
            Some(last) => after = Some(last.handle.clone()),
            None => break,
        }
    }
    let mut expected = files.clone();
    expected.sort_by(|a, b| a.handle.cmp(&b.handle));
    assert_eq!(walked_files, expected);
    let mut walked_locks = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list_locks_page(after, 5).await.unwrap();
        walked_locks.extend(page.iter().cloned());
        match page.last() {
            Some(last) => after = Some(last.id),
            None => break,
        }
    }
    assert_eq!(walked_locks, by_id(locks.clone()));
    let middle = by_id(locks.clone())[10].id;
    assert_eq!(
        tx.list_locks_page(Some(middle), 100).await.unwrap().len(),
        12,
        "strictly after"
    );
    assert_invalid("list_locks_page limit 0", tx.list_locks_page(None, 0).await);
    assert_invalid("list_files_page limit 0", tx.list_files_page(None, 0).await);
    assert_eq!(
        tx.list_locks_page(Some(Uuid::max()), 3).await.unwrap(),
        vec![]
    );
    drop(tx);
    let report = t.store().verify().await.expect("verify");
    assert!(
        report.is_healthy(),
        "a healthy store: {:?}",
        report.problems
    );
    assert_eq!((report.files, report.locks), (23, 23));
}
