//! Where the `s3` sink's credentials and region come from, read once when the sink opens,
//! in the order the AWS SDKs use: the sink's options, the standard environment variables,
//! then a profile of the shared credentials file.
//!
//! Instance metadata, SSO and `credential_process` are not read; temporary credentials
//! (`session_token`) are read once, so a router using them must be restarted before they
//! expire.

use std::path::{Path, PathBuf};

use rusty_s3::Credentials;

use super::config::S3SinkConfig;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no credentials: set access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile `{profile}` in {file}")]
    Missing { profile: String, file: String },
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: profile `{profile}` has aws_access_key_id without aws_secret_access_key, or the reverse")]
    Incomplete { file: String, profile: String },
}

/// What the process sees: its environment and home directory (a seam for the tests).
pub(super) trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's own environment.
pub(super) struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// The credentials requests are signed with.
pub(super) fn resolve(
    config: &S3SinkConfig,
    env: &dyn Environment,
) -> Result<Credentials, CredentialsError> {
    if let (Some(key), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        return Ok(credentials(key, secret, config.session_token.as_deref()));
    }
    if let (Some(key), Some(secret)) = (
        env.var("AWS_ACCESS_KEY_ID"),
        env.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(credentials(
            &key,
            &secret,
            env.var("AWS_SESSION_TOKEN").as_deref(),
        ));
    }
    let profile = config
        .profile
        .clone()
        .or_else(|| env.var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let file = env
        .var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            env.var("HOME")
                .map(|h| Path::new(&h).join(".aws/credentials"))
        });
    let missing = |file: &str| CredentialsError::Missing {
        profile: profile.clone(),
        file: file.into(),
    };
    let Some(file) = file else {
        return Err(missing("~/.aws/credentials (HOME is not set)"));
    };
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(&shown)),
        Err(source) => {
            return Err(CredentialsError::Read {
                file: shown,
                source,
            })
        }
    };
    let section = profile_section(&text, &profile);
    match (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) {
        (Some(key), Some(secret)) => Ok(credentials(
            key,
            secret,
            section.get("aws_session_token").map(String::as_str),
        )),
        (None, None) => Err(missing(&shown)),
        _ => Err(CredentialsError::Incomplete {
            file: shown,
            profile,
        }),
    }
}

/// The region: the option, `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
pub(super) fn region(config: &S3SinkConfig, env: &dyn Environment) -> String {
    config
        .region
        .clone()
        .or_else(|| env.var("AWS_REGION"))
        .or_else(|| env.var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into())
}

fn credentials(key: &str, secret: &str, token: Option<&str>) -> Credentials {
    match token {
        Some(token) if !token.is_empty() => Credentials::new_with_token(key, secret, token),
        _ => Credentials::new(key, secret),
    }
}

/// The `key = value` lines of section `[profile]` of an INI file as the AWS tools write
/// it (`#` and `;` comments, keys case-insensitive).
fn profile_section(text: &str, profile: &str) -> std::collections::HashMap<String, String> {
    let mut values = std::collections::HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Fake(HashMap<&'static str, String>);

    impl Environment for Fake {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn config(toml: &str) -> S3SinkConfig {
        toml::from_str(&format!("bucket = \"b\"\n{toml}")).expect("config")
    }

    const FILE: &str = "# written by aws configure\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sdefault\n\n[ci]\nAWS_ACCESS_KEY_ID=AKCI\naws_secret_access_key = sci ; not a comment here\naws_session_token = tci\n[broken]\naws_access_key_id = x\n";

    fn resolved(
        options: &str,
        vars: &[(&'static str, &str)],
    ) -> Result<(String, String, Option<String>), String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, FILE).unwrap();
        let mut env: HashMap<&'static str, String> =
            vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        env.entry("AWS_SHARED_CREDENTIALS_FILE")
            .or_insert_with(|| file.display().to_string());
        resolve(&config(options), &Fake(env))
            .map(|c| {
                (
                    c.key().into(),
                    c.secret().into(),
                    c.token().map(String::from),
                )
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn options_then_environment_then_file() {
        let ok = |k: &str, s: &str, t: Option<&str>| Ok((k.into(), s.into(), t.map(String::from)));
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
        ];
        assert_eq!(
            resolved(
                "access_key_id = \"AKOPT\"\nsecret_access_key = \"sopt\"",
                &env
            ),
            ok("AKOPT", "sopt", None)
        );
        assert_eq!(resolved("", &env), ok("AKENV", "senv", None));
        let with_token = [
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
            ("AWS_SESSION_TOKEN", "tenv"),
        ];
        assert_eq!(resolved("", &with_token), ok("AKENV", "senv", Some("tenv")));
        assert_eq!(resolved("", &[]), ok("AKDEFAULT", "sdefault", None));
        assert_eq!(
            resolved("", &[("AWS_PROFILE", "ci")]),
            ok("AKCI", "sci ; not a comment here", Some("tci"))
        );
        assert_eq!(
            resolved("profile = \"ci\"", &[("AWS_PROFILE", "default")]),
            ok("AKCI", "sci ; not a comment here", Some("tci"))
        );
    }

    #[test]
    fn missing_and_broken_profiles_are_named() {
        let err = resolved("profile = \"nope\"", &[]).unwrap_err();
        assert!(
            err.starts_with("no credentials") && err.contains("`nope`"),
            "{err}"
        );
        let err = resolved("profile = \"broken\"", &[]).unwrap_err();
        assert!(
            err.contains("profile `broken` has aws_access_key_id without"),
            "{err}"
        );
        let err =
            resolved("", &[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/creds")]).unwrap_err();
        assert!(err.contains("/nonexistent/creds"), "{err}");
    }

    #[test]
    fn region_order() {
        let env = Fake(HashMap::from([(
            "AWS_DEFAULT_REGION",
            "eu-west-1".to_string(),
        )]));
        assert_eq!(region(&config(""), &env), "eu-west-1");
        assert_eq!(
            region(&config("region = \"ap-south-1\""), &env),
            "ap-south-1"
        );
        assert_eq!(region(&config(""), &Fake(HashMap::new())), "us-east-1");
    }
}
