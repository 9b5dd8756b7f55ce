//! A value that must never be printed: tokens and keys.

use std::fmt;

/// A secret string. `Debug` and `Display` print `[secret]`; only
/// [`Secret::expose`] gives the value, at the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([secret])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

/// The prefix of the CI/CD variables that hold an app's secrets:
/// `BERTH_SECRET_DB_PASSWORD` reaches the app's PHP as `DB_PASSWORD`.
pub const APP_SECRET_PREFIX: &str = "BERTH_SECRET_";

/// The most bytes one secret's value may have.
pub const APP_SECRET_MAX: usize = 4096;

/// One secret of the app, as its PHP sees it: a name and a value that is
/// never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSecret {
    pub name: String,
    pub value: Secret,
}

impl AppSecret {
    /// Validates a `BERTH_SECRET_<NAME>` variable. Errors name the
    /// variable, never the value.
    pub fn from_variable(variable: &str, value: &str) -> Result<AppSecret, String> {
        let name = variable
            .strip_prefix(APP_SECRET_PREFIX)
            .ok_or_else(|| format!("{variable} does not start with {APP_SECRET_PREFIX}"))?;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(format!(
                "CI/CD variable {variable}: the secret's name must be 1-64 of A-Z, 0-9 and _, starting with a letter"
            ));
        }
        if value.len() > APP_SECRET_MAX {
            return Err(format!(
                "CI/CD variable {variable}: the value has {} bytes, more than {APP_SECRET_MAX}",
                value.len()
            ));
        }
        if value.contains(['\n', '\r', '\0']) {
            return Err(format!(
                "CI/CD variable {variable}: the value has a line break or NUL, which an environment variable file cannot hold"
            ));
        }
        Ok(AppSecret {
            name: name.to_string(),
            value: Secret::new(value),
        })
    }
}

/// The env file compose reads for the php container: `NAME=value` lines,
/// values literal (compose 1.29 interprets nothing in `env_file` values).
pub fn env_file(secrets: &[AppSecret]) -> Secret {
    let mut text = String::new();
    for secret in secrets {
        text.push_str(&secret.name);
        text.push('=');
        text.push_str(secret.value.expose());
        text.push('\n');
    }
    Secret::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_secrets_are_validated_by_name_and_never_echo_their_value() {
        let ok = AppSecret::from_variable("BERTH_SECRET_DB_PASSWORD", "p$w'\"d x").unwrap();
        assert_eq!(ok.name, "DB_PASSWORD");
        assert_eq!(env_file(&[ok]).expose(), "DB_PASSWORD=p$w'\"d x\n");
        for (variable, value, error) in [
            ("BERTH_SECRET_", "v", "CI/CD variable BERTH_SECRET_: the secret's name must be 1-64 of A-Z, 0-9 and _, starting with a letter"),
            ("BERTH_SECRET_db", "v", "CI/CD variable BERTH_SECRET_db: the secret's name must be 1-64 of A-Z, 0-9 and _, starting with a letter"),
            ("BERTH_SECRET_1X", "v", "CI/CD variable BERTH_SECRET_1X: the secret's name must be 1-64 of A-Z, 0-9 and _, starting with a letter"),
            ("BERTH_SECRET_KEY", "top\nsecret", "CI/CD variable BERTH_SECRET_KEY: the value has a line break or NUL, which an environment variable file cannot hold"),
        ] {
            let e = AppSecret::from_variable(variable, value).unwrap_err();
            assert_eq!(e, error);
            assert!(!e.contains("secret\n") && !e.contains("top"), "{e}");
        }
        let long = "x".repeat(APP_SECRET_MAX + 1);
        assert_eq!(
            AppSecret::from_variable("BERTH_SECRET_BIG", &long).unwrap_err(),
            "CI/CD variable BERTH_SECRET_BIG: the value has 4097 bytes, more than 4096"
        );
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let token = Secret::new("glpat-abcdefgh12345678");
        assert_eq!(format!("{token:?}"), "Secret([secret])");
        assert_eq!(format!("{token}"), "[secret]");
        assert_eq!(token.expose(), "glpat-abcdefgh12345678");
    }
}
