//! Sample values for the wire tests: records in each state, progress,
//! statuses, plans, and a list of every client and server message variant
//! (with edge-case ids, labels and versions) that the round-trip, shape and
//! property tests walk through.

use berkut_proto::ids::BackupId;
use berkut_proto::manifest::{Origin, Scope};
use berkut_proto::wire::messages::MAX_LABEL_CHARS;
use berkut_proto::wire::{
    BackupRecord, BackupStatus, ClientMessage, ErrorBody, ErrorCode, Failure, JobInfo, JobKind,
    Operation, Phase, PlanInfo, PlanSpec, Preset, Progress, Reply, ServerMessage, StatusInfo,
    PROTOCOL_VERSION,
};
use time::macros::datetime;

pub(super) fn backup_id() -> BackupId {
    "20260102T030405Z-0a0b0c0d".parse().unwrap()
}

pub(super) fn queued_record() -> BackupRecord {
    BackupRecord {
        id: backup_id(),
        label: "nightly".into(),
        scope: Scope::Full,
        include_files: false,
        origin: Origin::Manual,
        status: BackupStatus::Queued,
        created_at: datetime!(2026-01-02 03:04:05 UTC),
        started_at: None,
        finished_at: None,
        size_bytes: None,
        sha256: None,
        key_id: None,
        database: None,
        failure: None,
        pinned: false,
    }
}

pub(super) fn succeeded_record() -> BackupRecord {
    BackupRecord {
        status: BackupStatus::Succeeded,
        started_at: Some(datetime!(2026-01-02 03:04:06.25 UTC)),
        finished_at: Some(datetime!(2026-01-02 03:05:00 UTC)),
        size_bytes: Some(123_456_789),
        sha256: Some("ab".repeat(32)),
        key_id: Some("0123456789abcdef".into()),
        database: Some("app".into()),
        ..queued_record()
    }
}

pub(super) fn failed_record() -> BackupRecord {
    BackupRecord {
        status: BackupStatus::Failed,
        label: "перед миграцией".into(),
        scope: Scope::Schema,
        include_files: true,
        origin: Origin::Scheduled,
        finished_at: Some(datetime!(2026-01-02 03:04:07 +03:00)),
        failure: Some(Failure {
            code: ErrorCode::Unavailable,
            reason: "the database is not reachable (correlation id 00000000deadbeef)".into(),
        }),
        ..queued_record()
    }
}

pub(super) fn pinned_record() -> BackupRecord {
    BackupRecord {
        pinned: true,
        origin: Origin::Scheduled,
        label: "scheduled (daily)".into(),
        ..succeeded_record()
    }
}

pub(super) fn progress(phase: Phase) -> Progress {
    Progress {
        job_id: backup_id(),
        phase,
        tables_done: 3,
        tables_total: 10,
        bytes_done: 1 << 20,
    }
}

/// The status of the worked example in `docs/PROTOCOL.md`.
pub(super) fn example_status() -> StatusInfo {
    StatusInfo {
        version: "0.1.0".into(),
        protocol_version: 1,
        started_at: datetime!(2026-01-02 03:04:05 UTC),
        uptime_seconds: 42,
        max_parallel: 2,
        running: 0,
        queued: 0,
        jobs: vec![],
        backups: 3,
        newest_success_at: None,
        newest_success_age_seconds: None,
        rpo_limit_seconds: None,
        rpo_breached: false,
        dev_mode: false,
    }
}

pub(super) fn busy_status() -> StatusInfo {
    StatusInfo {
        running: 1,
        queued: 1,
        jobs: vec![
            JobInfo {
                id: backup_id(),
                kind: JobKind::Backup,
                status: BackupStatus::Running,
                queued_at: datetime!(2026-01-02 03:04:05 UTC),
                started_at: Some(datetime!(2026-01-02 03:04:05.000000001 UTC)),
                progress: progress(Phase::Dump),
            },
            JobInfo {
                id: "20260102T030406Z-ffffffff".parse().unwrap(),
                kind: JobKind::Backup,
                status: BackupStatus::Queued,
                queued_at: datetime!(2026-01-02 03:04:06 UTC),
                started_at: None,
                progress: Progress {
                    job_id: "20260102T030406Z-ffffffff".parse().unwrap(),
                    phase: Phase::Queued,
                    tables_done: 0,
                    tables_total: 0,
                    bytes_done: 0,
                },
            },
        ],
        newest_success_at: None,
        newest_success_age_seconds: Some(60),
        rpo_limit_seconds: Some(93_600),
        rpo_breached: false,
        dev_mode: true,
        ..example_status()
    }
}

/// A plan is enabled and the newest good backup is too old.
pub(super) fn breached_status() -> StatusInfo {
    StatusInfo {
        newest_success_at: Some(datetime!(2026-01-01 02:00:00.5 UTC)),
        newest_success_age_seconds: Some(u64::from(u32::MAX) + 1),
        rpo_limit_seconds: Some(95_040),
        rpo_breached: true,
        ..example_status()
    }
}

/// `{"preset": "daily", "at": "02:00"}` with every default filled in.
pub(super) fn daily_spec() -> PlanSpec {
    PlanSpec {
        preset: Preset::Daily,
        at: Some("02:00".into()),
        weekday: None,
        timezone: None,
        cron: None,
        scope: Scope::Full,
        include_files: false,
        retention_days: 30,
        keep_last_successful: 7,
        catch_up: true,
    }
}

