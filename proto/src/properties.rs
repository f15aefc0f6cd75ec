//! What a backup records about the database itself, beside its contents:
//! the properties `pg_dump` leaves out unless it is run with `--create`
//! (owner, encoding and locale, connection limit, privileges, comment,
//! `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE ... SET`), and an
//! inventory of the objects the dump holds, by kind. Both travel in the
//! manifest; a restore applies the first to the new database before it goes
//! live, and a drill compares both with what it restored.
//!
//! Archives made before these were recorded have neither (`None` in the
//! manifest); restores of them work as they always did and say so.

use serde::{Deserialize, Serialize};

/// The grantee that stands for every role (PostgreSQL's `PUBLIC`): the
/// empty name, which no role can have. A role may be *named* `PUBLIC`
/// (`CREATE ROLE "PUBLIC"`), so that word cannot stand for everyone.
pub const PUBLIC: &str = "";

/// The database-level properties, as the catalogs held them in the dump's
/// snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProperties {
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `libc` or `icu`.
    pub locale_provider: String,
    /// The ICU locale, with the `icu` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_locale: Option<String>,
    /// `-1` for no limit.
    pub connection_limit: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The privileges granted on the database; `None` when they were never
    /// changed, which means PostgreSQL's defaults (PUBLIC may connect and
    /// create temporary tables, the owner may do everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Vec<Privilege>>,
    /// `ALTER DATABASE ... SET name = value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<Setting>,
    /// `ALTER ROLE role IN DATABASE ... SET name = value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_settings: Vec<RoleSetting>,
}

/// One privilege on the database, granted to a role or to `PUBLIC`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Privilege {
    pub grantee: String,
    /// `CONNECT`, `CREATE` or `TEMPORARY`.
    pub privilege: String,
    #[serde(default)]
    pub grantable: bool,
}

/// A configuration parameter set for the database, as PostgreSQL stores it
/// (`search_path` = `"$user", public`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

/// A configuration parameter set for one role in the database.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleSetting {
    pub role: String,
    pub name: String,
    pub value: String,
}

/// How many objects of each kind the dump holds, outside the system
/// schemas and not belonging to an extension.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInventory {
    /// Ordinary tables and partitions.
    pub tables: u64,
    pub partitioned_tables: u64,
    pub views: u64,
    pub materialized_views: u64,
    /// Indexes, partitioned ones included.
    pub indexes: u64,
    /// Check, primary key, unique, foreign key and exclusion constraints.
    pub constraints: u64,
    pub triggers: u64,
    /// Functions, procedures and aggregates.
    pub functions: u64,
    /// Every sequence with the value it had when it was recorded; `None`
    /// for one never used (or not readable by the daemon).
    pub sequences: Vec<SequenceValue>,
    /// `None` when the dump holds no large objects by its scope (schema
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SequenceValue {
    pub schema: String,
    pub name: String,
    #[serde(default)]
    pub last_value: Option<i64>,
}

