//! Reads a [`SecretRef`]: an environment variable or a file, trimmed.

use wal_namespace::{SecretError, SecretPolicy, SecretRef};

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

/// Resolves `secret` for target `target` as `policy` allows; `what` names
/// it in errors. A reference the policy refuses, an unset variable, an
/// unreadable file or an empty value is an error.
pub(crate) async fn resolve(
    policy: &SecretPolicy,
    target: &str,
    what: &'static str,
    secret: Option<SecretRef>,
) -> Result<Secret, TargetBuildError> {
    let Some(secret) = secret else {
        return Err(TargetBuildError::InvalidConfig {
            target: target.to_string(),
            reason: format!("no {what} configured"),
        });
    };
    let origin = secret.origin();
    let read = {
        let policy = policy.clone();
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || policy.read(&secret))
            .await
            .map_err(|e| TargetBuildError::InvalidConfig {
                target: target.to_string(),
                reason: format!("reading the {what} failed: {e}"),
            })?
    };
    let target = target.to_string();
    match read {
        Ok(value) => Ok(Secret { value, origin }),
        Err(SecretError::NotAllowed { origin, reason }) => {
            Err(TargetBuildError::SecretNotAllowed {
                target,
                what,
                origin,
                reason,
            })
        }
        Err(SecretError::MissingEnv(name)) => {
            Err(TargetBuildError::MissingEnv { target, what, name })
        }
        Err(SecretError::UnreadableFile { path, source }) => {
            Err(TargetBuildError::UnreadableFile {
                target,
                what,
                path,
                source,
            })
        }
        Err(SecretError::Empty(origin)) => Err(TargetBuildError::InvalidSecret {
            target,
            what,
            origin,
            reason: "it is empty".into(),
        }),
    }
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
        let policy = SecretPolicy::new("WAL_TEST_", &dir);
        let path = file.to_string_lossy().into_owned();
        let s = resolve(&policy, "t", "DSN", Some(SecretRef::File(path)))
            .await
            .unwrap();
        assert_eq!(s.value, "hunter2");

        let err = resolve(
            &policy,
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
        let err = resolve(&policy, "t", "DSN", Some(SecretRef::File(missing.clone())))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains(&missing), "{err}");

        std::fs::write(&file, " \n").unwrap();
        let path = file.to_string_lossy().into_owned();
        let err = resolve(&policy, "t", "DSN", Some(SecretRef::File(path)))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty"), "{err}");

        // What the policy does not allow is never read.
        let err = resolve(&policy, "t", "DSN", Some(SecretRef::Env("HOME".into())))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, TargetBuildError::SecretNotAllowed { .. }),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
