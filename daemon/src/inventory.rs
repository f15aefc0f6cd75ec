//! Reading a database's own properties and its object inventory from the
//! catalogs: the backup records both in the manifest (from the dump's
//! snapshot when there is one), and a restore reads them back from the
//! database it restored to compare. One set of queries serves both sides,
//! so a difference is a real difference, never two queries disagreeing.
//!
//! The queries read `pg_database` through `to_jsonb`, so the column names
//! that changed between PostgreSQL versions (`daticulocale`, `datlocale`)
//! are looked up by name instead of failing to parse.

use berkut_proto::properties::{
    DatabaseProperties, ObjectInventory, Privilege, RoleSetting, SequenceValue, Setting, PUBLIC,
};
use tokio_postgres::Client;

use crate::error::OpError;

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> OpError {
    move |e| OpError::unavailable(format!("the database server refused to {what}")).with_source(&e)
}

/// The properties of database `name`, read over any connection to its
/// server; `None` when there is no such database.
pub async fn properties(
    client: &Client,
    name: &str,
) -> Result<Option<DatabaseProperties>, OpError> {
    let row = client
        .query_opt(
            "SELECT d.oid, pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, \
                    d.datcollate::text, d.datctype::text, \
                    CASE to_jsonb(d)->>'datlocprovider' WHEN 'i' THEN 'icu' ELSE 'libc' END, \
                    coalesce(to_jsonb(d)->>'daticulocale', to_jsonb(d)->>'datlocale'), \
                    d.datconnlimit, shobj_description(d.oid, 'pg_database'), d.datacl IS NULL \
             FROM pg_database d WHERE d.datname = $1",
            &[&name],
        )
        .await
        .map_err(failed("describe a database"))?;
    let Some(row) = row else { return Ok(None) };
    let oid: u32 = row.get(0);
    let default_acl: bool = row.get(9);
    let privileges = if default_acl {
        None
    } else {
        let rows = client
            .query(
                "SELECT CASE WHEN a.grantee = 0 THEN $2 ELSE pg_get_userbyid(a.grantee)::text END, \
                        a.privilege_type::text, a.is_grantable \
                 FROM pg_database d, aclexplode(d.datacl) a WHERE d.oid = $1 ORDER BY 1, 2",
                &[&oid, &PUBLIC],
            )
            .await
            .map_err(failed("read a database's privileges"))?;
        Some(
            rows.iter()
                .map(|r| Privilege {
                    grantee: r.get(0),
                    privilege: r.get(1),
                    grantable: r.get(2),
                })
                .collect(),
        )
    };
    let rows = client
        .query(
            "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole)::text END, \
                    c.item \
             FROM pg_db_role_setting s, unnest(s.setconfig) WITH ORDINALITY AS c(item, n) \
             WHERE s.setdatabase = $1 ORDER BY 1 NULLS FIRST, c.n",
            &[&oid],
        )
        .await
        .map_err(failed("read a database's settings"))?;
    let mut settings = Vec::new();
    let mut role_settings = Vec::new();
    for r in rows {
        let role: Option<String> = r.get(0);
        let item: String = r.get(1);
        let (name, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
        match role {
            None => settings.push(Setting {
                name: name.to_owned(),
                value: value.to_owned(),
            }),
            Some(role) => role_settings.push(RoleSetting {
                role,
                name: name.to_owned(),
                value: value.to_owned(),
            }),
        }
    }
    Ok(Some(DatabaseProperties {
        owner: row.get(1),
        encoding: row.get(2),
        collate: row.get(3),
        ctype: row.get(4),
        locale_provider: row.get(5),
        icu_locale: row.get(6),
        connection_limit: row.get(7),
        comment: row.get(8),
        privileges,
        settings,
        role_settings,
    }))
}

/// The user relations that count: outside the system schemas and not
/// members of an extension (pg_dump leaves those to `CREATE EXTENSION`).
const RELATIONS: &str = "rels AS (\
    SELECT c.oid, c.relkind, c.relname, n.nspname FROM pg_class c \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                      AND d.objid = c.oid AND d.deptype = 'e'))";

/// The inventory of the database `client` is connected to. Large objects
/// are counted when `large_objects` (the dump's scope holds them).
pub async fn inventory(client: &Client, large_objects: bool) -> Result<ObjectInventory, OpError> {
    let sql = format!(
        "WITH {RELATIONS} SELECT \
           (SELECT count(*) FROM rels WHERE relkind = 'r'), \
           (SELECT count(*) FROM rels WHERE relkind = 'p'), \
           (SELECT count(*) FROM rels WHERE relkind = 'v'), \
           (SELECT count(*) FROM rels WHERE relkind = 'm'), \
           (SELECT count(*) FROM pg_index i JOIN rels t ON t.oid = i.indrelid), \
           (SELECT count(*) FROM pg_constraint k JOIN rels t ON t.oid = k.conrelid \
             WHERE k.contype IN ('c', 'p', 'u', 'f', 'x')), \
           (SELECT count(*) FROM pg_trigger g JOIN rels t ON t.oid = g.tgrelid \
             WHERE NOT g.tgisinternal), \
           (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                               AND d.objid = p.oid AND d.deptype = 'e')), \
           (SELECT count(*) FROM pg_largeobject_metadata)"
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(failed("list a database's objects"))?;
    let count = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    let seqs = client
        .query(
            &format!(
                "WITH {RELATIONS} SELECT s.schemaname::text, s.sequencename::text, s.last_value \
                 FROM pg_sequences s JOIN rels r ON r.relkind = 'S' \
                   AND r.nspname = s.schemaname AND r.relname = s.sequencename \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(failed("read a database's sequences"))?;
    Ok(ObjectInventory {
        tables: count(0),
        partitioned_tables: count(1),
        views: count(2),
        materialized_views: count(3),
        indexes: count(4),
        constraints: count(5),
        triggers: count(6),
        functions: count(7),
        sequences: seqs
            .iter()
            .map(|r| SequenceValue {
                schema: r.get(0),
                name: r.get(1),
                last_value: r.get(2),
            })
            .collect(),
        large_objects: large_objects.then(|| count(8)),
    })
}

/// The roles that exist on the server `client` is connected to.
pub async fn roles(client: &Client) -> Result<std::collections::BTreeSet<String>, OpError> {
    let rows = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(failed("list its roles"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
