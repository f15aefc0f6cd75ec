//! Key rotation: archives made under an old key still restore after the
//! primary key changes; after `store_rewrap` the old key can be removed.

use std::os::unix::fs::PermissionsExt;

use berkut_proto::archive::MasterKey;
use berkut_proto::manifest::Scope;
use berkut_proto::wire::{ops, Operation, Reply, RestoreStatus};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_archives_survive_a_key_change_and_a_rewrap_retires_the_old_key() {
    let pg = small_cluster();
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let daemon = daemon_for(&pg).key(old.clone()).start();
    let before = backup_now(&mut daemon.client().await, Scope::Database).await;
    assert_eq!(before.key_id, Some(old.key_id().to_string()));

    // The new key becomes primary; the old one stays, for reading only.
    let dir = daemon.into_dir();
    let old_file = dir.path().join("old.key");
    std::fs::write(&old_file, &*old.to_base64()).unwrap();
    std::fs::set_permissions(&old_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let daemon = daemon_for(&pg)
        .key(new.clone())
        .env(
            "BERKUT_BACKUP_OLD_KEY_FILES",
            old_file.display().to_string(),
        )
        .dir(dir)
        .start();
    let mut client = daemon.client().await;
    let drill = restored(client.call(restore_op(&before.id, true, true)).await);
    assert_eq!(
        drill.status,
        RestoreStatus::Succeeded,
        "an old archive restores under the old key: {drill:#?}"
    );
    let after = backup_now(&mut client, Scope::Database).await;
    assert_eq!(
        after.key_id,
        Some(new.key_id().to_string()),
        "new archives use the primary key"
    );

    let Ok(Reply::Rewrapped {
        rewrapped,
        unchanged,
        busy,
        failed,
    }) = client
        .call(Operation::StoreRewrap(ops::StoreRewrap {}))
        .await
    else {
        panic!()
    };
    assert_eq!(rewrapped, vec![before.id.clone()]);
    assert_eq!((unchanged, busy.len(), failed.len()), (1, 0, 0));
    let shown = backup(
        client
            .call(Operation::BackupShow(ops::BackupShow {
                id: before.id.clone(),
            }))
            .await,
    );
    assert_eq!(shown.key_id, Some(new.key_id().to_string()));
    assert_ne!(
        shown.sha256, before.sha256,
        "the header changed, so the file's digest did"
    );
    let bytes = std::fs::read(daemon.archive_path(before.id.as_str())).unwrap();
    assert_eq!(Some(bytes.len() as u64), shown.size_bytes);

    // The old key is retired: everything still reads.
    let dir = daemon.into_dir();
    let daemon = daemon_for(&pg).key(new).dir(dir).start();
    let mut client = daemon.client().await;
    assert_eq!(
        list(client.call(Operation::list_first_page()).await).len(),
        2
    );
    let drill = restored(client.call(restore_op(&before.id, true, true)).await);
    assert_eq!(drill.status, RestoreStatus::Succeeded, "{drill:#?}");
    assert!(!daemon.log().contains("does not verify"));
}
