//! Reading a setting through its declaration: from the first of its
//! environment variables that is set and not empty, else from the file,
//! else its default; a number is checked against its declared range. An
//! error names where the bad value came from: the variable, or the key and
//! the file (`Origin`), so the operator knows which one to fix.

use std::fmt;
use std::path::{Path, PathBuf};

use super::settings::{setting, Fallback, Setting, SETTINGS};
use super::{ConfigError, Env};

/// Where a value came from, as an error names it.
#[derive(Clone, Debug)]
pub enum Origin {
    Env(&'static str),
    File { key: &'static str, path: PathBuf },
    Default(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(name) => f.write_str(name),
            Origin::File { key, path } => write!(f, "{key} in {}", path.display()),
            Origin::Default(key) => write!(f, "{key} (default)"),
        }
    }
}

impl Origin {
    /// An error about the value that came from here.
    pub fn invalid(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.to_string(),
            message: message.into(),
        }
    }
}

/// A raw value: text from the environment or a TOML value from the file.
enum Raw<'a> {
    Env(&'a str),
    File(&'a toml::Value),
}

/// The environment and the file, read through the declarations: a value
/// comes from the first of the setting's variables that is set and not
/// empty, else from the file.
pub struct Source<'a> {
    env: &'a Env,
    file: toml::Table,
    path: PathBuf,
}

impl<'a> Source<'a> {
    /// Reads the file (none: only the environment) and refuses a key that
    /// no setting declares.
    pub fn new(path: Option<&Path>, env: &'a Env) -> Result<Source<'a>, ConfigError> {
        match path {
            None => Ok(Source {
                env,
                file: toml::Table::new(),
                path: PathBuf::new(),
            }),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Source::parse(&text, path, env)
            }
        }
    }

    /// The file's text already read (`path` names it in errors).
    pub fn parse(text: &str, path: &Path, env: &'a Env) -> Result<Source<'a>, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let file: toml::Table = toml::from_str(text).map_err(|e| {
            // toml's message quotes the offending line, which could be the
            // key; keep only the first line, which names the problem and
            // position.
            parse_error(
                e.message()
                    .lines()
                    .next()
                    .unwrap_or("syntax error")
                    .to_owned(),
            )
        })?;
        for key in file.keys() {
            if !SETTINGS.iter().any(|s| s.key == key) {
                return Err(parse_error(format!(
                    "unknown setting `{}`",
                    key.chars().take(100).collect::<String>()
                )));
            }
        }
        Ok(Source {
            env,
            file,
            path: path.to_owned(),
        })
    }

    fn raw(&self, s: &'static Setting) -> Option<(Raw<'_>, Origin)> {
        for name in s.env {
            if let Some(value) = self.env.get(*name).filter(|v| !v.is_empty()) {
                return Some((Raw::Env(value), Origin::Env(name)));
            }
        }
        self.file.get(s.key).map(|value| {
            (
                Raw::File(value),
                Origin::File {
                    key: s.key,
                    path: self.path.clone(),
                },
            )
        })
    }

    /// A text setting, if given.
    pub fn text(&self, key: &str) -> Result<Option<(String, Origin)>, ConfigError> {
        match self.raw(setting(key)) {
            None => Ok(None),
            Some((Raw::Env(text), origin)) => Ok(Some((text.to_owned(), origin))),
            Some((Raw::File(toml::Value::String(text)), origin)) => {
                Ok(Some((text.clone(), origin)))
            }
            Some((Raw::File(_), origin)) => Err(origin.invalid("must be a string")),
        }
    }

    /// A text setting or its declared default.
    pub fn text_or_default(&self, key: &str) -> Result<String, ConfigError> {
        Ok(match self.text(key)? {
            Some((text, _)) => text,
            None => match setting(key).fallback {
                Fallback::Text(text) => text.to_owned(),
                _ => panic!("{key} has no default text"),
            },
        })
    }

