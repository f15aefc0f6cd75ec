//! Giving the restored database the original's own properties, its planner
//! statistics, and checking that it holds what the backup holds.
//!
//! `pg_dump` without `--create` leaves out everything attached to the
//! database itself (privileges, settings, connection limit, comment); the
//! backup records them in the manifest (`crate::inventory`), and a restore
//! applies them to the scratch database before it can go live, so the live
//! name ends up with exactly the original's properties and never with
//! PostgreSQL's defaults (which let PUBLIC connect).
//!
//! The rule for what the target server cannot take: a difference that the
//! target explains (a role that does not exist there, a setting it rejects,
//! a locale it lacks) is applied as far as possible and reported as a
//! warning in the step's detail and the evidence; any other difference
//! between what was recorded and what was restored fails the restore before
//! the swap, so the live database is never replaced by one that lost a
//! property or objects.

use berkut_proto::manifest::{Manifest, Scope};
use berkut_proto::properties::{DatabaseProperties, ObjectInventory, PUBLIC};
use tokio_postgres::Client;

use super::sql::Admin;
use crate::db::{quote_ident, Db};
use crate::error::OpError;
use crate::inventory;

/// What the target server made of the recorded properties.
#[derive(Debug, Default)]
pub struct Applied {
    /// The properties the restored database should now carry: the recorded
    /// ones, less what the target explained away.
    pub expected: Option<DatabaseProperties>,
    /// What the target could not take, in words (warnings).
    pub warnings: Vec<String>,
    /// What was applied, in words, for the step's log.
    pub done: Vec<String>,
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn refused(what: &'static str) -> impl Fn(tokio_postgres::Error) -> OpError {
    move |e| OpError::unavailable(format!("the database server refused to {what}")).with_source(&e)
}

/// Why a statement failed, in the server's words (its message only).
fn server_says(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| "the server refused it".into())
}

/// Creates the scratch database with the recorded encoding, locale and
/// owner. A locale the server lacks falls back to the live database's (or
/// the server's defaults), a missing owner to the restoring user; both are
/// warnings in `applied`.
pub async fn create(
    admin: &Admin,
    name: &str,
    live: &str,
    recorded: Option<&DatabaseProperties>,
    applied: &mut Applied,
) -> Result<(), OpError> {
    let Some(props) = recorded else {
        return admin.create_like(name, live).await;
    };
    let client = admin.client();
    let roles = inventory::roles(client).await?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(refused("tell its version"))?
        .get(0);
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(name),
        literal(&props.encoding),
        literal(&props.collate),
        literal(&props.ctype)
    );
    if version >= 150000 {
        sql.push_str(&format!(" LOCALE_PROVIDER {}", props.locale_provider));
        if let Some(icu) = &props.icu_locale {
            sql.push_str(&format!(" ICU_LOCALE {}", literal(icu)));
        }
    }
    if roles.contains(&props.owner) {
        sql.push_str(&format!(" OWNER {}", quote_ident(&props.owner)));
    }
    match client.batch_execute(&sql).await {
        Ok(()) => {}
        Err(e) => {
            applied.warnings.push(format!(
                "the server refused the recorded encoding and locale ({} {} {} {}): {}; \
                 the database was created like the live one instead",
                props.encoding,
                props.collate,
                props.ctype,
                props.locale_provider,
                server_says(&e)
            ));
            admin.create_like(name, live).await?;
            if roles.contains(&props.owner) {
                client
                    .batch_execute(&format!(
                        "ALTER DATABASE {} OWNER TO {}",
                        quote_ident(name),
                        quote_ident(&props.owner)
                    ))
                    .await
                    .map_err(refused("give the new database its owner"))?;
            }
        }
    }
    Ok(())
}

