//! Secrets by reference, and where references may point.
//!
//! A namespace never stores a secret in clear: it names an environment
//! variable (`…Env`) or a file (`…File`) of the program that connects. Since
//! whoever holds an admin key writes those names, the programs read only
//! what a [`SecretPolicy`] allows — variables with a configured prefix
//! (`WAL_SECRET_ENV_PREFIX`, default `WAL_SECRET_`) and files under a
//! configured directory (`WAL_SECRET_DIR`, default `/run/secrets/wal`) — so
//! that a namespace cannot make a worker send `WAL_DATABASE_URL` or a
//! service-account token to an endpoint of its choosing. The gateway refuses
//! such references when a namespace is written; the programs check again,
//! following symlinks, before they read.

use std::path::{Component, Path, PathBuf};

use wal_core::validate::FieldErrors;

use crate::backend_config::BackendConfig;
use crate::model::Namespace;
use crate::targets::TargetKind;

/// A secret referenced by name, never stored in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// Read from this environment variable of the program.
    Env(String),
    /// Read from this file (absolute path) on the program's host.
    File(String),
}

impl SecretRef {
    /// The reference given as an `…Env` / `…File` pair (the variable wins
    /// when both are set; validation refuses that).
    pub fn from_pair(env: &Option<String>, file: &Option<String>) -> Option<SecretRef> {
        match (env, file) {
            (Some(e), _) => Some(SecretRef::Env(e.clone())),
            (None, Some(f)) => Some(SecretRef::File(f.clone())),
            (None, None) => None,
        }
    }

    /// `environment variable X` or `file Y`, for messages.
    pub fn origin(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("environment variable `{name}`"),
            SecretRef::File(path) => format!("file `{path}`"),
        }
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The reference points outside what the policy allows.
    #[error("{origin} may not be read: {reason}")]
    NotAllowed {
        /// The reference, as [`SecretRef::origin`].
        origin: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The variable is unset.
    #[error("environment variable `{0}` is unset")]
    MissingEnv(String),
    /// The file cannot be read.
    #[error("file `{path}` cannot be read: {source}")]
    UnreadableFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The value is empty (after trimming).
    #[error("{0} is empty")]
    Empty(String),
}

/// Which environment variables and files secret references may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPolicy {
    env_prefix: String,
    dir: PathBuf,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        Self::new(Self::DEFAULT_ENV_PREFIX, Self::DEFAULT_DIR)
    }
}

impl SecretPolicy {
    /// Default prefix of referenceable environment variables.
    pub const DEFAULT_ENV_PREFIX: &'static str = "WAL_SECRET_";
    /// Default directory of referenceable files.
    pub const DEFAULT_DIR: &'static str = "/run/secrets/wal";

    /// Variables starting with `env_prefix` and files under `dir` (an
    /// absolute path). An empty prefix allows every variable.
    pub fn new(env_prefix: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            env_prefix: env_prefix.into(),
            dir: dir.into(),
        }
    }

    /// The prefix variables must have.
    pub fn env_prefix(&self) -> &str {
        &self.env_prefix
    }

    /// The directory files must be in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `secret` names something this policy allows, judged on the
    /// name alone (the file need not exist here); `Err` says why not.
    pub fn check(&self, secret: &SecretRef) -> Result<(), String> {
        match secret {
            SecretRef::Env(name) if !name.starts_with(&self.env_prefix) => Err(format!(
                "only environment variables starting with `{}` may be referenced",
                self.env_prefix
            )),
            SecretRef::Env(_) => Ok(()),
            SecretRef::File(path) => {
                let p = Path::new(path);
                let plain = p.is_absolute()
                    && p.components()
                        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
                if plain && p.starts_with(&self.dir) && p != self.dir {
                    Ok(())
                } else {
                    Err(format!(
                        "only files under `{}` may be referenced (absolute, without `..`)",
                        self.dir.display()
                    ))
                }
            }
        }
    }

    /// Reads `secret` (trimmed, non-empty) if the policy allows it; a file
    /// is checked again with its symlinks resolved.
    pub fn read(&self, secret: &SecretRef) -> Result<String, SecretError> {
        let not_allowed = |reason: String| SecretError::NotAllowed {
            origin: secret.origin(),
            reason,
        };
        self.check(secret).map_err(not_allowed)?;
        let raw = match secret {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            SecretRef::File(path) => {
                let unreadable = |source| SecretError::UnreadableFile {
                    path: path.clone(),
                    source,
                };
                let real = std::fs::canonicalize(path).map_err(unreadable)?;
                let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
                if !real.starts_with(&dir) {
                    return Err(not_allowed(format!(
                        "it resolves to `{}`, outside `{}`",
                        real.display(),
                        self.dir.display()
                    )));
                }
                std::fs::read_to_string(&real).map_err(unreadable)?
            }
        };
        let value = raw.trim();
        if value.is_empty() {
            return Err(SecretError::Empty(secret.origin()));
        }
        Ok(value.to_string())
    }
}