impl ObjectInventory {
    /// The counts by kind, with the names a person reads.
    pub fn counts(&self) -> [(&'static str, u64); 9] {
        [
            ("tables", self.tables),
            ("partitioned tables", self.partitioned_tables),
            ("views", self.views),
            ("materialized views", self.materialized_views),
            ("indexes", self.indexes),
            ("constraints", self.constraints),
            ("triggers", self.triggers),
            ("functions", self.functions),
            ("sequences", self.sequences.len() as u64),
        ]
    }

    /// Every way `restored` falls short of `self` (the recorded inventory).
    /// A sequence may have moved on between the recording and pg_dump
    /// reading it (sequences are not transactional), so a restored value
    /// may be higher; a lower or missing one is a difference.
    pub fn differences(&self, restored: &ObjectInventory, with_values: bool) -> Vec<String> {
        let mut out = Vec::new();
        for ((kind, want), (_, got)) in self.counts().iter().zip(restored.counts().iter()) {
            if want != got {
                out.push(format!("{kind}: {want} in the backup, {got} restored"));
            }
        }
        if let (Some(want), Some(got)) = (self.large_objects, restored.large_objects) {
            if want != got {
                out.push(format!(
                    "large objects: {want} in the backup, {got} restored"
                ));
            }
        }
        for seq in &self.sequences {
            let found = restored
                .sequences
                .iter()
                .find(|s| s.schema == seq.schema && s.name == seq.name);
            let name = format!("{}.{}", seq.schema, seq.name);
            match found {
                None => out.push(format!("sequence {name} is missing")),
                Some(got) if with_values => {
                    let lower = match (seq.last_value, got.last_value) {
                        (Some(want), Some(have)) => have < want,
                        (Some(_), None) => true,
                        _ => false,
                    };
                    if lower {
                        out.push(format!(
                            "sequence {name} restored at {} but was at {} in the backup",
                            show_value(got.last_value),
                            show_value(seq.last_value)
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        out
    }
}

fn show_value(v: Option<i64>) -> String {
    v.map_or_else(|| "its start (never used)".into(), |v| v.to_string())
}

impl DatabaseProperties {
    /// Every property of `self` (recorded) that `restored` does not carry.
    /// Role settings and privileges compare as sets.
    pub fn differences(&self, restored: &DatabaseProperties) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |name: &str, want: &dyn std::fmt::Debug, got: &dyn std::fmt::Debug| {
            let (w, g) = (format!("{want:?}"), format!("{got:?}"));
            if w != g {
                out.push(format!("{name}: {w} in the backup, {g} restored"));
            }
        };
        field("owner", &self.owner, &restored.owner);
        field("encoding", &self.encoding, &restored.encoding);
        field("collation", &self.collate, &restored.collate);
        field("character type", &self.ctype, &restored.ctype);
        field(
            "locale provider",
            &self.locale_provider,
            &restored.locale_provider,
        );
        field(
            "connection limit",
            &self.connection_limit,
            &restored.connection_limit,
        );
        field(
            "comment",
            &self.comment.as_deref().unwrap_or(""),
            &restored.comment.as_deref().unwrap_or(""),
        );
        let sorted = |p: &Option<Vec<Privilege>>| {
            let mut v = p.clone().unwrap_or_default();
            v.sort();
            (p.is_some(), v)
        };
        let (want, got) = (sorted(&self.privileges), sorted(&restored.privileges));
        if want != got {
            out.push(format!(
                "privileges: {} in the backup, {} restored",
                show_privileges(&self.privileges),
                show_privileges(&restored.privileges)
            ));
        }
        let mut want = self.settings.clone();
        let mut got = restored.settings.clone();
        want.sort();
        got.sort();
        for s in want.iter().filter(|s| !got.contains(s)) {
            out.push(format!("setting {} = {} was not restored", s.name, s.value));
        }
        for s in got.iter().filter(|s| !want.contains(s)) {
            out.push(format!(
                "setting {} = {} is not in the backup",
                s.name, s.value
            ));
        }
        let mut want = self.role_settings.clone();
        let mut got = restored.role_settings.clone();
        want.sort();
        got.sort();
        for s in want.iter().filter(|s| !got.contains(s)) {
            out.push(format!(
                "setting {} = {} for role {} was not restored",
                s.name, s.value, s.role
            ));
        }
        for s in got.iter().filter(|s| !want.contains(s)) {
            out.push(format!(
                "setting {} = {} for role {} is not in the backup",
                s.name, s.value, s.role
            ));
        }
        out
    }

    /// One line per property, for people.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![
            format!("owner {}", self.owner),
            format!(
                "encoding {}, collation {}, character type {} ({}{})",
                self.encoding,
                self.collate,
                self.ctype,
                self.locale_provider,
                self.icu_locale
                    .as_deref()
                    .map(|l| format!(" {l}"))
                    .unwrap_or_default()
            ),
            match self.connection_limit {
                -1 => "no connection limit".to_owned(),
                n => format!("connection limit {n}"),
            },
            format!("privileges {}", show_privileges(&self.privileges)),
        ];
        if let Some(c) = &self.comment {
            out.push(format!("comment {c:?}"));
        }
        for s in &self.settings {
            out.push(format!("set {} = {}", s.name, s.value));
        }
        for s in &self.role_settings {
            out.push(format!("for role {}: set {} = {}", s.role, s.name, s.value));
        }
        out
    }
}

fn show_privileges(p: &Option<Vec<Privilege>>) -> String {
    match p {
        None => "the defaults (PUBLIC may connect and create temporary tables)".into(),
        Some(list) if list.is_empty() => "none".into(),
        Some(list) => list
            .iter()
            .map(|p| {
                format!(
                    "{} to {}{}",
                    p.privilege,
                    if p.grantee == PUBLIC {
                        "PUBLIC"
                    } else {
                        &p.grantee
                    },
                    if p.grantable {
                        " with grant option"
                    } else {
                        ""
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> DatabaseProperties {
        DatabaseProperties {
            owner: "app_owner".into(),
            encoding: "UTF8".into(),
            collate: "C".into(),
            ctype: "C".into(),
            locale_provider: "libc".into(),
            icu_locale: None,
            connection_limit: 50,
            comment: Some("the app".into()),
            privileges: Some(vec![Privilege {
                grantee: "app_role".into(),
                privilege: "CONNECT".into(),
                grantable: false,
            }]),
            settings: vec![Setting {
                name: "work_mem".into(),
                value: "64MB".into(),
            }],
            role_settings: vec![],
        }
    }

    #[test]
    fn equal_properties_have_no_differences_and_each_change_is_named() {
        assert!(props().differences(&props()).is_empty());
        let mut other = props();
        other.privileges = None;
        other.connection_limit = -1;
        other.settings.clear();
        let diffs = props().differences(&other);
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(diffs[0].starts_with("connection limit: 50"), "{diffs:?}");
        assert!(diffs[1].contains("the defaults"), "{diffs:?}");
        assert!(diffs[2].contains("work_mem"), "{diffs:?}");
    }

    #[test]
    fn a_sequence_may_move_on_but_not_back() {
        let seq = |v| SequenceValue {
            schema: "public".into(),
            name: "s".into(),
            last_value: v,
        };
        let inv = |v| ObjectInventory {
            tables: 1,
            sequences: vec![seq(v)],
            ..Default::default()
        };
        assert!(inv(Some(10)).differences(&inv(Some(12)), true).is_empty());
        assert_eq!(inv(Some(10)).differences(&inv(Some(3)), true).len(), 1);
        assert_eq!(inv(Some(10)).differences(&inv(None), true).len(), 1);
        assert!(inv(Some(10)).differences(&inv(None), false).is_empty());
        let mut fewer = inv(Some(10));
        fewer.tables = 0;
        assert_eq!(
            inv(Some(10)).differences(&fewer, true),
            ["tables: 1 in the backup, 0 restored"]
        );
    }
}