/// Applies the recorded privileges, connection limit, comment and settings
/// to the scratch database `name`. Privileges, limit and comment must apply
/// (a failure fails the restore before the swap); a setting the server
/// rejects and anything naming a role it lacks are warnings.
pub async fn apply(
    admin: &Admin,
    name: &str,
    recorded: &DatabaseProperties,
    applied: &mut Applied,
) -> Result<(), OpError> {
    let client = admin.client();
    let roles = inventory::roles(client).await?;
    let db = quote_ident(name);
    let actual = inventory::properties(client, name)
        .await?
        .ok_or_else(|| OpError::internal(format!("the database {name} vanished")))?;
    let mut expected = recorded.clone();
    if recorded.owner != actual.owner {
        applied.warnings.push(format!(
            "the owner {} does not exist on this server; the database is owned by {}",
            recorded.owner, actual.owner
        ));
        expected.owner = actual.owner.clone();
    }
    // The locale the database was really created with, when the server
    // refused the recorded one (a warning already).
    expected.encoding = actual.encoding.clone();
    expected.collate = actual.collate.clone();
    expected.ctype = actual.ctype.clone();
    expected.locale_provider = actual.locale_provider.clone();
    expected.icu_locale = actual.icu_locale.clone();

    if recorded.connection_limit != actual.connection_limit {
        client
            .batch_execute(&format!(
                "ALTER DATABASE {db} CONNECTION LIMIT {}",
                recorded.connection_limit
            ))
            .await
            .map_err(refused("set the database's connection limit"))?;
        applied
            .done
            .push(format!("connection limit {}", recorded.connection_limit));
    }
    if let Some(comment) = &recorded.comment {
        client
            .batch_execute(&format!("COMMENT ON DATABASE {db} IS {}", literal(comment)))
            .await
            .map_err(refused("comment on the database"))?;
        applied.done.push("comment".into());
    }
    if let Some(privileges) = &recorded.privileges {
        // Start from nothing, as pg_dump does, then grant what was there:
        // the defaults must not survive (PUBLIC's CONNECT above all).
        client
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; REVOKE ALL ON DATABASE {db} FROM {}",
                quote_ident(&actual.owner)
            ))
            .await
            .map_err(refused("revoke the default privileges on the database"))?;
        let mut kept = Vec::new();
        for p in privileges {
            let grantee = if p.grantee == recorded.owner {
                actual.owner.clone()
            } else {
                p.grantee.clone()
            };
            // Everyone, or a role (one may be named "PUBLIC": quoted, it is
            // that role and not everyone).
            let to = if grantee == PUBLIC {
                "PUBLIC".to_owned()
            } else if roles.contains(&grantee) {
                quote_ident(&grantee)
            } else {
                applied.warnings.push(format!(
                    "{} on the database was granted to {grantee}, which does not exist on this server",
                    p.privilege
                ));
                continue;
            };
            let privilege = match p.privilege.as_str() {
                "CONNECT" | "CREATE" | "TEMPORARY" => p.privilege.as_str(),
                other => {
                    return Err(OpError::invalid(format!(
                        "the backup records an unknown privilege {other:.40}"
                    )))
                }
            };
            client
                .batch_execute(&format!(
                    "GRANT {privilege} ON DATABASE {db} TO {to}{}",
                    if p.grantable {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                ))
                .await
                .map_err(refused("grant a privilege on the database"))?;
            let mut p = p.clone();
            p.grantee = grantee;
            kept.push(p);
        }
        applied.done.push(format!("{} privileges", kept.len()));
        expected.privileges = Some(kept);
    }
    let mut settings = Vec::new();
    for s in &recorded.settings {
        let sql = format!(
            "ALTER DATABASE {db} SET {} TO {}",
            quote_ident(&s.name),
            setting_value(&s.name, &s.value)
        );
        match client.batch_execute(&sql).await {
            Ok(()) => settings.push(s.clone()),
            Err(e) => applied.warnings.push(format!(
                "the server rejected the setting {} = {}: {}",
                s.name,
                s.value,
                server_says(&e)
            )),
        }
    }
    applied.done.push(format!("{} settings", settings.len()));
    expected.settings = settings;
    let mut role_settings = Vec::new();
    for s in &recorded.role_settings {
        if !roles.contains(&s.role) {
            applied.warnings.push(format!(
                "the setting {} = {} for role {} was not applied: the role does not exist on this server",
                s.name, s.value, s.role
            ));
            continue;
        }
        let sql = format!(
            "ALTER ROLE {} IN DATABASE {db} SET {} TO {}",
            quote_ident(&s.role),
            quote_ident(&s.name),
            setting_value(&s.name, &s.value)
        );
        match client.batch_execute(&sql).await {
            Ok(()) => role_settings.push(s.clone()),
            Err(e) => applied.warnings.push(format!(
                "the server rejected the setting {} = {} for role {}: {}",
                s.name,
                s.value,
                s.role,
                server_says(&e)
            )),
        }
    }
    if !role_settings.is_empty() {
        applied
            .done
            .push(format!("{} role settings", role_settings.len()));
    }
    expected.role_settings = role_settings;
    applied.expected = Some(expected);
    Ok(())
}

