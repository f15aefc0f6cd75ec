//! `backup_create`: validates the request, queues the backup and either
//! answers with the queued record or follows the job to its end.

use std::sync::Arc;

use berkut_proto::manifest::Origin;
use berkut_proto::wire::messages::MAX_LABEL_CHARS;
use berkut_proto::wire::ops::BackupCreate;
use berkut_proto::wire::{Reply, Role};

use super::{job_attach, Op, Responder};
use crate::backup::{self, BackupRequest};
use crate::error::OpError;
use crate::state::Daemon;

impl Op for BackupCreate {
    const IN_MAINTENANCE: bool = false;

    fn role(&self) -> Role {
        Role::Operator
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn handle(self, daemon: &Arc<Daemon>, resp: &Responder) -> Result<Reply, OpError> {
        let BackupCreate {
            label,
            scope,
            include_files,
            wait,
        } = self;
        validate_label(&label)?;
        let request = BackupRequest {
            label,
            scope,
            include_files,
            origin: Origin::Manual,
        };
        let view = backup::submit(daemon, request).await?;
        let backup = if wait {
            job_attach::follow(view, resp).await?
        } else {
            view.borrow().record.clone()
        };
        Ok(Reply::Backup { backup })
    }
}

/// A label is shown in lists and logs: it must be short and printable.
pub fn validate_label(label: &str) -> Result<(), OpError> {
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(OpError::invalid(format!(
            "the label is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(OpError::invalid("the label contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_label;

    #[test]
    fn labels_are_short_and_printable() {
        assert!(validate_label("").is_ok());
        assert!(validate_label("перед миграцией 🚀").is_ok());
        assert!(validate_label(&"я".repeat(200)).is_ok());
        assert!(validate_label(&"я".repeat(201)).is_err());
        assert!(validate_label("a\nb").is_err());
        assert!(validate_label("bell\u{7}").is_err());
        assert!(validate_label("esc\u{1b}[31m").is_err());
    }
}
