//! Why a target could not be built from its configuration.

/// A target configuration that cannot be turned into a working target.
///
/// Messages name the environment variable or file a secret comes from, never
/// the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum TargetBuildError {
    /// The environment variable holding a secret is not set (or not UTF-8).
    #[error("target `{target}`: environment variable `{name}` ({what}) is not set")]
    MissingEnv {
        /// Target identifier.
        target: String,
        /// What the secret is (`DSN`, `cache URL`, `signing secret`).
        what: &'static str,
        /// Name of the variable.
        name: String,
    },
    /// The file holding a secret cannot be read.
    #[error("target `{target}`: cannot read {what} file `{path}`: {source}")]
    UnreadableFile {
        /// Target identifier.
        target: String,
        /// What the secret is.
        what: &'static str,
        /// Path of the file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The reference names a variable or file the secret policy does not
    /// allow (`WAL_SECRET_ENV_PREFIX`, `WAL_SECRET_DIR`): it is not read.
    #[error("target `{target}`: {what} may not be read from {origin}: {reason}")]
    SecretNotAllowed {
        /// Target identifier.
        target: String,
        /// What the secret is.
        what: &'static str,
        /// The reference: `environment variable X` or `file Y`.
        origin: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The secret was found but is empty or malformed.
    #[error("target `{target}`: invalid {what} (from {origin}): {reason}")]
    InvalidSecret {
        /// Target identifier.
        target: String,
        /// What the secret is.
        what: &'static str,
        /// Where it came from: `environment variable X` or `file Y`.
        origin: String,
        /// What is wrong with it (never its value).
        reason: String,
    },
    /// The configuration lacks something the target needs, or has a value
    /// this build cannot use.
    #[error("target `{target}`: {reason}")]
    InvalidConfig {
        /// Target identifier.
        target: String,
        /// What is wrong.
        reason: String,
    },
}