/// Every secret reference of `ns`, with the field that holds it.
pub fn references(ns: &Namespace) -> Vec<(String, SecretRef)> {
    let mut refs = Vec::new();
    for (i, t) in ns.targets.iter().enumerate() {
        let (field, secret) = match &t.kind {
            TargetKind::Http(c) | TargetKind::Webhook(c) => ("signingSecret", c.signing_secret()),
            TargetKind::Database(c) => ("dsn", c.dsn()),
            TargetKind::Cache(c) => ("url", c.url()),
        };
        if let Some(secret) = secret {
            let suffix = if matches!(secret, SecretRef::Env(_)) {
                "Env"
            } else {
                "File"
            };
            refs.push((format!("targetConfigs[{i}].config.{field}{suffix}"), secret));
        }
    }
    refs.extend(backend_references(&ns.backend_config));
    refs
}

fn backend_references(c: &BackendConfig) -> Vec<(String, SecretRef)> {
    let mut refs = Vec::new();
    let mut env = |field: String, name: &Option<String>| {
        if let Some(n) = name {
            refs.push((format!("backendConfig.{field}"), SecretRef::Env(n.clone())));
        }
    };
    env("brokersEnv".into(), &c.brokers_env);
    env("accessKeyIdEnv".into(), &c.access_key_id_env);
    env("secretAccessKeyEnv".into(), &c.secret_access_key_env);
    for (key, name) in &c.secret_properties_env {
        env(format!("secretPropertiesEnv.{key}"), &Some(name.clone()));
    }
    let mut file = |field: String, path: &Option<String>| {
        if let Some(p) = path {
            refs.push((format!("backendConfig.{field}"), SecretRef::File(p.clone())));
        }
    };
    file("accessKeyIdFile".into(), &c.access_key_id_file);
    file("secretAccessKeyFile".into(), &c.secret_access_key_file);
    for (key, path) in &c.secret_properties_file {
        file(format!("secretPropertiesFile.{key}"), &Some(path.clone()));
    }
    refs
}

impl SecretPolicy {
    /// Refuses every reference of `ns` this policy does not allow, naming
    /// its field.
    pub fn check_namespace(&self, ns: &Namespace) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        for (field, secret) in references(ns) {
            if let Err(reason) = self.check(&secret) {
                errors.push(field, reason);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_the_prefix_and_the_directory_are_refused() {
        let policy = SecretPolicy::new("WAL_SECRET_", "/run/secrets/wal");
        let env = |n: &str| SecretRef::Env(n.into());
        let file = |p: &str| SecretRef::File(p.into());
        assert!(policy.check(&env("WAL_SECRET_DSN")).is_ok());
        assert!(policy.check(&env("WAL_DATABASE_URL")).is_err());
        assert!(policy.check(&env("HOME")).is_err());
        assert!(policy.check(&file("/run/secrets/wal/dsn")).is_ok());
        assert!(policy.check(&file("/run/secrets/wal/a/b")).is_ok());
        assert!(policy.check(&file("/run/secrets/wal")).is_err());
        assert!(policy.check(&file("/run/secrets/wal/../token")).is_err());
        // A `.` inside a path changes nothing; `..` is refused above.
        assert!(policy.check(&file("/run/secrets/wal/./x")).is_ok());
        assert!(policy.check(&file("/run/secrets/walrus")).is_err());
        assert!(policy
            .check(&file("/var/run/secrets/kubernetes.io/serviceaccount/token"))
            .is_err());
        assert!(policy.check(&file("relative/path")).is_err());
        assert!(SecretPolicy::new("", "/").check(&env("ANY")).is_ok());
    }

    #[test]
    fn a_symlink_out_of_the_directory_is_not_followed() {
        let base = std::env::temp_dir().join(format!("wal-secrets-{}", std::process::id()));
        let dir = base.join("allowed");
        std::fs::create_dir_all(&dir).unwrap();
        let outside = base.join("outside");
        std::fs::write(&outside, "not yours\n").unwrap();
        std::fs::write(dir.join("ok"), " value \n").unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let policy = SecretPolicy::new("P_", &dir);
        let ok = SecretRef::File(dir.join("ok").display().to_string());
        assert_eq!(policy.read(&ok).unwrap(), "value");
        let linked = SecretRef::File(link.display().to_string());
        assert!(matches!(
            policy.read(&linked),
            Err(SecretError::NotAllowed { .. })
        ));
        let _ = std::fs::remove_dir_all(&base);
    }
}
