//! Reads a [`SecretRef`]: an environment variable or a file, trimmed.

use wal_namespace::targets::SecretRef;

use crate::TargetBuildError;

/// A secret's value and where it came from (for error messages).
pub(crate) struct Secret {
    /// The trimmed value.
    pub value: String,
    /// `environment variable X` or `file Y`.
    pub origin: String,
}

impl Secret {
    /// An [`InvalidSecret`](TargetBuildError::InvalidSecret) error about this secret.
    pub fn invalid(
        &self,
        target: &str,
        what: &'static str,
        reason: impl Into<String>,
    ) -> TargetBuildError {
        TargetBuildError::InvalidSecret {
            target: target.to_string(),
            what,
            origin: self.origin.clone(),
            reason: reason.into(),
        }
    }
}

/// Resolves `secret` for target `target`; `what` names it in errors. An
/// unset variable, an unreadable file or an empty value is an error.
pub(crate) async fn resolve(
    target: &str,
    what: &'static str,
    secret: Option<SecretRef>,
) -> Result<Secret, TargetBuildError> {
    let (raw, origin) = match secret {
        None => {
            return Err(TargetBuildError::InvalidConfig {
                target: target.to_string(),
                reason: format!("no {what} configured"),
            })
        }
        Some(SecretRef::Env(name)) => match std::env::var(&name) {
            Ok(v) => (v, format!("environment variable `{name}`")),
            Err(_) => {
                return Err(TargetBuildError::MissingEnv {
                    target: target.to_string(),
                    what,
                    name,
                })
            }
        },
        Some(SecretRef::File(path)) => match tokio::fs::read_to_string(&path).await {
            Ok(v) => (v, format!("file `{path}`")),
            Err(source) => {
                return Err(TargetBuildError::UnreadableFile {
                    target: target.to_string(),
                    what,
                    path,
                    source,
                })
            }
        },
    };
    let secret = Secret {
        value: raw.trim().to_string(),
        origin,
    };
    if secret.value.is_empty() {
        return Err(secret.invalid(target, what, "it is empty"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_files_trimmed_and_names_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("wal-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s");
        std::fs::write(&file, "  hunter2\n").unwrap();
        let path = file.to_string_lossy().into_owned();
        let s = resolve("t", "DSN", Some(SecretRef::File(path)))
            .await
            .unwrap();
        assert_eq!(s.value, "hunter2");

        let err = resolve(
            "t",
            "DSN",
            Some(SecretRef::Env("WAL_TEST_SURELY_UNSET_VAR".into())),
        )
        .await
        .err()
        .unwrap();
        assert!(
            err.to_string().contains("WAL_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );

        let missing = dir.join("nope").to_string_lossy().into_owned();
        let err = resolve("t", "DSN", Some(SecretRef::File(missing.clone())))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains(&missing), "{err}");

        std::fs::write(&file, " \n").unwrap();
        let path = file.to_string_lossy().into_owned();
        let err = resolve("t", "DSN", Some(SecretRef::File(path)))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