/// The value of `SET name TO ...` that stores `value` again. A parameter
/// whose stored form is a list of quoted names (search_path and a few
/// others) is split and each element given on its own, as pg_dump does;
/// any other is one literal.
fn setting_value(name: &str, value: &str) -> String {
    const LIST_QUOTE: [&str; 6] = [
        "local_preload_libraries",
        "search_path",
        "session_preload_libraries",
        "shared_preload_libraries",
        "temp_tablespaces",
        "unix_socket_directories",
    ];
    if !LIST_QUOTE.contains(&name.to_ascii_lowercase().as_str()) {
        return literal(value);
    }
    let elements = split_guc_list(value);
    if elements.is_empty() {
        return literal("");
    }
    elements
        .iter()
        .map(|e| literal(e))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits a stored list value (`"$user", public`) into its elements,
/// removing the double quotes around an element and undoubling `""`.
fn split_guc_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim_end().to_owned();
        }
        // `""` is an element too: `search_path = ''` is stored as `""`.
        if quoted || !item.is_empty() {
            out.push(item);
        }
        if chars.next().is_none() {
            break;
        }
    }
    out
}

/// Runs ANALYZE over every table of database `name` on `parallel`
/// connections at once; returns how many relations were analysed.
pub async fn analyze(target: &Db, name: &str, parallel: usize) -> Result<usize, OpError> {
    let first = target.connect_to(name).await?;
    let rows = first
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm', 'p') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
             ORDER BY c.relpages DESC, 1, 2",
            &[],
        )
        .await
        .map_err(refused("list the tables to analyze"))?;
    let tables: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}.{}",
                quote_ident(&r.get::<_, String>(0)),
                quote_ident(&r.get::<_, String>(1))
            )
        })
        .collect();
    let lanes = parallel.clamp(1, tables.len().max(1));
    let mut first = Some(first);
    let mut work = Vec::new();
    for lane in 0..lanes {
        let mine: Vec<&String> = tables.iter().skip(lane).step_by(lanes).collect();
        let client = first.take();
        work.push(async move {
            let client: Client = match client {
                Some(c) => c,
                None => target.connect_to(name).await?,
            };
            for table in mine {
                client
                    .batch_execute(&format!("ANALYZE {table}"))
                    .await
                    .map_err(refused("analyze a table"))?;
            }
            Ok::<_, OpError>(())
        });
    }
    futures::future::try_join_all(work).await?;
    Ok(tables.len())
}

/// What the restored database lacks compared with what the backup
/// recorded: its properties (against what the target could take) and its
/// objects by kind. Empty when nothing differs, or nothing was recorded.
pub async fn compare(
    target: &Db,
    admin: &Admin,
    name: &str,
    manifest: &Manifest,
    applied: &Applied,
) -> Result<Vec<String>, OpError> {
    let mut out = Vec::new();
    if let Some(expected) = &applied.expected {
        let restored = inventory::properties(admin.client(), name)
            .await?
            .ok_or_else(|| OpError::internal(format!("the database {name} vanished")))?;
        out.extend(expected.differences(&restored));
    }
    if let Some(recorded) = &manifest.objects {
        let client = target.connect_to(name).await?;
        let with_data = manifest.scope != Scope::Schema;
        let restored: ObjectInventory = inventory::inventory(&client, with_data).await?;
        out.extend(recorded.differences(&restored, with_data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_settings_are_split_and_unquoted_like_pg_dump_does() {
        assert_eq!(
            split_guc_list(r#""$user", public"#),
            vec!["$user".to_owned(), "public".into()]
        );
        assert_eq!(
            split_guc_list(r#"app, "Odd ""Name""", x"#),
            vec!["app".to_owned(), r#"Odd "Name""#.into(), "x".into()]
        );
        assert_eq!(
            setting_value("search_path", r#""$user", public"#),
            "'$user', 'public'"
        );
        assert_eq!(setting_value("work_mem", "64MB"), "'64MB'");
        // `SET search_path = ''`, the usual hardening, is stored as `""`.
        assert_eq!(setting_value("search_path", r#""""#), "''");
        assert_eq!(setting_value("search_path", ""), "''");
        assert_eq!(setting_value("DateStyle", "ISO, MDY"), "'ISO, MDY'");
        assert_eq!(setting_value("x.note", "it's"), "'it''s'");
    }
}
