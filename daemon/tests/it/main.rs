//! berkutd's integration tests: the real daemon binary against real
//! PostgreSQL clusters, driven through the real socket with the real client.
//! One module per operation (named like the handlers), plus the protocol's
//! hostile-input tests, start-up and recovery, and life under systemd
//! (`notify`, `activation`, `shutdown`, `reload`, `logging`).

mod helpers;

mod access;
mod activation;
mod audit;
mod backup_create;
mod backup_delete;
mod backup_download;
mod backup_import;
mod backup_list;
mod backup_show;
mod connections;
mod disk_full;
mod drills;
mod events;
mod faults;
mod files_redaction;
mod job_attach;
mod leaks;
mod logging;
mod metrics;
mod notify;
mod plan_set;
mod privilege;
mod protocol;
mod recovery;
mod reload;
mod remote_copies;
mod remote_recovery;
mod remote_uploads;
mod restore_checks;
mod restore_evidence_export;
mod restore_faults;
mod restore_load;
mod restore_properties;
mod restore_settle;
mod restore_start;
mod schedule;
mod secrets;
mod shutdown;
mod smoke_checks;
mod startup;
mod status;
mod store_missing;
mod store_rewrap;
