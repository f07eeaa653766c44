//! File records: put/get/upsert, delete, listing by share.

use super::TestStore;
use super::sample::{begin, commit, handle, read_file, sample_file, seed};
use crate::{Error, FileKind};

/// put_file inserts, get_file returns it equal, a second put replaces it.
pub async fn files_put_get_upsert(t: &mut dyn TestStore) {
    let mut file = sample_file(b"fh-1", "export");
    assert_eq!(
        read_file(t, &file.handle).await,
        None,
        "a new store has no files"
    );
    seed(t, std::slice::from_ref(&file), &[]).await;
    assert_eq!(read_file(t, &file.handle).await, Some(file.clone()));
    file.size = 1;
    file.kind = FileKind::Directory;
    file.share_name = "other".into();
    seed(t, std::slice::from_ref(&file), &[]).await;
    assert_eq!(
        read_file(t, &file.handle).await,
        Some(file.clone()),
        "put_file upserts"
    );
    let mut tx = begin(t).await;
    assert!(
        tx.list_files("export").await.unwrap().is_empty(),
        "the upsert left the old share's listing"
    );
    assert_eq!(tx.list_files("other").await.unwrap(), vec![file]);
}

/// delete_file removes; deleting a missing file is FileNotFound and the transaction stays usable.
pub async fn file_delete_missing_is_not_found(t: &mut dyn TestStore) {
    let file = sample_file(b"fh-1", "export");
    seed(t, std::slice::from_ref(&file), &[]).await;
    let missing = handle(b"missing");
    let mut tx = begin(t).await;
    match tx.delete_file(&missing).await {
        Err(Error::FileNotFound(h)) => assert_eq!(h, missing),
        other => panic!("delete of a missing file: expected FileNotFound, got {other:?}"),
    }
    tx.delete_file(&file.handle)
        .await
        .expect("the transaction is usable after FileNotFound");
    assert!(
        matches!(
            tx.delete_file(&file.handle).await,
            Err(Error::FileNotFound(_))
        ),
        "deleted twice"
    );
    commit(tx).await;
    assert_eq!(read_file(t, &file.handle).await, None);
}

/// list_files returns exactly one share's files, in handle order.
pub async fn list_files_by_share(t: &mut dyn TestStore) {
    let files = [
        sample_file(&[2], "share1"),
        sample_file(&[1], "share1"),
        sample_file(&[1, 0], "share1"),
        sample_file(&[3], "share10"),
        sample_file(&[4], "share"),
        sample_file(&[5], "share1/sub"),
    ];
    seed(t, &files, &[]).await;
    let mut tx = begin(t).await;
    let listed: Vec<Vec<u8>> = tx
        .list_files("share1")
        .await
        .unwrap()
        .iter()
        .map(|f| f.handle.as_bytes().to_vec())
        .collect();
    assert_eq!(
        listed,
        vec![vec![1], vec![1, 0], vec![2]],
        "share1's files in handle order, no others"
    );
    assert_eq!(
        tx.list_files("share10").await.unwrap(),
        vec![files[3].clone()]
    );
    assert_eq!(
        tx.list_files("share").await.unwrap(),
        vec![files[4].clone()]
    );
    assert!(tx.list_files("nobody").await.unwrap().is_empty());
}