/// One plan of each preset, each field away from its default somewhere.
pub(super) fn plan_specs() -> Vec<PlanSpec> {
    vec![
        daily_spec(),
        PlanSpec {
            preset: Preset::Weekly,
            at: Some("23:59".into()),
            weekday: Some("Sun".into()),
            timezone: Some("Europe/Berlin".into()),
            scope: Scope::Database,
            include_files: true,
            ..daily_spec()
        },
        PlanSpec {
            preset: Preset::MonthlyStart,
            at: Some("00:00".into()),
            retention_days: 0,
            keep_last_successful: 0,
            ..daily_spec()
        },
        PlanSpec {
            preset: Preset::MonthlyEnd,
            timezone: Some("America/Argentina/Buenos_Aires".into()),
            retention_days: u32::MAX,
            keep_last_successful: u32::MAX,
            catch_up: false,
            ..daily_spec()
        },
        PlanSpec {
            preset: Preset::Cron,
            at: None,
            cron: Some("*/15 8-18 * * MON-FRI".into()),
            timezone: Some("UTC".into()),
            scope: Scope::Schema,
            ..daily_spec()
        },
    ]
}

/// What `plan_show` says before any plan was set.
pub(super) fn unset_plan() -> PlanInfo {
    PlanInfo {
        enabled: false,
        preset: None,
        at: None,
        weekday: None,
        timezone: None,
        cron: None,
        scope: Scope::Full,
        include_files: false,
        retention_days: 0,
        keep_last_successful: 0,
        catch_up: false,
        next_run: None,
        last_success: None,
    }
}

/// A weekly plan in force, with its next run and last success.
pub(super) fn weekly_plan() -> PlanInfo {
    PlanInfo {
        enabled: true,
        preset: Some(Preset::Weekly),
        at: Some("02:30".into()),
        weekday: Some("sunday".into()),
        timezone: Some("Europe/Berlin".into()),
        cron: None,
        scope: Scope::Full,
        include_files: true,
        retention_days: 30,
        keep_last_successful: 7,
        catch_up: true,
        next_run: Some(datetime!(2026-01-04 01:30 UTC)),
        last_success: Some(datetime!(2025-12-28 01:30:00.123456789 UTC)),
    }
}

pub(super) fn all_operations() -> Vec<Operation> {
    vec![
        Operation::Status,
        Operation::BackupCreate {
            label: String::new(),
            scope: Scope::Full,
            include_files: false,
            wait: false,
        },
        Operation::BackupCreate {
            label: "перед миграцией 🚀".into(),
            scope: Scope::Database,
            include_files: true,
            wait: true,
        },
        Operation::BackupCreate {
            label: "x".repeat(MAX_LABEL_CHARS),
            scope: Scope::Schema,
            include_files: false,
            wait: true,
        },
        Operation::list_first_page(),
        Operation::BackupList {
            offset: 1000,
            limit: Some(10),
        },
        Operation::BackupShow { id: backup_id() },
        Operation::BackupDelete { id: backup_id() },
        Operation::JobAttach { id: backup_id() },
        Operation::BackupPin { id: backup_id() },
        Operation::BackupUnpin { id: backup_id() },
        Operation::PlanShow,
        Operation::PlanEnable,
        Operation::PlanDisable,
    ]
    .into_iter()
    .chain(
        plan_specs()
            .into_iter()
            .map(|plan| Operation::PlanSet { plan }),
    )
    .collect()
}

pub(super) fn all_client_messages() -> Vec<ClientMessage> {
    let mut out = vec![
        ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            client: "berkutctl 0.1.0".into(),
        },
        ClientMessage::Hello {
            protocol_version: u32::MAX,
            client: String::new(),
        },
    ];
    for (n, op) in all_operations().into_iter().enumerate() {
        let id = [0, 1, 127, 128, 255, 65_536, u32::MAX as u64 + 1, u64::MAX][n % 8];
        out.push(ClientMessage::Request { id, op });
    }
    out
}

pub(super) fn all_replies() -> Vec<Reply> {
    vec![
        Reply::Status {
            status: example_status(),
        },
        Reply::Status {
            status: busy_status(),
        },
        Reply::Backup {
            backup: queued_record(),
        },
        Reply::Backup {
            backup: succeeded_record(),
        },
        Reply::Backup {
            backup: failed_record(),
        },
        Reply::Backups {
            backups: vec![],
            total: 0,
        },
        Reply::Backups {
            total: 7,
            backups: vec![succeeded_record(), failed_record(), queued_record()],
        },
        Reply::Status {
            status: breached_status(),
        },
        Reply::Backup {
            backup: pinned_record(),
        },
        Reply::Deleted { id: backup_id() },
        Reply::Plan { plan: unset_plan() },
        Reply::Plan {
            plan: weekly_plan(),
        },
        // After `plan_disable`: no next run.
        Reply::Plan {
            plan: PlanInfo {
                enabled: false,
                next_run: None,
                ..weekly_plan()
            },
        },
    ]
}

pub(super) fn all_server_messages() -> Vec<ServerMessage> {
    let mut out = vec![
        ServerMessage::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server: "berkutd 0.1.0".into(),
        },
        ServerMessage::Error {
            id: None,
            error: ErrorBody::new(ErrorCode::VersionMismatch, "wrong version"),
        },
        ServerMessage::Error {
            id: Some(9),
            error: ErrorBody {
                code: ErrorCode::Internal,
                message: "internal error".into(),
                correlation_id: Some("00000000deadbeef".into()),
            },
        },
    ];
    for phase in [
        Phase::Queued,
        Phase::Connecting,
        Phase::Globals,
        Phase::Dump,
        Phase::Files,
        Phase::Finishing,
        Phase::Done,
    ] {
        out.push(ServerMessage::Progress {
            id: 4,
            progress: progress(phase),
        });
    }
    for (n, reply) in all_replies().into_iter().enumerate() {
        out.push(ServerMessage::Reply {
            id: n as u64,
            reply,
        });
    }
    out
}
