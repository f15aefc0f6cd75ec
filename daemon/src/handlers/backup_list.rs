//! `backup_list`: a page of the catalogue, newest first. Pages keep every
//! reply well inside one frame however many backups there are.

use std::sync::Arc;

use berkut_proto::wire::messages::MAX_LIST_PAGE;
use berkut_proto::wire::ops::BackupList;
use berkut_proto::wire::{Reply, Role};

use super::{Op, Responder};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupList {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Viewer
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, _: &Responder) -> Result<Reply, OpError> {
        let BackupList { offset, limit } = self;
        let limit = limit.unwrap_or(MAX_LIST_PAGE);
        if !(1..=MAX_LIST_PAGE).contains(&limit) {
            return Err(OpError::invalid(format!(
                "limit must be between 1 and {MAX_LIST_PAGE}"
            )));
        }
        let (backups, total) = daemon.catalogue.read(|cat| {
            let page = cat
                .list()
                .skip(usize::try_from(offset).unwrap_or(usize::MAX))
                .take(limit as usize)
                // The database's properties can be kilobytes per record; a page
                // of a thousand must still fit one frame, so they are shown by
                // `backup_show` only; so is what became of the files.
                .map(|e| {
                    let mut record = e.record();
                    record.properties = None;
                    record.files = None;
                    record
                })
                .collect();
            (page, cat.len() as u64)
        });
        Ok(Reply::Backups { backups, total })
    }
}