    pub fn path(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.text(key)?.map(|(text, _)| PathBuf::from(text)))
    }

    /// A list of paths: `:`-separated in the environment, an array of
    /// strings in the file.
    pub fn paths(&self, key: &str) -> Result<Option<(Vec<PathBuf>, Origin)>, ConfigError> {
        match self.raw(setting(key)) {
            None => Ok(None),
            Some((Raw::Env(list), origin)) => Ok(Some((
                list.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect(),
                origin,
            ))),
            Some((Raw::File(toml::Value::Array(items)), origin)) => {
                let paths = items
                    .iter()
                    .map(|item| item.as_str().map(PathBuf::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| origin.invalid("must be a list of paths"))?;
                Ok(Some((paths, origin)))
            }
            Some((Raw::File(_), origin)) => Err(origin.invalid("must be a list of paths")),
        }
    }

    /// A whole number within its declared range, or `default` (for a
    /// default computed from other settings).
    pub fn number_or(&self, key: &str, default: u64) -> Result<(u64, Origin), ConfigError> {
        let s = setting(key);
        let (n, origin) = match self.raw(s) {
            None => return Ok((default, Origin::Default(s.key))),
            Some((Raw::Env(text), origin)) => match text.trim().parse() {
                Ok(n) => (n, origin),
                Err(_) => {
                    let shown: String = text.chars().take(100).collect();
                    return Err(origin.invalid(format!("{shown:?} is not a whole number")));
                }
            },
            Some((Raw::File(value), origin)) => {
                match value.as_integer().and_then(|n| u64::try_from(n).ok()) {
                    Some(n) => (n, origin),
                    None => return Err(origin.invalid("is not a whole number")),
                }
            }
        };
        if let Some((min, max)) = s.range {
            if !(min..=max).contains(&n) {
                return Err(origin.invalid(range_rule(min, max)));
            }
        }
        Ok((n, origin))
    }

    /// A whole number within its declared range, or its declared default.
    pub fn number(&self, key: &str) -> Result<u64, ConfigError> {
        match setting(key).fallback {
            Fallback::Number(default) => Ok(self.number_or(key, default)?.0),
            _ => panic!("{key} has no default number"),
        }
    }

    /// `true` or `false` (the environment also takes yes/no, on/off, 1/0),
    /// or its declared default.
    pub fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        let s = setting(key);
        match self.raw(s) {
            None => match s.fallback {
                Fallback::Flag(default) => Ok(default),
                _ => panic!("{key} has no default flag"),
            },
            Some((Raw::Env(text), origin)) => {
                parse_bool(text).ok_or_else(|| origin.invalid("must be true or false"))
            }
            Some((Raw::File(toml::Value::Boolean(b)), _)) => Ok(*b),
            Some((Raw::File(_), origin)) => Err(origin.invalid("must be true or false")),
        }
    }

    /// A setting only the file gives, as TOML (the `[[access]]` entries).
    pub fn file_value(&self, key: &str) -> Option<(toml::Value, Origin)> {
        self.raw(setting(key)).and_then(|(raw, origin)| match raw {
            Raw::File(value) => Some((value.clone(), origin)),
            Raw::Env(_) => None,
        })
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// What a range demands, in words.
fn range_rule(min: u64, max: u64) -> String {
    match (min, max) {
        (min, u64::MAX) => format!("must be at least {min}"),
        (min, max) => format!("must be from {min} to {max}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_or_the_file_and_key() {
        let env: Env = [("BERKUT_RESTORE_JOBS".to_owned(), "65".to_owned())].into();
        let path = Path::new("/etc/berkut/berkutd.toml");
        let src = Source::parse("max_parallel = 0\ncount_rows = 3\n", path, &env).unwrap();
        let e = src.number("restore_jobs").unwrap_err().to_string();
        assert_eq!(e, "BERKUT_RESTORE_JOBS: must be from 1 to 64");
        let e = src.number("max_parallel").unwrap_err().to_string();
        assert_eq!(
            e,
            "max_parallel in /etc/berkut/berkutd.toml: must be from 1 to 64"
        );
        let e = src.flag("count_rows").unwrap_err().to_string();
        assert_eq!(
            e,
            "count_rows in /etc/berkut/berkutd.toml: must be true or false"
        );
        let e = Source::parse("max_paralel = 2\n", path, &env)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/etc/berkut/berkutd.toml") && e.contains("max_paralel"),
            "{e}"
        );
    }
}
