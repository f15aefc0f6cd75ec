//! berkutctl's end-to-end tests: the real `berkutctl` binary against a real
//! berkutd and a real PostgreSQL cluster, checking what an administrator or
//! a script sees: output, JSON shape and exit codes. One module per command.

mod helpers;

mod archive;
mod backup_create;
mod backup_delete;
mod backup_download;
mod backup_list;
mod backup_pin;
mod backup_show;
mod job_attach;
mod key_generate;
mod output;
mod plan_set;
mod restore_evidence;
mod restore_start;
mod status;
