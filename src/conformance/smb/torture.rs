//! The table of cases from smbtorture's `smb2.lock` and `raw.lock` suites,
//! each named after the test it comes from.

use super::*;

/// One step of an smbtorture-derived case. Opens are names (`owner_id`);
/// `h` and `h2` share client [`CLIENT`], `h3` stands for a second session.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// SMB2 LOCK (FAIL_IMMEDIATELY) of one element: granted, denied, or invalid range.
    Lock(&'static str, LockType, u64, u64, Want),
    /// SMB2 LOCK with UNLOCK: true = unlocked, false = `RANGE_NOT_LOCKED`.
    Unlock(&'static str, u64, u64, bool),
    /// SMB2 READ: true = allowed, false = `FILE_LOCK_CONFLICT`.
    Read(&'static str, u64, u64, bool),
    /// SMB2 WRITE: true = allowed, false = `FILE_LOCK_CONFLICT`.
    Write(&'static str, u64, u64, bool),
    /// SMB2 CLOSE: the open's locks go (the server deletes them).
    Close(&'static str),
    /// SMB2 LOCK of two elements, all or nothing: both in one transaction,
    /// rolled back when one is denied.
    LockBoth(
        &'static str,
        (LockType, u64, u64),
        (LockType, u64, u64),
        Want,
    ),
}

/// What a lock step must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// `STATUS_SUCCESS`.
    Granted,
    /// `STATUS_LOCK_NOT_GRANTED`.
    Denied,
    /// `STATUS_INVALID_LOCK_RANGE`.
    InvalidRange,
}

/// The cases, each named after the smbtorture test it comes from
/// (`source4/torture/smb2/lock.c`, `source4/torture/raw/lock.c`). Left
/// out: async, cancel, cancel-tdis, cancel-logoff (pending locks), rw-none
/// (a W2K8 bug), truncate (create dispositions), flags and lock-count
/// validation (protocol parsing), multiple-unlock test 4 (an unlock and a
/// lock in one request: INVALID_PARAMETER, protocol parsing), changetype
/// and pidhigh (SMB1 only).
fn smbtorture_cases() -> Vec<(String, Vec<Op>)> {
    use LockType::{Exclusive as X, Shared as S};
    use Op::*;
    use Want::{Denied as D, Granted as G, InvalidRange as I};
    let max = u64::MAX;
    let u32max = u64::from(u32::MAX);
    let mut cases: Vec<(String, Vec<Op>)> = vec![
        (
            "smb2.lock.valid-request".into(),
            vec![
                Lock("h", X, max, max, I),
                Lock("h", X, max, max, I),
                Lock("h", X, u32max, u32max, G),
                Lock("h", S, u32max, u32max, G),
                Lock("h", S, u32max, u32max, G),
                Unlock("h", u32max, u32max, true),
                Unlock("h", u32max, u32max, true),
                Unlock("h", u32max, u32max, true),
                Unlock("h", u32max, u32max, false),
                Unlock("h", 1, 1, false),
                Lock("h", S, 9999, 1, G),
                Lock("h", S, 9999, 1, G),
                Unlock("h", 9999, 1, true),
                Unlock("h", 9999, 1, true),
                Unlock("h", 9999, 1, false),
            ],
        ),
        (
            "smb2.lock.rw-shared".into(),
            vec![
                Lock("h", S, 0, 100, G),
                Lock("h", S, 100, 100, G),
                Write("h", 100, 100, false),
                Read("h", 100, 100, true),
                Write("h2", 100, 100, false),
                Read("h2", 100, 100, true),
                Unlock("h", 100, 100, true),
                Write("h2", 100, 100, true),
                Read("h2", 100, 100, true),
            ],
        ),
        (
            "smb2.lock.rw-exclusive".into(),
            vec![
                Lock("h", X, 0, 100, G),
                Lock("h", X, 100, 100, G),
                Write("h", 100, 100, true),
                Read("h", 100, 100, true),
                Write("h2", 100, 100, false),
                Read("h2", 100, 100, false),
                Unlock("h", 100, 100, true),
                Write("h2", 100, 100, true),
                Read("h2", 100, 100, true),
            ],
        ),
        (
            "smb2.lock.auto-unlock".into(),
            vec![
                Lock("h", X, 0, 1, G),
                Lock("h", X, 0, 1, D),
                Lock("h", X, 0, 1, D),
            ],
        ),
        (
            "smb2.lock.lock".into(),
            vec![
                // 0/0
                Lock("h", X, 0, 0, G),
                Lock("h2", X, 0, 0, G),
                Unlock("h", 0, 0, true),
                // 0/1
                Lock("h", X, 0, 1, G),
                Lock("h2", X, 0, 1, D),
                Unlock("h", 0, 1, true),
                Unlock("h", 0, 1, false),
                // 0xEEFFFFFF/4000
                Lock("h", X, 0xEEFF_FFFF, 4000, G),
                Lock("h2", X, 0xEEFF_FFFF, 4000, D),
                Unlock("h", 0xEEFF_FFFF, 4000, true),
                Unlock("h", 0xEEFF_FFFF, 4000, false),
                // 0xEF000000/4000
                Lock("h", X, 0xEF00_0000, 4000, G),
                Lock("h2", X, 0xEF00_0000, 4000, D),
                Unlock("h", 0xEF00_0000, 4000, true),
                Unlock("h", 0xEF00_0000, 4000, false),
                // (2^63 - 1)/1
                Lock("h", X, (1 << 63) - 1, 1, G),
                Lock("h2", X, (1 << 63) - 1, 1, D),
                Unlock("h", (1 << 63) - 1, 1, true),
                Unlock("h", (1 << 63) - 1, 1, false),
                // 2^63/1
                Lock("h", X, 1 << 63, 1, G),
                Lock("h2", X, 1 << 63, 1, D),
                Unlock("h", 1 << 63, 1, true),
                Unlock("h", 1 << 63, 1, false),
                // max/0
                Lock("h", X, max, 0, G),
                Lock("h2", X, max, 0, G),
                Unlock("h2", max, 0, true),
                Unlock("h", max, 0, true),
                Unlock("h", max, 0, false),
                // max/1
                Lock("h", X, max, 1, G),
                Lock("h2", X, max, 1, D),
                Unlock("h", max, 1, true),
                Unlock("h", max, 1, false),
                // max/2
                Lock("h", X, max, 2, I),
                // wrong handle unlock
                Lock("h", X, 10001, 40002, G),
                Unlock("h2", 10001, 40002, false),
                Unlock("h", 10001, 40002, true),
            ],
        ),
        (
            "smb2.lock.errorcode".into(),
            vec![
                Lock("h", X, 100, 10, G),
                Lock("h", X, 100, 10, D),
                Lock("h2", X, 100, 10, D),
                Lock("h", X, 102, 0, D),
                Lock("h2", X, 102, 0, D),
                Lock("h", X, 102, 5, D),
                Lock("h2", X, 102, 5, D),
            ],
        ),
        (
            "smb2.lock.unlock".into(),
            vec![
                // unlock exclusive (the type in the unlock does not matter)
                Lock("h", X, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
                Lock("h", S, 0, 10, G),
                Lock("h2", X, 0, 10, D),
                Unlock("h", 0, 10, true),
                // stacked 0-byte locks: the exclusive goes first
                Lock("h", X, 10, 0, G),
                Lock("h", S, 10, 0, G),
                Lock("h2", X, 5, 10, D),
                Lock("h2", S, 5, 10, D),
                Unlock("h", 10, 0, true),
                Lock("h2", S, 5, 10, G),
                Unlock("h2", 5, 10, true),
                Unlock("h", 10, 0, true),
                // stacked exclusive/shared: the exclusive goes first
                Lock("h", X, 10, 10, G),
                Lock("h", S, 10, 10, G),
                Lock("h2", X, 5, 10, D),
                Lock("h2", S, 5, 10, D),
                Unlock("h", 10, 10, true),
                Lock("h2", S, 5, 10, G),
                Unlock("h2", 5, 10, true),
                Unlock("h", 10, 10, true),
                Unlock("h", 10, 10, false),
            ],
        ),
        (
            "smb2.lock.multiple-unlock".into(),
            vec![
                // test 1: the first element is not locked, the request stops there
                Lock("h", X, 10, 10, G),
                Unlock("h", 0, 10, false),
                Lock("h", X, 10, 10, D),
                Unlock("h", 10, 10, true),
                // test 2: the first element is unlocked, the second is not locked
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 10, 10, false),
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                // test 3: two elements, the second contends: neither is held
                Lock("h", X, 10, 10, G),
                LockBoth("h", (X, 0, 10), (X, 10, 10), D),
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 10, 10, true),
                Unlock("h", 10, 10, false),
            ],
        ),
        (
            "smb2.lock.stacking".into(),
            vec![
                Lock("h", S, 0, 10, G),
                Lock("h", S, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, true),
                Lock("h", X, 0, 10, G),
                Lock("h", S, 0, 10, G),
                Lock("h", S, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, false),
                Lock("h2", S, 0, 10, G),
                Unlock("h2", 0, 10, true),
                Lock("h", X, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
                Lock("h", S, 0, 10, G),
                Lock("h", X, 0, 10, D),
                Unlock("h", 0, 10, true),
                Lock("h", X, 0, 10, G),
                Lock("h", X, 0, 10, D),
                Unlock("h", 0, 10, true),
            ],
        ),
        (
            "smb2.lock.contend".into(),
            vec![
                Lock("h", X, 0, 10, G),
                Lock("h2", S, 0, 10, D),
                Unlock("h", 0, 10, true),
            ],
        ),
        (
            // The owner is the open: there is no pid in it to change.
            "smb2.lock.context".into(),
            vec![
                Lock("h", X, 0, 10, G),
                Unlock("h", 0, 10, true),
                Unlock("h", 0, 10, false),
            ],
        ),
        (
            "smb2.lock.overlap".into(),
            vec![
                Lock("h", X, 0, 4, G),
                Lock("h", X, 2, 4, D),
                Lock("h", S, 10, 4, G),
                Lock("h", S, 12, 4, G),
                Lock("h", X, 20, 4, G),
                Lock("h3", X, 22, 4, D),
                Lock("h", S, 30, 4, G),
                Lock("h3", S, 32, 4, G),
                Lock("h", X, 40, 4, G),
                Lock("h2", X, 42, 4, D),
                Lock("h", S, 50, 4, G),
                Lock("h2", S, 52, 4, G),
                Lock("h", S, 110, 4, G),
                Lock("h", S, 112, 4, G),
                Unlock("h", 110, 6, false),
                Close("h2"),
                Close("h"),
                // the NT byte range lock bug: absent
                Lock("h", S, 0, 8, G),
                Lock("h2", S, 0, 1, G),
                Close("h"),
                Lock("h", X, 7, 1, G),
            ],
        ),
    ];
    for suite in ["smb2.lock.zerobytelength", "raw.lock.zerobytelocks"] {
        for (same, second) in [("same handle", "h"), ("two handles", "h2")] {
            let mut steps = Vec::new();
            for &((o1, l1), (o2, l2), ok) in &ZERO_BYTE_TESTS {
                steps.push(Lock("h", X, o1, l1, G));
                steps.push(Lock(second, X, o2, l2, if ok { G } else { D }));
                if ok {
                    steps.push(Unlock(second, o2, l2, true));
                }
                steps.push(Unlock("h", o1, l1, true));
            }
            cases.push((format!("{suite} ({same})"), steps));
        }
    }
    for suite in ["smb2.lock.zerobyteread", "raw.lock.zerobyteread"] {
        cases.push((
            suite.into(),
            vec![
                Lock("h", X, 0, 10, G),
                Read("h2", 5, 0, true),
                Unlock("h", 0, 10, true),
                Lock("h", X, 5, 0, G),
                Read("h2", 4, 0, true),
                Read("h2", 5, 0, true),
                Read("h2", 6, 0, true),
                Unlock("h", 5, 0, true),
            ],
        ));
    }
    // smb2.lock.range with 100 offsets spread over the 64-bit space.
    let numops = 100u64;
    let offsets: Vec<u64> = (1..=numops).map(|i| i * (u64::MAX / numops)).collect();
    let mut steps = Vec::new();
    for &o in &offsets {
        steps.push(Lock("h", X, o - 1, 1, G));
        steps.push(Lock("h2", X, o - 2, 1, G));
    }
    for &o in &offsets {
        steps.push(Lock("h", X, o - 1, 1, D));
        steps.push(Lock("h", X, o - 2, 1, D));
        steps.push(Lock("h2", X, o - 1, 1, D));
        steps.push(Lock("h2", X, o - 2, 1, D));
    }
    for &o in &offsets {
        steps.push(Unlock("h", o - 1, 1, true));
        steps.push(Unlock("h2", o - 2, 1, true));
    }
    cases.push(("smb2.lock.range".into(), steps));
    cases
}

/// The owner of an open in the cases: `h3` is on another session.
fn case_owner(open: &str) -> LockOwner {
    LockOwner {
        client_id: if open == "h3" {
            "smb-client-2".into()
        } else {
            CLIENT.into()
        },
        ..open_of(open)
    }
}

/// Every smbtorture-derived case (`smbtorture_cases` in the source), step by step, one
/// transaction a step, each case on its own file; the message names the
/// case and step that differs.
pub async fn smbtorture_lock_cases(t: &mut dyn TestStore) {
    for (case, steps) in smbtorture_cases() {
        let f = handle(case.as_bytes());
        for (i, op) in steps.iter().enumerate() {
            let at = format!("{case}, step {i}: {op:?}");
            match *op {
                Op::Lock(open, lock_type, offset, length, want) => {
                    let owner = case_owner(open);
                    let req = PersistedLock {
                        client_id: owner.client_id.clone(),
                        ..win(&f, open, lock_type, offset, length)
                    };
                    let got = match try_acquire(t, &req).await {
                        Ok(Acquire::Granted) => Want::Granted,
                        Ok(Acquire::Denied { .. }) => Want::Denied,
                        Err(crate::Error::Invalid(_)) => Want::InvalidRange,
                        other => panic!("{at}: {other:?}"),
                    };
                    assert_eq!(got, want, "{at}");
                }
                Op::Unlock(open, offset, length, ok) => {
                    let got = try_unlock(t, &f, &case_owner(open), offset, length)
                        .await
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    assert_eq!(matches!(got, Unlock::Unlocked { .. }), ok, "{at}: {got:?}");
                }
                Op::Read(open, offset, length, ok) | Op::Write(open, offset, length, ok) => {
                    let write = matches!(op, Op::Write(..));
                    let got = io_as(t, &f, &case_owner(open), offset, length, write).await;
                    assert_eq!(matches!(got, Io::Allowed), ok, "{at}: {got:?}");
                }
                Op::LockBoth(open, first, second, want) => {
                    let owner = case_owner(open);
                    let mut tx = begin(t).await;
                    let mut got = Want::Granted;
                    for (lock_type, offset, length) in [first, second] {
                        let req = PersistedLock {
                            client_id: owner.client_id.clone(),
                            ..win(&f, open, lock_type, offset, length)
                        };
                        match crate::acquire_lock(&mut *tx, &req).await {
                            Ok(Acquire::Granted) => {}
                            Ok(_) => {
                                got = Want::Denied;
                                break;
                            }
                            Err(e) => panic!("{at}: {e}"),
                        }
                    }
                    if got == Want::Granted {
                        commit(tx).await;
                    } else {
                        tx.rollback().await.expect("rollback");
                    }
                    assert_eq!(got, want, "{at}");
                }
                Op::Close(open) => {
                    let owner = case_owner(open);
                    let mut tx = begin(t).await;
                    let query = LockQuery {
                        file_id: Some(f.clone()),
                        owner_id: Some(owner.owner_id.clone()),
                        client_id: Some(owner.client_id.clone()),
                        ..Default::default()
                    };
                    for lock in tx.list_locks(&query).await.expect("list_locks") {
                        tx.delete_lock(lock.id).await.expect("delete_lock");
                    }
                    commit(tx).await;
                }
            }
        }
    }
}
